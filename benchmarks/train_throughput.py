# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Training throughput of a paper config, and the GPU-hours of its schedule.

    python benchmarks/train_throughput.py [CONFIG ...] [--device cuda]
        [--batch 2] [--iters 20]

Runs the config's own training step (its model, optimizer and train
pipeline at 1333x800) on real shipped COCO images, batch ``--batch`` per
device, and prints seconds per iteration, images per second and what 12
epochs of COCO train2017 (117,266 images with annotations) take at that
speed on one device of this kind.
"""
import argparse
import copy
import os.path as osp
import statistics
import time

import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
COCO_TRAIN_IMAGES = 117266  # train2017 images left by filter_empty_gt


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'configs',
        nargs='*',
        default=[
            'configs/retinanet_ghostnet_fpn.py',
            'configs/retinanet_mobilenetv2_fpn.py'
        ])
    parser.add_argument('--device', default='cuda' if
                        torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--iters', type=int, default=20)
    return parser.parse_args()


def _focal_loss_without_mmcv_cuda_ops():
    """Use mmdet's pure-PyTorch focal loss where mmcv was built without its
    CUDA ops (as on a lent GPU machine that cannot compile them in time):
    the same function, computed by PyTorch instead of mmcv's kernel."""
    import torch.nn.functional as F
    from mmdet.models.losses import focal_loss

    def sigmoid_focal_loss(pred, target, gamma, alpha, weight, reduction):
        one_hot = F.one_hot(target, pred.size(1) + 1)[:, :-1].type_as(pred)
        return focal_loss.py_sigmoid_focal_loss(
            pred, one_hot, None, gamma, alpha, reduction='none')

    focal_loss._sigmoid_focal_loss = sigmoid_focal_loss
    print('note: mmcv has no CUDA ops here; focal loss computed by PyTorch')


def main():
    args = parse_args()
    import mmghost  # noqa: F401
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmdet.registry import DATASETS, MODELS
    init_default_scope('mmdet')
    if args.device == 'cuda':
        from mmcv.ops import sigmoid_focal_loss
        try:
            sigmoid_focal_loss(
                torch.zeros(1, 2, device='cuda'),
                torch.zeros(1, dtype=torch.long, device='cuda'), 2.0, 0.25)
        except (RuntimeError, NotImplementedError):
            _focal_loss_without_mmcv_cuda_ops()
    for config in args.configs:
        cfg = Config.fromfile(osp.join(ROOT, config))
        pipeline = [
            t for t in cfg.train_dataloader.dataset.pipeline
            if t.type != 'RandomFlip'
        ]
        dataset = DATASETS.build(
            dict(
                type='CocoDataset',
                data_root=osp.join(ROOT, 'data', 'tiny-coco'),
                ann_file='annotations/instances.json',
                data_prefix=dict(img='images/'),
                filter_cfg=dict(filter_empty_gt=True),
                pipeline=pipeline))
        batches = [
            pseudo_collate([dataset[(i * args.batch + j) % len(dataset)]
                            for j in range(args.batch)]) for i in range(4)
        ]
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.backbone.init_cfg = None  # speed only
        model = MODELS.build(model_cfg).to(args.device)
        model.train()
        optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        times = []
        for i in range(args.iters + 3):
            if args.device == 'cuda':
                torch.cuda.synchronize()
            start = time.perf_counter()
            model.train_step(copy.deepcopy(batches[i % 4]), optim)
            if args.device == 'cuda':
                torch.cuda.synchronize()
            if i >= 3:  # warm-up
                times.append(time.perf_counter() - start)
        sec = statistics.median(times)
        ips = args.batch / sec
        hours = 12 * COCO_TRAIN_IMAGES / ips / 3600
        name = (torch.cuda.get_device_name()
                if args.device == 'cuda' else 'CPU')
        print(f'{config}: {name}, batch {args.batch}, 1333x800: '
              f'{sec:.3f} s/iter, {ips:.1f} img/s; 12 epochs of COCO '
              f'train2017 = {hours:.1f} device-hours at this speed')


if __name__ == '__main__':
    main()
