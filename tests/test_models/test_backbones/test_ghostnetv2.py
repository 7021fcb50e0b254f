# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
import json
import math
import os.path as osp
from copy import deepcopy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

import mmghost  # noqa: F401  (registers GhostNetV2)
from mmghost.models import GhostModule, GhostNetV2
from mmghost.models.backbones.ghostnetv2 import GhostModuleV2

DATA = osp.join(osp.dirname(__file__), '..', '..', 'data')
FIXTURE = osp.join(DATA, 'ghostnetv2_1.0x_official_keys.json')
V1_FIXTURE = osp.join(DATA, 'ghostnet_1.0x_official_keys.json')
HEAD = ('conv_head.', 'classifier.')

# make_divisible(c * w, 4) of the paper's table (16, 24, 40, 112, 160, 960),
# worked by hand for the three published widths.
STAGE_CHANNELS = {
    1.0: (16, 24, 40, 112, 160, 960),
    1.3: (20, 32, 52, 144, 208, 1248),
    1.6: (24, 40, 64, 180, 256, 1536),
}
STAGE_STRIDES = (2, 4, 8, 16, 32, 32)


def official_keys(path=FIXTURE):
    with open(path) as f:
        return json.load(f)['keys']


def fake_checkpoint(path, drop=(), extra=None, fixture=FIXTURE):
    """Random values under the fixture's keys/shapes, plus ``extra``."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in official_keys(fixture).items():
        if key in drop:
            continue
        if key.endswith('num_batches_tracked'):
            state[key] = torch.tensor(7)
        elif key.endswith('running_var'):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen)
    state.update(extra or {})
    if path.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(state, path)
    else:
        torch.save(state, path)
    return state


def thop_counters():
    """The ``total_ops``/``total_params`` buffers thop leaves on every module
    of the released checkpoints (the root's, then each submodule's)."""
    modules = {''}
    for key in official_keys():
        parts = key.split('.')[:-1]
        modules.update('.'.join(parts[:n]) + '.'
                       for n in range(1, len(parts) + 1))
    return {
        f'{m}{name}': torch.zeros(1, dtype=torch.float64)
        for m in sorted(modules) for name in ('total_ops', 'total_params')
    }


class ImageNetClassifier(nn.Module):
    """The released classification network around the backbone.

    Head as released: global pool, ``conv_head`` (1x1, bias) + ReLU,
    ``classifier`` (linear); sizes read from the fixture's shapes.
    """

    def __init__(self, backbone):
        super().__init__()
        keys = official_keys()
        head_out, head_in = keys['conv_head.weight'][:2]
        num_classes, hidden = keys['classifier.weight']
        self.backbone = backbone
        self.conv_head = nn.Conv2d(head_in, head_out, 1, bias=True)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = self.backbone(x)[-1]
        x = F.adaptive_avg_pool2d(x, 1)
        x = F.relu(self.conv_head(x))
        return self.classifier(x.flatten(1))


class TestGhostNetV2:
    cfg = dict(type='GhostNetV2')

    def build(self, **kwargs):
        cfg = deepcopy(self.cfg)
        cfg.update(kwargs)
        return MODELS.build(cfg)

    def test_registered(self):
        assert MODELS.get('GhostNetV2') is GhostNetV2
        assert type(self.build()) is GhostNetV2

    @pytest.mark.parametrize('width', sorted(STAGE_CHANNELS))
    def test_stage_channels_and_strides(self, width):
        model = self.build(widen_factor=width, out_indices=(0, 1, 2, 3, 4, 5))
        model.eval()
        assert model.out_channels == STAGE_CHANNELS[width]
        assert model.out_strides == STAGE_STRIDES
        h, w = 64, 96
        with torch.no_grad():
            outs = model(torch.randn(1, 3, h, w))
        assert isinstance(outs, tuple) and len(outs) == 6
        for out, ch, s in zip(outs, STAGE_CHANNELS[width], STAGE_STRIDES):
            assert out.shape == (1, ch, h // s, w // s)

    def test_default_out_indices(self):
        model = self.build()
        assert model.out_indices == (1, 2, 3, 5)
        assert model.out_channels == (24, 40, 112, 960)
        model.eval()
        with torch.no_grad():
            outs = model(torch.randn(2, 3, 64, 64))
        assert [o.shape[1] for o in outs] == [24, 40, 112, 960]
        assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]

    @pytest.mark.parametrize('size', [(33, 47), (65, 97)])
    def test_odd_input_sizes(self, size):
        model = self.build(out_indices=(0, 1, 2, 3, 4, 5)).eval()
        with torch.no_grad():
            outs = model(torch.randn(1, 3, *size))
        for out, s in zip(outs, STAGE_STRIDES):
            assert out.shape[-2:] == (math.ceil(size[0] / s),
                                      math.ceil(size[1] / s))

    def test_dfc_gate(self):
        # DFC attention multiplies v1's Ghost features by a sigmoid map made
        # at half resolution (floor pooling) and upsampled (nearest).
        torch.manual_seed(0)
        v1 = GhostModule(8, 12, act=False).eval()
        v2 = GhostModuleV2(8, 12, act=False).eval()
        for conv in (v1.primary_conv[0], v1.cheap_operation[0]):
            conv.weight.data.abs_()  # positive features: a stable ratio
        result = v2.load_state_dict(v1.state_dict(), strict=False)
        assert result.missing_keys and all(
            k.startswith('short_conv.') for k in result.missing_keys)
        assert not result.unexpected_keys
        x = torch.rand(2, 8, 7, 10) + 0.5
        with torch.no_grad():
            gate = v2(x) / v1(x)
            assert gate.min() > 0 and gate.max() < 1
            # 7 rows -> 3 (floor) -> 7: source rows 0,0,0,1,1,2,2
            torch.testing.assert_close(gate[:, :, 0], gate[:, :, 2])
            torch.testing.assert_close(gate[:, :, 3], gate[:, :, 4])
            torch.testing.assert_close(gate[:, :, 5], gate[:, :, 6])
            assert not torch.allclose(gate[:, :, 2], gate[:, :, 3])
            # 10 columns -> 5 -> 10: pairs
            torch.testing.assert_close(gate[..., 0::2], gate[..., 1::2])
            # the last (odd) input row is left out of the map
            x2 = x.clone()
            x2[:, :, 6] += 10
            torch.testing.assert_close(v2(x2) / v1(x2), gate)

    def test_keys_match_official_release(self):
        official = official_keys()
        head = [k for k in official if k.startswith(HEAD)]
        assert head, 'fixture must include the classifier'
        ours = {k: list(v.shape) for k, v in
                self.build(widen_factor=1.0).state_dict().items()}
        expected = {k: v for k, v in official.items() if k not in head}
        assert sorted(ours) == sorted(expected)
        assert ours == expected

    @pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
    def test_pretrained_loads_official_checkpoint(self, tmp_path, suffix):
        path = str(tmp_path / f'ck_ghostnetv2_10{suffix}')
        counters = thop_counters()
        assert 'total_ops' in counters
        assert 'blocks.2.0.ghost1.short_conv.0.total_params' in counters
        state = fake_checkpoint(path, extra=counters)
        model = self.build(
            init_cfg=dict(type='Pretrained', checkpoint=path))
        model.init_weights()
        ours = model.state_dict()
        assert len(ours) == len(official_keys()) - 4  # conv_head, classifier
        for key, value in ours.items():
            if key.endswith('num_batches_tracked'):
                continue
            assert torch.equal(value, state[key]), key

    def test_pretrained_missing_key_fails(self, tmp_path):
        path = str(tmp_path / 'broken.pth')
        fake_checkpoint(
            path,
            drop=('blocks.2.0.ghost1.short_conv.0.weight', ),
            extra=thop_counters())
        model = self.build(init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(ValueError, match=r'1 missing keys: '
                           r'blocks\.2\.0\.ghost1\.short_conv\.0\.weight'):
            model.init_weights()
        # all or nothing: not even the keys that were there got loaded
        assert not torch.equal(
            model.conv_stem.weight,
            torch.load(path, weights_only=True)['conv_stem.weight'])

    def test_pretrained_unknown_extra_key_fails(self, tmp_path):
        # only the profiler counters are ignored, not any stray entry
        path = str(tmp_path / 'extra.pth')
        fake_checkpoint(path, extra={'blocks.2.0.ghost1.gate.weight':
                                     torch.zeros(1)})
        model = self.build(init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(ValueError, match=r'1 unexpected keys: '
                           r'blocks\.2\.0\.ghost1\.gate\.weight'):
            model.init_weights()

    def test_pretrained_v1_checkpoint_fails(self, tmp_path):
        path = str(tmp_path / 'ghostnet_1x.pth')
        fake_checkpoint(path, fixture=V1_FIXTURE)
        model = self.build(init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(ValueError,
                           match=r'GhostNetV2\(widen_factor=1\.0\).*missing '
                           r'keys: blocks\.2\.0\.ghost1\.short_conv\.0'):
            model.init_weights()

    def test_pretrained_wrong_width_fails(self, tmp_path):
        path = str(tmp_path / 'ck_ghostnetv2_10.pth')
        fake_checkpoint(path)
        model = self.build(
            widen_factor=1.3,
            init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(ValueError, match=r'GhostNetV2\(widen_factor=1\.3'
                           r'\).*shape mismatches'):
            model.init_weights()

    @pytest.mark.parametrize('frozen', [-1, 0, 2, 5])
    def test_frozen_stages(self, frozen):
        model = self.build(frozen_stages=frozen)
        assert model.train() is model
        for stage in range(6):
            for module in model.stage_modules(stage):
                params = list(module.parameters())
                assert params
                for p in params:
                    assert p.requires_grad == (stage > frozen)
                for m in module.modules():
                    if isinstance(m, _BatchNorm):
                        assert m.training == (stage > frozen)
        assert model.bn1.training == (frozen < 0)
        assert model.conv_stem.weight.requires_grad == (frozen < 0)

    def test_norm_eval(self):
        model = self.build(norm_eval=True)
        model.train()
        bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        assert bns and not any(m.training for m in bns)
        assert model.training

    def test_every_parameter_gets_gradient(self):
        model = self.build().train()
        outs = model(torch.randn(2, 3, 64, 64))
        sum(o.mean() for o in outs).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None]
        assert not missing
        assert any('short_conv' in n for n, _ in model.named_parameters())

    def test_with_cp_matches_plain(self):
        torch.manual_seed(0)
        plain = self.build().train()
        ckpt = self.build(with_cp=True).train()
        ckpt.load_state_dict(plain.state_dict())
        x = torch.randn(2, 3, 64, 64)  # does not require grad
        outs_plain, outs_cp = plain(x), ckpt(x)
        for a, b in zip(outs_plain, outs_cp):
            torch.testing.assert_close(a, b)
        sum(o.square().mean() for o in outs_plain).backward()
        sum(o.square().mean() for o in outs_cp).backward()
        grads_cp = dict(ckpt.named_parameters())
        for name, p in plain.named_parameters():
            assert grads_cp[name].grad is not None, name
            torch.testing.assert_close(
                p.grad, grads_cp[name].grad, rtol=1e-4, atol=1e-6)

    def test_gn(self):
        model = self.build(norm_cfg=dict(type='GN', num_groups=4))
        norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
        assert norms and not any(
            isinstance(m, _BatchNorm) for m in model.modules())
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))

    @pytest.mark.parametrize('kwargs, match', [
        (dict(widen_factor=0), r'widen_factor=0'),
        (dict(out_indices=(1, 6)), r'range\(0, 6\).*out_indices=\(1, 6\)'),
        (dict(frozen_stages=6), r'range\(-1, 6\).*frozen_stages=6'),
        (dict(norm_cfg=dict(type='LN')), r"one of \('BN'.*'LN'"),
    ])
    def test_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            self.build(**kwargs)

    def test_flops_match_paper(self):
        # The whole 1.0x ImageNet network (backbone + the released head,
        # built above from the fixture's shapes) at 224x224: the paper and
        # the release state 167M FLOPs (multiply-adds of convs and linears).
        model = ImageNetClassifier(self.build(out_indices=(5, ))).eval()
        flops = FlopAnalyzer(model, torch.randn(1, 3, 224, 224))
        flops.unsupported_ops_warnings(False)
        flops.uncalled_modules_warnings(False)
        by_op = flops.by_operator()
        conv_linear = by_op.get('conv', 0) + by_op.get('linear', 0) + \
            by_op.get('addmm', 0)
        assert conv_linear / 1e6 == pytest.approx(167, rel=0.01)
        by_module = flops.by_module()
        head = by_module['conv_head'] + by_module['classifier']
        assert head == 960 * 1280 + 1280 * 1000
