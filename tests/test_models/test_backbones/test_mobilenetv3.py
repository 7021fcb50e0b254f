# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch.nn.modules.batchnorm import _BatchNorm

from mmghost.analysis import ImageNetClassifier, complexity
from tests.test_models.test_backbones.contract import (ALL_STAGES,
                                                       GhostBackboneContract,
                                                       fake_checkpoint,
                                                       official_keys)
from tests.utils import ROOT, run_tool

FIXTURE = 'mobilenetv3_large_torchvision_keys.json'


class TestMobileNetV3(GhostBackboneContract):
    cfg = dict(type='MobileNetV3')
    fixture = FIXTURE
    # torchvision's stage ends of mobilenet_v3_large at 1.0x (16, 24, 40,
    # 112, 160 and the 1x1 conv to 6 x 160), and make_divisible(c * w, 8)
    # of them worked by hand for 0.5x and 1.25x.
    stage_channels = {
        0.5: (8, 16, 24, 56, 80, 480),
        1.0: (16, 24, 40, 112, 160, 960),
        1.25: (24, 32, 48, 144, 200, 1200),
    }
    stem_conv, stem_norm = 'features.0.0', 'features.0.1'
    a_released_key = 'features.4.block.2.fc1.weight'

    def test_default_out_indices(self):
        # the stage ends at strides 4/8/16/32, as the paper's FPN reads them
        model = self.build()
        assert model.out_indices == (1, 2, 3, 4)
        assert model.out_channels == (24, 40, 112, 160)
        assert model.out_strides == (4, 8, 16, 32)
        model.eval()
        with torch.no_grad():
            outs = model(torch.randn(2, 3, 64, 96))
        assert [o.shape[1:] for o in outs] == [(24, 16, 24), (40, 8, 12),
                                               (112, 4, 6), (160, 2, 3)]

    def test_layers_follow_the_table(self):
        # activations, squeeze-excite and norms as the arch table and
        # torchvision's Conv2dNormActivation declare them
        model = self.build(out_indices=ALL_STAGES)
        acts = {'RE': nn.ReLU, 'HS': nn.Hardswish}
        rows = model.arch_settings['large']
        assert len(model.features) == len(rows) + 2
        # torchvision's bneck_conf: ReLU in features.1-6, hard-swish after
        assert [row[4] for row in rows] == ['RE'] * 6 + ['HS'] * 9
        assert isinstance(model.features[0][2], nn.Hardswish)
        assert isinstance(model.features[-1][2], nn.Hardswish)
        in_channels = 16
        for feature, (k, exp, out, se, act, s) in zip(model.features[1:],
                                                      rows):
            layers = list(feature.block)
            convs = [m for m in layers if isinstance(m, nn.Sequential)]
            # a 1x1 expansion only where the hidden width differs
            assert len(convs) == (3 if exp != in_channels else 2)
            in_channels = out
            dw = convs[-2]
            assert dw[0].groups == exp and dw[0].kernel_size == (k, k)
            assert dw[0].stride == (s, s)
            assert isinstance(dw[2], acts[act])
            project = layers[-1]
            assert len(project) == 2  # linear: no activation
            assert project[0].out_channels == out
            se_layers = [m for m in layers if hasattr(m, 'fc1')]
            assert len(se_layers) == int(se)
            for m in se_layers:
                assert isinstance(m.scale_activation, nn.Hardsigmoid)
                assert isinstance(m.activation, nn.ReLU)
        bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        assert bns and all(
            m.eps == 1e-3 and m.momentum == 0.01 for m in bns)
        with_bias = {n for n, m in model.named_modules()
                     if isinstance(m, nn.Conv2d) and m.bias is not None}
        assert with_bias == {n for n, _ in model.named_modules()
                             if n.endswith(('.fc1', '.fc2'))}

    def test_bad_arch(self):
        with pytest.raises(ValueError,
                           match=r"arch must be one of \('large',\), but "
                           r"got arch='small'"):
            self.build(arch='small')

    def test_gn_indivisible_names_layer(self):
        # the first width 16 does not divide: features.2's projection to 24
        with pytest.raises(ValueError,
                           match=r"num_groups': 16} cannot normalise the 24 "
                           r'channels of features\.2\.block\.2\.1:'):
            self.build(norm_cfg=dict(type='GN', num_groups=16))
        model = self.build(norm_cfg=dict(type='GN', num_groups=8))
        assert any(isinstance(m, nn.GroupNorm) for m in model.modules())

    def test_pretrained_drops_classifier_only(self, tmp_path):
        keys = official_keys(FIXTURE)
        assert {k for k in keys if not k.startswith('features.')} == {
            'classifier.0.weight', 'classifier.0.bias',
            'classifier.3.weight', 'classifier.3.bias'
        }
        path = str(tmp_path / 'with_head.pth')
        extra = {'head.fc.weight': torch.zeros(1000, 960)}
        fake_checkpoint(path, FIXTURE, extra=extra)
        model = self.build(init_cfg=dict(type='Pretrained', checkpoint=path))
        with pytest.raises(ValueError,
                           match=r'1 unexpected keys: head\.fc\.weight\. '):
            model.init_weights()
        # all or nothing: the stem still has its default init
        assert not torch.equal(
            model.features[0][0].weight,
            torch.load(path, weights_only=True)['features.0.0.weight'])

    def test_detector_config_loads_torchvision_checkpoint(self, tmp_path):
        # the shipped config's init_cfg, pointed at a checkpoint in
        # torchvision's layout, loads every backbone tensor
        path = str(tmp_path / 'mobilenet_v3_large.pth')
        state = fake_checkpoint(path, FIXTURE)
        cfg = Config.fromfile(
            osp.join(ROOT, 'configs', 'retinanet_mobilenetv3_fpn.py'))
        cfg.model.backbone.init_cfg.checkpoint = path
        init_default_scope('mmdet')
        model = MODELS.build(cfg.model)
        model.init_weights()
        backbone = model.backbone.state_dict()
        assert len(backbone) == len(state) - 4  # all but the classifier
        for key, value in backbone.items():
            if not key.endswith('num_batches_tracked'):
                assert torch.equal(value, state[key]), key

    def test_imagenet_network_matches_published_figures(self):
        # torchvision publishes 5,483,032 parameters for mobilenet_v3_large.
        # Multiply-adds at 224x224 (conv + linear): the authors' release
        # (tensorflow/models, slim/nets/mobilenet/README.md) states 217M
        # MACs, torchvision 0.217 GFLOPS; the paper's table (and GhostNet's
        # Table 8, which quotes it) print 219M, 1.1% more than the network
        # computes.
        model = self.build(out_indices=(5, ))
        net = ImageNetClassifier(model, 960)  # the head registered for it
        counts = complexity(net, (torch.randn(1, 3, 224, 224), ))
        assert counts['params'] == 5483032
        assert counts['conv_linear'] / 1e6 == pytest.approx(217, abs=0.5)
        assert counts['conv_linear'] / 1e6 == pytest.approx(219, rel=0.012)
        # its classifier is torchvision's: FC, hard-swish, dropout, FC
        assert [type(m) for m in net.classifier] == [
            nn.Linear, nn.Hardswish, nn.Dropout, nn.Linear
        ]

    @pytest.mark.trains  # compares floats: run on every CPU kernel path
    def test_deploy_equals_eval_and_rebuilds(self):
        model = self.build(out_indices=ALL_STAGES)
        gen = torch.Generator().manual_seed(0)
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.data.copy_(torch.rand(n, generator=gen) - 0.5)
        model.eval()
        x = torch.randn(1, 3, 67, 90)
        with torch.no_grad():
            ref = model(x)
            model.switch_to_deploy()
            out = model(x)
        assert model.deploy
        assert not any(isinstance(m, _BatchNorm) for m in model.modules())
        for a, b in zip(ref, out):
            assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-4
        rebuilt = self.build(out_indices=ALL_STAGES, deploy=True).eval()
        rebuilt.load_state_dict(model.state_dict(), strict=True)
        with torch.no_grad():
            for a, b in zip(out, rebuilt(x)):
                torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_get_flops_classifier_row():
    # what a user runs to compare with the paper's table (see
    # test_imagenet_network_matches_published_figures for the figures)
    proc = run_tool('tools/analysis_tools/get_flops.py',
                    'configs/retinanet_mobilenetv3_fpn.py', '--classifier')
    row = next(line for line in proc.stdout.splitlines()
               if line.startswith('| MobileNetV3 classifier'))
    paper, total, params = (float(v) for v in row.split('|')[2:5])
    assert paper == pytest.approx(217, abs=0.5)
    assert total > paper
    assert params == pytest.approx(5.48, abs=0.005)
