# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm

from mmghost.analysis import ImageNetClassifier
from mmghost.models import GhostModule, GhostNetV2
from mmghost.models.backbones.ghostnetv2 import GhostModuleV2
from tests.test_models.test_backbones.contract import (GhostBackboneContract,
                                                       conv_linear_mflops,
                                                       fake_checkpoint,
                                                       official_keys)

FIXTURE = 'ghostnetv2_1.0x_official_keys.json'
V1_FIXTURE = 'ghostnet_1.0x_official_keys.json'


def thop_counters():
    """The ``total_ops``/``total_params`` buffers thop leaves on every module
    of the released checkpoints (the root's, then each submodule's)."""
    modules = {''}
    for key in official_keys(FIXTURE):
        parts = key.split('.')[:-1]
        modules.update('.'.join(parts[:n]) + '.'
                       for n in range(1, len(parts) + 1))
    return {
        f'{m}{name}': torch.zeros(1, dtype=torch.float64)
        for m in sorted(modules) for name in ('total_ops', 'total_params')
    }


class TestGhostNetV2(GhostBackboneContract):
    cfg = dict(type='GhostNetV2')
    fixture = FIXTURE
    # make_divisible(c * w, 4) of the paper's table (16, 24, 40, 112, 160,
    # 960), worked by hand for the three published widths.
    stage_channels = {
        1.0: (16, 24, 40, 112, 160, 960),
        1.3: (20, 32, 52, 144, 208, 1248),
        1.6: (24, 40, 64, 180, 256, 1536),
    }
    checkpoint_extra = staticmethod(thop_counters)
    a_released_key = 'blocks.2.0.ghost1.short_conv.0.weight'

    def test_registered(self):
        assert MODELS.get('GhostNetV2') is GhostNetV2
        assert type(self.build()) is GhostNetV2

    def test_thop_counters_in_fake_release(self):
        counters = thop_counters()
        assert 'total_ops' in counters
        assert 'blocks.2.0.ghost1.short_conv.0.total_params' in counters

    def test_default_out_indices(self):
        model = self.build()
        assert model.out_indices == (1, 2, 3, 4)
        assert model.out_channels == (24, 40, 112, 160)
        model.eval()
        with torch.no_grad():
            outs = model(torch.randn(2, 3, 64, 64))
        assert [o.shape[1] for o in outs] == [24, 40, 112, 160]
        assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]

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

    def test_pretrained_unknown_extra_key_fails(self, tmp_path):
        # only the profiler counters are ignored, not any stray entry
        path = str(tmp_path / 'extra.pth')
        fake_checkpoint(path, FIXTURE, extra={'blocks.2.0.ghost1.gate.weight':
                                     torch.zeros(1)})
        model = self.build(init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(ValueError, match=r'1 unexpected keys: '
                           r'blocks\.2\.0\.ghost1\.gate\.weight'):
            model.init_weights()

    def test_pretrained_v1_checkpoint_fails(self, tmp_path):
        path = str(tmp_path / 'ghostnet_1x.pth')
        fake_checkpoint(path, V1_FIXTURE)
        model = self.build(init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(ValueError,
                           match=r'GhostNetV2\(widen_factor=1\.0\).*missing '
                           r'keys: blocks\.2\.0\.ghost1\.short_conv\.0'):
            model.init_weights()

    def test_gn(self):
        model = self.build(norm_cfg=dict(type='GN', num_groups=4))
        norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
        assert norms and not any(
            isinstance(m, _BatchNorm) for m in model.modules())
        with torch.no_grad():
            model(torch.randn(1, 3, 64, 64))

    def test_flops_match_paper(self):
        # The whole 1.0x ImageNet network (backbone + the released head,
        # sized from the fixture's shapes) at 224x224: the paper and the
        # release state 167M FLOPs (multiply-adds of convs and linears).
        keys = official_keys(FIXTURE)
        head_out, head_in = keys['conv_head.weight'][:2]
        num_classes = keys['classifier.weight'][0]
        model = ImageNetClassifier(
            self.build(out_indices=(5, )), head_in, head_out, num_classes)
        mflops, flops = conv_linear_mflops(model)
        assert mflops == pytest.approx(167, rel=0.01)
        by_module = flops.by_module()
        head = by_module['conv_head'] + by_module['classifier']
        assert head == 960 * 1280 + 1280 * 1000
