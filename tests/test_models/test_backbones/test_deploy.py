# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""switch_to_deploy(): same outputs as eval mode, no norm left, and the
structure deploy=True builds."""
import pytest
import torch
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

import mmghost  # noqa: F401
from mmghost.deployment import SplitGhostBottleneck
from mmghost.models.backbones import GhostNet

ALL_STAGES = (0, 1, 2, 3, 4, 5)


def randomise_norms(model):
    gen = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)


@pytest.mark.parametrize('arch', ['GhostNet', 'GhostNetV2'])
@pytest.mark.parametrize('width', [1.0, 1.1])
def test_deploy_equals_eval(arch, width):
    model = MODELS.build(
        dict(type=arch, widen_factor=width, out_indices=ALL_STAGES))
    randomise_norms(model)
    model.eval()
    x = torch.randn(2, 3, 97, 130)
    with torch.no_grad():
        ref = model(x)
        model.switch_to_deploy()
        out = model(x)
    assert model.deploy
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    for a, b in zip(ref, out):
        assert a.shape == b.shape
        assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-4

    # deploy=True builds exactly that structure: the fused weights load
    # strictly and give the same outputs
    rebuilt = MODELS.build(
        dict(type=arch, widen_factor=width, out_indices=ALL_STAGES,
             deploy=True))
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    rebuilt.eval()
    with torch.no_grad():
        for a, b in zip(out, rebuilt(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_split_forward_equals_concat_forward():
    # deploy mode swaps every GhostNet bottleneck for the concat-free one,
    # whose large-map path computes what the plain path computes
    model = MODELS.build(dict(type='GhostNet', widen_factor=1.1,
                              out_indices=ALL_STAGES))
    randomise_norms(model)
    model.eval()
    model.switch_to_deploy()
    x = torch.randn(1, 3, 240, 256)
    blocks = [b for stage in model.blocks for b in stage
              if isinstance(b, SplitGhostBottleneck)]
    # one per row of the architecture table
    assert len(blocks) == sum(len(group) for group in GhostNet.arch_settings)
    with torch.no_grad():
        for b in blocks:
            b.split_min_pixels = 0
        split = model(x)
        for b in blocks:
            b.split_min_pixels = float('inf')
        plain = model(x)
    for a, b in zip(split, plain):
        assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-5


@pytest.mark.parametrize('arch, split', [('GhostNet', 16), ('GhostNetV2', 2)])
def test_deploy_build_swaps_the_same_bottlenecks(arch, split):
    # deploy=True builds what switch_to_deploy() makes, the swapped
    # bottlenecks included (GhostNetV2's DFC-gated ones keep theirs)
    def swapped(model):
        return [name for name, m in model.named_modules()
                if isinstance(m, SplitGhostBottleneck)]

    switched = MODELS.build(dict(type=arch)).eval()
    switched.switch_to_deploy()
    built = MODELS.build(dict(type=arch, deploy=True))
    assert len(swapped(built)) == split
    assert swapped(built) == swapped(switched)


def test_switch_is_idempotent_and_irreversible():
    model = MODELS.build(dict(type='GhostNet', widen_factor=0.5))
    model.eval()
    model.switch_to_deploy()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.switch_to_deploy()
    assert all(torch.equal(state[k], v)
               for k, v in model.state_dict().items())
    model.train()  # stays fused
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())


def test_deploy_rejects_group_norm():
    model = MODELS.build(
        dict(type='GhostNet', norm_cfg=dict(type='GN', num_groups=4)))
    with pytest.raises(ValueError, match='folds BatchNorm only, not '
                       'GroupNorm'):
        model.switch_to_deploy()
