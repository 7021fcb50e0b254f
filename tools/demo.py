# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The main job on the embedded default: ``make demo``.

Trains the demo GhostNet RetinaNet from scratch on the shipped COCO slice
(data/tiny-coco) with mmengine's Runner, evaluates COCO mAP with
pycocotools through mmdet's CocoMetric, prints the mAP table, and saves
pictures of the predictions on the demo images. Exits non-zero, in one
sentence, when mAP@0.5 stays under the memorisation bar.

    python tools/demo.py [--config CONFIG] [--work-dir DIR] [--cfg-options ...]
"""
import argparse
import os.path as osp
import time

from mmengine.config import Config, DictAction

import mmghost  # noqa: F401
from mmghost.engine import SafeRunner
from mmghost.utils import check_data

# A memorisation check, not a COCO result: the demo evaluates on the images
# it trained on.
MAP50_BAR = 0.3


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--config', default='configs/retinanet_ghostnet_fpn_demo.py')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument(
        '--score-thr',
        type=float,
        default=0.3,
        help='draw predictions scoring at least this')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def metric_table(metrics: dict) -> str:
    rows = [('bbox mAP', 'coco/bbox_mAP'), ('bbox mAP@0.5', 'coco/bbox_mAP_50'),
            ('bbox mAP@0.75', 'coco/bbox_mAP_75'),
            ('mAP small', 'coco/bbox_mAP_s'), ('mAP medium', 'coco/bbox_mAP_m'),
            ('mAP large', 'coco/bbox_mAP_l')]
    rows += [(k[len('coco/'):-len('_precision')] + ' AP', k)
             for k in sorted(metrics) if k.endswith('_precision')]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'metric'.ljust(width)} | value |",
             f"|{'-' * (width + 2)}|-------|"]
    lines += [f'| {name.ljust(width)} | {metrics[key]:.3f} |'
              for name, key in rows if key in metrics]
    return '\n'.join(lines)


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = args.work_dir
    check_data(cfg, ('train_dataloader', 'test_dataloader'), args.config)

    start = time.time()
    runner = SafeRunner.from_cfg(cfg)
    runner.train()
    train_min = (time.time() - start) / 60

    # Predictions drawn on the demo images while testing.
    out_dir = osp.abspath(osp.join(cfg.work_dir, 'predictions'))
    for hook in runner.hooks:
        if type(hook).__name__ == 'DetVisualizationHook':
            hook.draw = True
            hook.test_out_dir = out_dir
            hook.score_thr = args.score_thr
    metrics = runner.test()
    total_min = (time.time() - start) / 60

    map50 = metrics['coco/bbox_mAP_50']
    verdict = 'reached' if map50 >= MAP50_BAR else 'NOT reached'
    print('\n' + '=' * 64)
    print(f'Demo: {args.config}, classes {cfg.get("demo_classes")}, '
          f'{runner.max_epochs} epochs, trained in {train_min:.1f} min '
          f'({total_min:.1f} min with testing)')
    print(metric_table(metrics))
    print(f'bbox mAP@0.5 on the training images: {map50:.3f} '
          f'(memorisation bar {MAP50_BAR}: {verdict})')
    print(f'pictures of the predictions (score >= {args.score_thr}): '
          f'{out_dir}')
    print(f'checkpoints and logs: {osp.abspath(cfg.work_dir)}')
    print('=' * 64)
    if map50 < MAP50_BAR:
        raise SystemExit(
            f'Demo failed: bbox mAP@0.5 {map50:.3f} on the training images '
            f'is below the memorisation bar {MAP50_BAR}; the model did not '
            'learn its images.')


if __name__ == '__main__':
    main()
