# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""A demo RetinaNet trained through tools/train.py, once per test session.

The deployment tests (ONNX export, tools/infer.py) need a checkpoint that
training wrote, not one built by hand: its ``meta`` (classes) and its
trained BN statistics are part of what they check. A few iterations are
enough; the first module that asks trains it, the others reuse it.
"""
import os
import os.path as osp

from tests.utils import DATA_ROOT, run_tool

RETINANET_DEMO = 'configs/retinanet_ghostnet_fpn_demo.py'
DEMO_IMAGES = osp.join(DATA_ROOT, 'images')
# one epoch over the 16 shipped images (4 iterations), one checkpoint
TINY_TRAINING = ('train_cfg.max_epochs=1', 'train_dataloader.dataset.times=1',
                 'train_cfg.val_interval=1',
                 'default_hooks.checkpoint.interval=1', 'randomness.seed=0')

_trained = {}


def trained_checkpoint(tmp_path_factory, config=RETINANET_DEMO) -> str:
    """``epoch_1.pth`` of ``config`` trained tiny; trained once a session."""
    if config not in _trained:
        work_dir = tmp_path_factory.mktemp('demo_train')
        run_tool('tools/train.py', config, '--work-dir', work_dir,
                 '--cfg-options', *TINY_TRAINING)
        checkpoint = osp.join(work_dir, 'epoch_1.pth')
        assert osp.isfile(checkpoint), os.listdir(work_dir)
        _trained[config] = checkpoint
    return _trained[config]
