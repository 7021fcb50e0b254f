# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Every shipped config builds and runs on real COCO images, and GhostNet
drops into detectors the project ships no config for."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS

import mmghost  # noqa: F401
from tests.utils import ROOT, build_detector, run_all_modes, tiny_coco_batch

CONFIGS = sorted(
    osp.relpath(p, ROOT)
    for p in glob.glob(osp.join(ROOT, 'configs', '*.py')))


def test_the_names_users_type_exist():
    for name in ('retinanet_ghostnet_fpn.py', 'faster-rcnn_ghostnet_fpn.py'):
        assert osp.join('configs', name) in CONFIGS


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds_and_runs(config):
    cfg = Config.fromfile(config)
    model = build_detector(cfg)
    backbone = model.backbone
    if hasattr(backbone, 'out_channels'):
        assert list(cfg.model.neck.in_channels) == list(
            backbone.out_channels)
    run_all_modes(model, tiny_coco_batch(cfg))


@pytest.mark.parametrize('config', [c for c in CONFIGS if 'demo' not in c])
def test_paper_setup(config):
    cfg = Config.fromfile(config)
    assert cfg.train_cfg.max_epochs == 12
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
    assert steps and steps[0].milestones == [8, 11]
    assert any(s.type == 'LinearLR' for s in cfg.param_scheduler)
    assert cfg.auto_scale_lr.base_batch_size == 16
    resize = [t for t in cfg.train_dataloader.dataset.pipeline
              if t.type == 'Resize']
    assert resize[0].scale == (1333, 800)
    assert cfg.val_evaluator.type == 'CocoMetric'
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.model.backbone.init_cfg.type == 'Pretrained'
    assert 'tta_model' in cfg and 'tta_pipeline' in cfg
    if 'ghostnet' in config:
        width = 1.0 if ('1.0x' in config or 'ghostnetv2' in config) else 1.1
        assert cfg.model.backbone.widen_factor == width


# The FPN taps of Table 8 as its authors built it: the stage ends (the last
# block of each stride 4/8/16/32) of the Ghost and MobileNetV3 backbones;
# mmdet's own taps for MobileNetV2, whose last is its final 1x1 conv.
TAPS = {
    'GhostNet': (1, 2, 3, 4),
    'GhostNetV2': (1, 2, 3, 4),
    'MobileNetV3': (1, 2, 3, 4),
    'MobileNetV2': (1, 2, 4, 7),
}


@pytest.mark.parametrize('config', CONFIGS)
def test_taps(config):
    init_default_scope('mmdet')
    backbone = MODELS.build(Config.fromfile(config).model.backbone)
    assert tuple(backbone.out_indices) == TAPS[type(backbone).__name__]


SWAPS = {
    'fcos': 'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    'atss': 'mmdet::atss/atss_r50_fpn_1x_coco.py',
    'mask-rcnn': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
}


@pytest.mark.parametrize('name', sorted(SWAPS))
def test_backbone_swaps_into_other_detectors(name, tmp_path):
    # Exactly what a user writes in their own config.
    path = tmp_path / f'{name}_ghostnet_fpn.py'
    path.write_text(
        f"_base_ = '{SWAPS[name]}'\n"
        "custom_imports = dict(imports=['mmghost'], "
        "allow_failed_imports=False)\n"
        "model = dict(\n"
        "    backbone=dict(_delete_=True, type='GhostNet', "
        "widen_factor=1.1, out_indices=(1, 2, 3, 4)),\n"
        "    neck=dict(in_channels=[28, 44, 124, 176]))\n")
    cfg = Config.fromfile(str(path))
    model = build_detector(cfg)
    assert type(model.backbone).__name__ == 'GhostNet'
    batch = tiny_coco_batch(cfg, with_mask=(name == 'mask-rcnn'))
    losses = run_all_modes(model, batch)
    if name == 'mask-rcnn':
        assert 'loss_mask' in losses
