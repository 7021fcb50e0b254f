# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Real COCO batches from the shipped slice, for building detectors."""
import copy
import math
import os
import os.path as osp
import subprocess
import sys
from contextlib import contextmanager

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


def _losses(losses: dict) -> dict:
    """name -> loss tensor (a list of per-level losses is summed)."""
    out = {}
    for name, value in losses.items():
        if 'loss' not in name:
            continue  # accuracies and the like
        values = value if isinstance(value, (list, tuple)) else [value]
        assert values, name
        out[name] = sum(values)
    return out


def _head_parts(model) -> list:
    return [getattr(model, name) for name in ('bbox_head', 'rpn_head',
                                              'roi_head')
            if getattr(model, name, None) is not None]


def _check_tensor_mode(model, feats, inputs):
    """Tensor mode's tuple: per-level maps of the declared channels and
    strides (single-stage), or per-RoI scores and boxes (two-stage)."""
    from mmdet.models.detectors import SingleStageDetector, TwoStageDetector
    assert isinstance(feats, tuple) and feats, type(feats)
    n, _, height, width = inputs.shape
    if isinstance(model, SingleStageDetector):
        head = model.bbox_head
        strides = [s[0] if isinstance(s, (tuple, list)) else s
                   for s in head.prior_generator.strides]
        cls_scores, bbox_preds = feats[0], feats[1]
        assert len(cls_scores) == len(bbox_preds) == len(strides)
        for lvl, stride in enumerate(strides):
            size = (math.ceil(height / stride), math.ceil(width / stride))
            assert cls_scores[lvl].shape == (
                n, head.num_base_priors * head.cls_out_channels, *size), lvl
            assert bbox_preds[lvl].shape == (
                n, head.num_base_priors * 4, *size), lvl
            for group in feats[2:]:  # FCOS/ATSS centerness
                assert group[lvl].shape[0] == n and group[lvl].shape[
                    -2:] == size
    else:
        assert isinstance(model, TwoStageDetector), type(model)
        assert len(feats) == 1  # the RoI head's outputs, as one tuple
        bbox_head = model.roi_head.bbox_head
        cls_score, bbox_pred, *masks = feats[0]
        rois = cls_score.shape[0]
        assert rois > 0
        assert cls_score.shape == (rois, bbox_head.num_classes + 1)
        assert bbox_pred.shape == (rois, 4 if bbox_head.reg_class_agnostic
                                   else 4 * bbox_head.num_classes)
        for mask in masks:  # Mask R-CNN's logits, for the first RoIs
            assert 0 < mask.shape[0] <= rois
            assert mask.shape[1] == bbox_head.num_classes

    def flat(outs):
        if isinstance(outs, torch.Tensor):
            return [outs]
        return [t for group in outs for t in flat(group)]

    assert all(torch.isfinite(t).all() for t in flat(feats))


def run_all_modes(model, batch):
    """loss, predict and tensor modes on one batch; returns the losses.

    loss: every loss is finite and positive, and every trainable parameter
    gets a finite gradient (non-zero somewhere in the backbone, the neck
    and each head); predict: a DetDataSample per
    image whose boxes (every score kept) lie in the original image; tensor:
    the raw outputs have the shapes the heads declare.
    """
    from mmdet.structures import DetDataSample
    model.train()
    model.zero_grad()
    data = model.data_preprocessor(copy.deepcopy(batch), training=True)
    losses = _losses(model(**data, mode='loss'))
    assert losses
    for name, loss in losses.items():
        assert loss.requires_grad, name
        assert torch.isfinite(loss) and loss > 0, (name, loss)
    sum(losses.values()).backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    no_grad = [n for n, p in trainable.items() if p.grad is None]
    assert not no_grad, f'{len(no_grad)} got no gradient: {no_grad[:5]}'
    assert all(torch.isfinite(p.grad).all() for p in trainable.values())
    for part in (model.backbone, model.neck, *_head_parts(model)):
        assert any(p.grad.abs().sum() > 0 for p in part.parameters()
                   if p.requires_grad), type(part).__name__

    model.eval()
    with torch.no_grad(), _keep_every_score(model):
        data = model.data_preprocessor(copy.deepcopy(batch), training=False)
        preds = model(**data, mode='predict')
        feats = model(data['inputs'], data['data_samples'], mode='tensor')
    assert len(preds) == len(batch['inputs'])
    for pred in preds:
        assert isinstance(pred, DetDataSample)
        boxes = pred.pred_instances.bboxes
        count = boxes.shape[0]
        assert count > 0 and boxes.shape == (count, 4)
        assert pred.pred_instances.scores.shape == (count, )
        assert pred.pred_instances.labels.shape == (count, )
        height, width = pred.ori_shape
        assert (boxes[:, 0] <= boxes[:, 2]).all()
        assert (boxes[:, 1] <= boxes[:, 3]).all()
        assert (boxes >= -1).all()
        assert (boxes[:, [0, 2]] <= width + 1).all()
        assert (boxes[:, [1, 3]] <= height + 1).all()
    _check_tensor_mode(model, feats, data['inputs'])
    return losses


@contextmanager
def _keep_every_score(model):
    """score_thr 0 in the test configs of the heads, for the call: a fresh
    detector scores below the usual 0.05, and an empty prediction shows
    nothing about where its boxes lie."""
    cfgs = [part.test_cfg for part in _head_parts(model)
            if isinstance(getattr(part, 'test_cfg', None), dict)
            and 'score_thr' in part.test_cfg]
    old = [c['score_thr'] for c in cfgs]
    for c in cfgs:
        c['score_thr'] = 0.0
    try:
        yield
    finally:
        for c, value in zip(cfgs, old):
            c['score_thr'] = value


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
