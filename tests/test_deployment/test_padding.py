# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""pad_channels(): every conv width a multiple of the SIMD block, outputs
equal to the unpadded network's, in both memory formats and through the
split (large-map) bottleneck path."""
import copy

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS

import mmghost  # noqa: F401
from mmghost.deployment import pad_channels
from tests.test_models.test_backbones.test_deploy import (ALL_STAGES,
                                                          randomise_norms)


def build(width, **kwargs):
    model = MODELS.build(
        dict(type='GhostNet', widen_factor=width, out_indices=ALL_STAGES,
             **kwargs))
    randomise_norms(model)
    return model.eval()


def rel_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize('width,multiple', [(0.5, 8), (1.1, 8), (1.3, 16)])
def test_padded_network_equals_the_original(width, multiple):
    model = build(width)
    padded = pad_channels(copy.deepcopy(model), multiple)
    # 97x130: odd sizes; 240x256: the first stages take the split path
    for size in [(97, 130), (240, 256)]:
        x = torch.randn(2, 3, *size)
        with torch.no_grad():
            ref = model(x)
            out = padded(x)
            nhwc = copy.deepcopy(padded).to(
                memory_format=torch.channels_last)(
                    x.contiguous(memory_format=torch.channels_last))
        for a, b, c in zip(out, nhwc, ref):
            assert a.shape == c.shape  # the real channels only
            assert rel_error(a, c) <= 1e-5
            assert rel_error(b, c) <= 1e-5

    convs = [(name, m) for name, m in padded.backbone.named_modules()
             if isinstance(m, nn.Conv2d)]
    unaligned = [(name, m.in_channels, m.out_channels) for name, m in convs
                 if m.out_channels % multiple or (
                     m.in_channels % multiple and name != 'conv_stem')]
    assert not unaligned
    # something was padded: the original widths are not all aligned
    assert any(m.out_channels % multiple for m in model.modules()
               if isinstance(m, nn.Conv2d))
    assert padded.out_channels == model.out_channels


def test_padding_switches_to_deploy_first():
    model = build(1.1)
    pad_channels(model)
    assert model.deploy
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize('multiple', [0, -8, 2.5, True, '8'])
def test_a_bad_multiple_is_named(multiple):
    model = build(1.0)
    with pytest.raises(ValueError, match=f'multiple={multiple!r}'):
        pad_channels(model, multiple)
    assert not model.deploy  # nothing changed


def test_padding_twice_is_refused():
    model = pad_channels(build(1.0), 8)
    with pytest.raises(RuntimeError, match='already channel-padded'):
        pad_channels(model, 8)


def test_ghostnetv2_is_refused_before_anything_changes():
    model = MODELS.build(dict(type='GhostNetV2', widen_factor=1.0)).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(NotImplementedError, match='GhostNetV2.*GhostNet '
                       r'\(v1\) only'):
        pad_channels(model, 8)
    assert not model.deploy
    assert all(torch.equal(state[k], v)
               for k, v in model.state_dict().items())
