# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The config snippet at the top of the README builds and loads as written.

It is the first thing a user copies: appended to an MMDetection base config
(as its comment says it goes), with a checkpoint of the published release's
layout at the path it names, the detector must build, the strict loader must
take every backbone tensor from that file, and the neck must take the
backbone's channels.
"""
import os.path as osp
import re

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS

import mmghost  # noqa: F401
from tests.test_models.test_backbones.contract import fake_checkpoint
from tests.utils import ROOT

BASE = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
# key lists of the published ImageNet releases, by backbone type
RELEASES = {
    'GhostNet': 'ghostnet_1.0x_official_keys.json',
    'GhostNetV2': 'ghostnetv2_1.0x_official_keys.json',
}


def first_snippet() -> str:
    """The first ```python block of README.md (before any ## section)."""
    with open(osp.join(ROOT, 'README.md')) as f:
        text = f.read()
    intro = text.split('\n## ', 1)[0]
    blocks = re.findall(r'^```python\n(.*?)^```$', intro, re.M | re.S)
    assert blocks, 'README.md has no ```python block before its first ##'
    return blocks[0]


def test_first_readme_snippet_builds_and_loads(tmp_path, monkeypatch):
    snippet = first_snippet()
    assert snippet.startswith('# in any MMDetection 3.x config\n')
    config = tmp_path / 'my_detector.py'
    config.write_text(f'_base_ = {BASE!r}\n{snippet}')
    cfg = Config.fromfile(str(config))
    backbone_cfg = cfg.model.backbone
    checkpoint = backbone_cfg.init_cfg.checkpoint
    # a file of the published (1.0x) layout, where the snippet says it is
    monkeypatch.chdir(tmp_path)
    (tmp_path / osp.dirname(checkpoint)).mkdir(parents=True, exist_ok=True)
    state = fake_checkpoint(checkpoint, RELEASES[backbone_cfg.type])

    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()  # the strict Pretrained load
    backbone = model.backbone
    loaded = backbone.state_dict()
    assert loaded, 'empty backbone'
    for key, value in loaded.items():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(value, state[key]), key
    assert list(cfg.model.neck.in_channels) == list(backbone.out_channels)
    model.eval()  # the neck takes what the backbone returns
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 128, 128))
    assert len(feats) == cfg.model.neck.num_outs
