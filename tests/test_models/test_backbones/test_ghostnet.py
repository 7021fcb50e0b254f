# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
import pytest
import torch
import torch.nn as nn
from mmengine.model.utils import revert_sync_batchnorm

from tests.test_models.test_backbones.contract import (ALL_STAGES,
                                                       GhostBackboneContract,
                                                       conv_linear_mflops,
                                                       fake_checkpoint)


class TestGhostNet(GhostBackboneContract):
    cfg = dict(type='GhostNet')
    fixture = 'ghostnet_1.0x_official_keys.json'
    # Stage channels as stated by the design (issue #2) at 1.0x and 1.1x,
    # and make_divisible(c * w, 4) of the paper's table (16, 24, 40, 112,
    # 160, 960) worked by hand for 0.5x and 1.3x.
    stage_channels = {
        0.5: (8, 12, 20, 56, 80, 480),
        1.0: (16, 24, 40, 112, 160, 960),
        1.1: (16, 28, 44, 124, 176, 1056),
        1.3: (20, 32, 52, 144, 208, 1248),
    }
    a_released_key = 'blocks.3.0.se.conv_reduce.weight'

    def test_default_out_indices(self):
        # the paper's FPN taps: the last block of each stride 4/8/16/32
        model = self.build(widen_factor=1.1)
        assert model.out_indices == (1, 2, 3, 4)
        assert model.out_channels == (28, 44, 124, 176)
        model.eval()
        with torch.no_grad():
            outs = model(torch.randn(2, 3, 64, 64))
        assert [o.shape[1] for o in outs] == [28, 44, 124, 176]
        assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]

    def test_pretrained_under_prefix(self, tmp_path):
        src = str(tmp_path / 'plain.pth')
        state = fake_checkpoint(src, self.fixture)
        wrapped = {'state_dict': {f'backbone.{k}': v
                                  for k, v in state.items()},
                   'meta': {}}
        path = str(tmp_path / 'detector.pth')
        torch.save(wrapped, path)
        model = self.build(init_cfg=dict(
            type='Pretrained', checkpoint=path, prefix='backbone.'))
        model.init_weights()
        assert torch.equal(model.conv_stem.weight, state['conv_stem.weight'])

    def test_pretrained_other_network_fails(self, tmp_path):
        path = str(tmp_path / 'resnet.pth')
        torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7)}, path)
        model = self.build(init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(ValueError, match='unexpected keys: conv1.weight'):
            model.init_weights()

    def test_gn(self):
        model = self.build(norm_cfg=dict(type='GN', num_groups=4))
        assert any(isinstance(m, nn.GroupNorm) for m in model.modules())
        with torch.no_grad():
            model(torch.randn(1, 3, 32, 32))

    @pytest.mark.parametrize('groups, channels, layer', [
        (32, 16, r'bn1'),
        (16, 8, r'blocks\.0\.0\.ghost1\.primary_conv\.1'),
    ])
    def test_gn_indivisible_names_layer(self, groups, channels, layer):
        with pytest.raises(
                ValueError,
                match=rf"num_groups': {groups}}} cannot normalise the "
                rf"{channels} channels of {layer}:"):
            self.build(norm_cfg=dict(type='GN', num_groups=groups))

    def test_syncbn_builds_and_reverts(self):
        model = self.build(norm_cfg=dict(type='SyncBN'))
        assert any(
            isinstance(m, nn.SyncBatchNorm) for m in model.modules())
        model = revert_sync_batchnorm(model).eval()
        with torch.no_grad():
            outs = model(torch.randn(1, 3, 32, 32))
        assert len(outs) == 4

    @pytest.mark.parametrize('width, paper_mflops', [(1.1, 164), (1.0, 139)])
    def test_flops_match_paper(self, width, paper_mflops):
        # the backbone through stage 5 at 224x224: the paper's 164M for
        # 1.1x; 139M at 1.0x (its 141M adds the classifier head)
        mflops, flops = conv_linear_mflops(
            self.build(widen_factor=width, out_indices=ALL_STAGES))
        assert mflops == pytest.approx(paper_mflops, rel=0.01)
        # mmengine's total also counts norm and pooling ops
        assert flops.total() / 1e6 > mflops
        # the default taps end at stage 4: stage 5's 1x1 conv at 7x7 is
        # not computed
        c4, c5 = self.stage_channels[width][4:]
        taps_mflops, _ = conv_linear_mflops(self.build(widen_factor=width))
        assert taps_mflops == pytest.approx(mflops - c4 * c5 * 7 * 7 / 1e6)
