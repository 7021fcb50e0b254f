# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""End to end through the user's commands: tools/train.py on the shipped
slice, then tools/test.py on the checkpoint it wrote, COCO mAP by
pycocotools."""
import copy
import glob
import json
import os.path as osp
import pickle
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import set_random_seed

from tests.utils import build_detector, run_tool, tiny_coco_batch

# Training tests run under every CPU kernel path (`make test-kernels`).
pytestmark = pytest.mark.trains

CONFIG = 'configs/retinanet_ghostnet_fpn_demo.py'
EPOCHS = 4
# The demo's recipe shortened to EPOCHS, schedule included: the warm-up
# (first epoch) and the cosine decay both end inside the run.
SHORT_RUN = (f'train_cfg.max_epochs={EPOCHS}',
             'train_dataloader.dataset.times=3',
             f'param_scheduler.1.T_max={EPOCHS - 1}',
             f'param_scheduler.1.end={EPOCHS}',
             f'train_cfg.val_interval={EPOCHS}',
             'default_hooks.logger.interval=1',
             f'default_hooks.checkpoint.interval={EPOCHS}',
             'randomness.seed=0')
# Trained on its own images, the detector's loss on them must fall well
# below the untrained detector's (measured: 0.37; at lr 0: 0.98).
LEARNED_LOSS_RATIO = 0.7


def scalars(work_dir):
    [log] = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(log) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('train'))
    run_tool('tools/train.py', CONFIG, '--work-dir', work_dir,
             '--cfg-options', *SHORT_RUN)
    return work_dir


def detection_loss(model, batch) -> float:
    """Classification plus box loss of ``model`` on ``batch``, no update.

    Norms run on the batch's own statistics (as in training), on a copy so
    the model's running statistics stay as they are.
    """
    model = copy.deepcopy(model).train()
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(batch), training=True)
        losses = model(**data, mode='loss')
    return float(sum(sum(v) if isinstance(v, list) else v
                     for k, v in losses.items() if 'loss' in k))


def test_training_learns_the_images(trained):
    """The trained detector's loss on fixed training images against the
    same detector untrained: learning, not a rounding-dependent wiggle of
    the logged losses."""
    cfg = Config.fromfile(CONFIG)
    batch = tiny_coco_batch(cfg, num_images=8, scale=(320, 320))
    set_random_seed(0)
    model = build_detector(cfg)
    untrained = detection_loss(model, batch)
    checkpoint = torch.load(
        osp.join(trained, f'epoch_{EPOCHS}.pth'), map_location='cpu',
        weights_only=False)
    model.load_state_dict(checkpoint['state_dict'])
    learned = detection_loss(model, batch)
    assert np.isfinite(untrained) and untrained > 0
    assert learned < LEARNED_LOSS_RATIO * untrained, (learned, untrained)


def test_training_follows_the_schedule(trained):
    """Warm-up and decay end inside the run, and no logged loss is lost."""
    logged = scalars(trained)
    losses = [s['loss'] for s in logged if 'loss' in s]
    lrs = [s['lr'] for s in logged if 'lr' in s]
    assert len(losses) >= 16 and all(np.isfinite(losses)), losses
    peak = max(lrs)
    assert lrs[0] < 0.1 * peak
    assert lrs[-1] < 0.2 * peak, lrs  # decayed by the end of the run


def test_training_evaluates_with_pycocotools(trained):
    val = [s for s in scalars(trained) if 'coco/bbox_mAP' in s]
    assert val and 0.0 <= val[-1]['coco/bbox_mAP_50'] <= 1.0
    assert osp.isfile(osp.join(trained, f'epoch_{EPOCHS}.pth'))
    with open(osp.join(trained, 'last_checkpoint')) as f:
        assert f.read().strip().endswith(f'epoch_{EPOCHS}.pth')


def predict(checkpoint, work_dir, *options):
    """tools/test.py on the demo images; its --out predictions."""
    out = str(work_dir / 'preds.pkl')
    proc = run_tool('tools/test.py', CONFIG, checkpoint, '--work-dir',
                    str(work_dir), '--out', out, '--cfg-options',
                    'model.test_cfg.score_thr=0.0', *options)
    with open(out, 'rb') as f:
        return proc, pickle.load(f)


def test_test_tool_scores_the_checkpoint(trained, tmp_path):
    ckpt = osp.join(trained, f'epoch_{EPOCHS}.pth')
    proc, preds = predict(ckpt, tmp_path, '--show-dir', 'shown')
    # pycocotools' own summary lines, then mmdet's metrics
    assert 'Average Precision  (AP) @[ IoU=0.50:0.95' in proc.stdout
    [metrics_file] = glob.glob(str(tmp_path / '*' / '*.json'))
    with open(metrics_file) as f:
        metrics = json.load(f)
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'):
        assert 0.0 <= metrics[key] <= 1.0
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


def test_deploy_checkpoint_predicts_the_same(trained, tmp_path):
    """The converted checkpoint gives the original detector's boxes and
    scores through tools/test.py, detection by detection."""
    ckpt = osp.join(trained, f'epoch_{EPOCHS}.pth')
    deployed = str(tmp_path / 'deploy.pth')
    run_tool('tools/model_converters/ghostnet_deploy.py', CONFIG, ckpt,
             deployed)
    (tmp_path / 'eval').mkdir()
    (tmp_path / 'deploy').mkdir()
    _, original = predict(ckpt, tmp_path / 'eval')
    _, converted = predict(deployed, tmp_path / 'deploy',
                           'model.backbone.deploy=True')
    assert len(original) == len(converted) == 16
    compared = 0
    for a, b in zip(original, converted):
        a, b = a['pred_instances'], b['pred_instances']
        top = a['scores'] > 0.05  # the detections that score, for ties
        compared += int(top.sum())
        # every scoring original detection is in the converted output
        boxes_b, scores_b = b['bboxes'].numpy(), b['scores'].numpy()
        for box, score in zip(a['bboxes'][top].numpy(),
                              a['scores'][top].numpy()):
            match = np.abs(boxes_b - box).max(1).argmin()
            np.testing.assert_allclose(boxes_b[match], box, atol=0.05)
            assert abs(scores_b[match] - score) < 1e-4
    assert compared > 0  # images without people may have none


def test_demo_fails_below_its_bar(tmp_path):
    """make demo's job exits non-zero, in one sentence, when the detector
    does not learn its images (here: learning rate 0, one short epoch)."""
    proc = run_tool('tools/demo.py', '--work-dir', str(tmp_path),
                    '--cfg-options', 'optim_wrapper.optimizer.lr=0.0',
                    'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                    'train_dataloader.dataset.times=1', check=False)
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        r'Demo failed: bbox mAP@0\.5 0\.\d{3} on the training images is '
        r'below the memorisation bar 0\.3; the model did not learn its '
        r'images\.', message), message
