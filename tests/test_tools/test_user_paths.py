# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The ways a user starts from existing weights, each run as the user runs it:
``tools/train.py --resume CKPT``, ``load_from``, ``--auto-scale-lr``,
``tools/test.py --tta``, and the ImageNet weights a shipped config's
``init_cfg`` names. Each training run is one short epoch of the demo
config, continuing the demo checkpoint that tools/train.py wrote."""
import glob
import os.path as osp
import pickle
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmdet.registry import MODELS

import mmghost  # noqa: F401
from tests.test_deployment.demo_checkpoint import (RETINANET_DEMO,
                                                   trained_checkpoint)
from tests.test_engine.helpers import load, log_text, run, train_cmd
from tests.test_models.test_backbones.contract import fake_checkpoint
from tests.utils import ROOT, run_tool

pytestmark = pytest.mark.trains

# one epoch over the shipped images, as the demo checkpoint was trained, at
# a small scale, no validation, a checkpoint per epoch
ONE_EPOCH = ('train_dataloader.dataset.times=1', 'train_cfg.val_interval=9',
             'train_dataloader.dataset.dataset.pipeline.2.scale=(128,128)',
             'default_hooks.checkpoint.interval=1',
             'train_dataloader.num_workers=0',
             'train_dataloader.persistent_workers=False', 'randomness.seed=0')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return trained_checkpoint(tmp_path_factory)


def learnt(state_dict):
    """The weights an optimizer changes (no BN statistics)."""
    return {k: v for k, v in state_dict.items()
            if not k.endswith(('running_mean', 'running_var',
                               'num_batches_tracked'))}


def test_resume_from_an_explicit_checkpoint(checkpoint, tmp_path):
    meta = load(checkpoint)['meta']
    epoch, done = meta['epoch'], meta['iter']
    per_epoch = done // epoch
    work_dir = tmp_path / 'resumed'
    proc = run(train_cmd(work_dir, '--resume', checkpoint,
                         options=ONE_EPOCH + (
                             f'train_cfg.max_epochs={epoch + 1}', )))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = log_text(work_dir)
    assert f'Load checkpoint from {checkpoint}' in log
    assert f'resumed epoch: {epoch}, iter: {done}' in log
    trained = re.findall(r'Epoch\(train\)\s+\[(\d+)\]', log)
    assert trained and set(trained) == {str(epoch + 1)}
    final = load(work_dir / f'epoch_{epoch + 1}.pth')
    assert final['meta']['epoch'] == epoch + 1
    assert final['meta']['iter'] == done + per_epoch
    # the optimizer went on from the checkpoint's: AdamW's step counts
    steps = {int(s['step']) for s in final['optimizer']['state'].values()}
    assert steps == {done + per_epoch}


def test_load_from_loads_weights_and_starts_at_epoch_1(checkpoint, tmp_path):
    """load_from takes the weights only: the run starts at epoch 1 with a
    fresh optimizer. At lr 0 it ends with exactly the weights it loaded."""
    work_dir = tmp_path / 'finetune'
    proc = run(train_cmd(work_dir, options=ONE_EPOCH + (
        f'load_from={checkpoint}', 'train_cfg.max_epochs=1',
        'optim_wrapper.optimizer.lr=0.0')))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = log_text(work_dir)
    assert f'Load checkpoint from {checkpoint}' in log
    assert 'resumed epoch' not in log
    final = load(work_dir / 'epoch_1.pth')
    source = load(checkpoint)
    assert final['meta']['epoch'] == 1
    # counted from 0: one epoch of the source's
    assert final['meta']['iter'] == (
        source['meta']['iter'] // source['meta']['epoch'])
    ours, theirs = learnt(final['state_dict']), learnt(source['state_dict'])
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key
    steps = {int(s['step']) for s in final['optimizer']['state'].values()}
    assert steps == {final['meta']['iter']}


def test_auto_scale_lr_scales_to_the_real_batch(tmp_path):
    cfg = Config.fromfile(RETINANET_DEMO)
    base_lr = cfg.optim_wrapper.optimizer.lr
    batch = cfg.train_dataloader.batch_size
    expected = base_lr * batch / cfg.auto_scale_lr.base_batch_size
    assert expected != base_lr
    work_dir = tmp_path / 'scaled'
    proc = run(train_cmd(work_dir, '--auto-scale-lr',
                         options=ONE_EPOCH + ('train_cfg.max_epochs=1', )))
    assert proc.returncode == 0, proc.stderr[-3000:]
    final = load(work_dir / 'epoch_1.pth')
    groups = final['optimizer']['param_groups']
    assert groups and all(
        g['initial_lr'] == pytest.approx(expected) for g in groups)


@pytest.fixture(scope='module')
def tta_predictions(checkpoint, tmp_path_factory):
    """tools/test.py with and without --tta; the TTA scales shrunk to fit
    CPU seconds."""
    out = {}
    scales = ('tta_pipeline.1.transforms.0.0.scale=(160,160)',
              'tta_pipeline.1.transforms.0.1.scale=(128,128)',
              'tta_pipeline.1.transforms.0.2.scale=(192,192)')
    for name, args in (('plain', ()), ('tta', ('--tta', ))):
        work_dir = tmp_path_factory.mktemp(name)
        preds = work_dir / 'preds.pkl'
        run_tool('tools/test.py', RETINANET_DEMO, checkpoint, '--work-dir',
                 work_dir, '--out', preds, *args, '--cfg-options',
                 'test_dataloader.dataset.pipeline.1.scale=(160,160)',
                 'test_dataloader.num_workers=0',
                 'test_dataloader.persistent_workers=False',
                 'model.test_cfg.score_thr=0.0', *scales)
        with open(preds, 'rb') as f:
            out[name] = pickle.load(f)
        [metrics] = glob.glob(str(work_dir / '*' / '*.json'))
        assert osp.getsize(metrics) > 0
    return out


def test_tta_merges_flipped_and_scaled_passes(tta_predictions):
    plain, tta = tta_predictions['plain'], tta_predictions['tta']
    assert len(tta) == len(plain) == 16
    assert all(p['flip'] in (True, False) for p in tta)  # TTA's meta keys
    assert 'flip' not in plain[0]
    cfg = Config.fromfile(RETINANET_DEMO)
    differ = 0
    for p, t in zip(plain, tta):
        assert p['img_path'] == t['img_path']
        boxes = t['pred_instances']['bboxes']
        height, width = t['ori_shape']
        assert 0 < len(boxes) <= cfg.tta_model.tta_cfg.max_per_img
        assert (boxes[:, [0, 2]] >= -1).all() and (boxes[:, [0, 2]] <=
                                                   width + 1).all()
        assert (boxes[:, [1, 3]] >= -1).all() and (boxes[:, [1, 3]] <=
                                                   height + 1).all()
        p_scores = p['pred_instances']['scores']
        t_scores = t['pred_instances']['scores']
        differ += (len(p_scores) != len(t_scores)
                   or not torch.allclose(p_scores, t_scores))
    assert differ == len(tta)


# -- ImageNet weights named by a shipped config --------------------------------
GHOST_FAMILIES = {
    'GhostNet': 'ghostnet_1.0x_official_keys.json',
    'GhostNetV2': 'ghostnetv2_1.0x_official_keys.json',
}


def pretrained_configs():
    out = []
    for path in sorted(glob.glob(osp.join(ROOT, 'configs', '*.py'))):
        backbone = Config.fromfile(path).model.backbone
        if (backbone.type in GHOST_FAMILIES and backbone.get('init_cfg')
                and backbone.init_cfg.get('type') == 'Pretrained'):
            out.append(osp.relpath(path, ROOT))
    return out


@pytest.mark.parametrize('config', pretrained_configs())
def test_shipped_config_loads_its_imagenet_weights(config, tmp_path,
                                                   monkeypatch):
    """The checkpoint path of the config's init_cfg, filled with a file of
    the release's layout (the official key list at 1.0x; at other widths,
    the same names at that width, plus a classifier), loads into the
    detector's backbone, every tensor of it."""
    cfg = Config.fromfile(config)
    backbone_cfg = cfg.model.backbone
    path = backbone_cfg.init_cfg.checkpoint
    assert not osp.isabs(path) and '://' not in path
    init_default_scope('mmdet')
    monkeypatch.chdir(tmp_path)
    (tmp_path / osp.dirname(path)).mkdir(parents=True, exist_ok=True)
    fixture = GHOST_FAMILIES[backbone_cfg.type]
    if backbone_cfg.get('widen_factor', 1.0) == 1.0:
        state = fake_checkpoint(path, fixture)
    else:
        shapes = MODELS.build(dict(backbone_cfg, init_cfg=None)).state_dict()
        gen = torch.Generator().manual_seed(1)
        state = {k: torch.randn(v.shape, generator=gen)
                 if v.is_floating_point() else v
                 for k, v in shapes.items()}
        state['classifier.weight'] = torch.randn(1000, 1280, generator=gen)
        torch.save(state, path)
    model = MODELS.build(cfg.model)
    model.init_weights()
    loaded = model.backbone.state_dict()
    assert loaded
    for key, value in loaded.items():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(value, state[key]), key
