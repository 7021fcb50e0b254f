# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Real COCO batches from the shipped slice, for building detectors."""
import copy
import os
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmdet.registry import DATASETS, MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA_ROOT = osp.join(ROOT, 'data', 'tiny-coco') + '/'


def small_pipeline(pipeline, scale, with_mask=False):
    """The config's pipeline at a small scale, without random flips."""
    out = []
    for t in copy.deepcopy(pipeline):
        if t['type'] == 'Resize':
            t['scale'] = scale
        if t['type'] == 'RandomFlip':
            continue
        if t['type'] == 'LoadAnnotations' and with_mask:
            t['with_mask'] = True
        out.append(t)
    return out


def tiny_coco_batch(cfg: Config, num_images=2, scale=(320, 320),
                    with_mask=False):
    """A collated batch of shipped tiny-coco images through cfg's pipeline."""
    init_default_scope('mmdet')
    dataset_cfg = cfg.train_dataloader.dataset
    while 'pipeline' not in dataset_cfg:  # RepeatDataset and the like
        dataset_cfg = dataset_cfg.dataset
    pipeline = small_pipeline(dataset_cfg.pipeline, scale, with_mask)
    dataset = DATASETS.build(
        dict(
            type='CocoDataset',
            data_root=DATA_ROOT,
            ann_file='annotations/instances.json',
            data_prefix=dict(img='images/'),
            filter_cfg=dict(filter_empty_gt=True, min_size=32),
            metainfo=dataset_cfg.get('metainfo'),  # the demos' class subset
            pipeline=pipeline))
    return pseudo_collate([dataset[i] for i in range(num_images)])


def build_detector(cfg: Config):
    init_default_scope('mmdet')
    model_cfg = copy.deepcopy(cfg.model)
    if model_cfg.get('backbone', {}).get('init_cfg'):
        model_cfg.backbone.init_cfg = None  # no ImageNet weights here
    model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def run_all_modes(model, batch):
    """loss, predict and tensor modes on one batch; returns the losses."""
    model.train()
    data = model.data_preprocessor(copy.deepcopy(batch), training=True)
    losses = model(**data, mode='loss')
    total = sum(v if isinstance(v, torch.Tensor) else sum(v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total), losses
    total.backward()
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(batch), training=False)
        preds = model(**data, mode='predict')
        feats = model(data['inputs'], data['data_samples'], mode='tensor')
    assert len(preds) == len(batch['inputs'])
    for p in preds:
        assert p.pred_instances.bboxes.shape[-1] == 4
    assert feats is not None
    return losses


def run_tool(*args, check=True, timeout=900):
    """``python ARGS`` from the repository root, as a user runs the tools."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    proc = subprocess.run([sys.executable, *map(str, args)],
                          cwd=ROOT,
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed:\n{proc.stdout[-3000:]}\n'
                             f'{proc.stderr[-5000:]}')
    return proc
