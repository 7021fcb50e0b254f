# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""End to end through the user's commands: tools/train.py on the shipped
slice, then tools/test.py on the checkpoint it wrote, COCO mAP by
pycocotools."""
import glob
import json
import os.path as osp
import pickle

import pytest

from tests.utils import run_tool

CONFIG = 'configs/retinanet_ghostnet_fpn_demo.py'


def scalars(work_dir):
    [log] = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(log) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('train'))
    run_tool('tools/train.py', CONFIG, '--work-dir', work_dir,
             '--cfg-options', 'train_cfg.max_epochs=4',
             'train_dataloader.dataset.times=3',
             'train_cfg.val_interval=4', 'default_hooks.logger.interval=1',
             'default_hooks.checkpoint.interval=4', 'randomness.seed=0')
    return work_dir


def test_training_lowers_the_loss(trained):
    losses = [s['loss'] for s in scalars(trained) if 'loss' in s]
    assert len(losses) >= 16
    k = 4
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    assert last < first, losses


def test_training_evaluates_with_pycocotools(trained):
    val = [s for s in scalars(trained) if 'coco/bbox_mAP' in s]
    assert val and 0.0 <= val[-1]['coco/bbox_mAP_50'] <= 1.0
    assert osp.isfile(osp.join(trained, 'epoch_4.pth'))
    with open(osp.join(trained, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('epoch_4.pth')


def test_test_tool_scores_the_checkpoint(trained, tmp_path):
    ckpt = osp.join(trained, 'epoch_4.pth')
    out = str(tmp_path / 'preds.pkl')
    proc = run_tool('tools/test.py', CONFIG, ckpt, '--work-dir',
                    str(tmp_path), '--out', out, '--show-dir', 'shown',
                    '--cfg-options', 'model.test_cfg.score_thr=0.0')
    # pycocotools' own summary lines, then mmdet's metrics
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95' in proc.stdout
    [metrics_file] = glob.glob(str(tmp_path / '*' / '*.json'))
    with open(metrics_file) as f:
        metrics = json.load(f)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'):
        assert 0.0 <= metrics[key] <= 1.0
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 16  # every shipped image was predicted
    assert sum(len(p['pred_instances']['bboxes']) for p in preds) > 0
    shown = glob.glob(str(tmp_path / '*' / 'shown' / '*.jpg'))
    assert len(shown) == 16


def test_missing_coco_is_one_clear_sentence(tmp_path):
    proc = run_tool('tools/train.py', 'configs/retinanet_ghostnet_fpn.py',
                    '--work-dir', str(tmp_path), '--cfg-options',
                    f'train_dataloader.dataset.data_root={tmp_path}/coco/',
                    check=False)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith('Dataset not found for '
                              'configs/retinanet_ghostnet_fpn.py')
    assert f'{tmp_path}/coco/annotations/instances_train2017.json' in message
    assert 'make demo' in message


def test_deploy_checkpoint_scores_the_same(trained, tmp_path):
    ckpt = osp.join(trained, 'epoch_4.pth')
    deployed = str(tmp_path / 'deploy.pth')
    run_tool('tools/model_converters/ghostnet_deploy.py', CONFIG, ckpt,
             deployed)
    scores = {}
    for name, path, options in [
        ('eval', ckpt, ()),
        ('deploy', deployed, ('model.backbone.deploy=True', )),
    ]:
        work_dir = tmp_path / name
        run_tool('tools/test.py', CONFIG, path, '--work-dir', str(work_dir),
                 '--cfg-options', 'model.test_cfg.score_thr=0.0', *options)
        [metrics_file] = glob.glob(str(work_dir / '*' / '*.json'))
        with open(metrics_file) as f:
            scores[name] = json.load(f)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50'):
        assert scores['deploy'][key] == pytest.approx(
            scores['eval'][key], abs=2e-3)
