# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Train a detector: MMDetection 3.x's ``tools/train.py`` flags, with mmghost.

    python tools/train.py configs/retinanet_ghostnet_fpn.py [--work-dir DIR]
        [--resume [CKPT]] [--amp] [--auto-scale-lr] [--cfg-options K=V ...]
        [--launcher {none,pytorch,slurm,mpi}]

SIGTERM or SIGINT stops training after the current iteration with a
checkpoint (exit status 143 or 130); ``--resume`` continues from it.
"""
import argparse

from mmengine.config import DictAction

import mmghost  # noqa: F401  (registers mmghost, applies its fixes)
from mmghost.engine import (Preempted, ResumeError, build_runner,
                            config_from_args, parse_tool_args, shutdown_dist)
from mmghost.utils import check_data


def parse_args():
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (needs a CUDA GPU: '
        "mmengine's AmpOptimWrapper asserts one and stops on CPU)")
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate linearly from the config\'s '
        'auto_scale_lr.base_batch_size (16) to the real total batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or without a value from the latest '
        'checkpoint in the work dir (auto-resume)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs such as '
        'train_dataloader.batch_size=4 or "model.neck.in_channels=[a,b]"')
    return parse_tool_args(parser)


def main():
    args = parse_args()
    cfg = config_from_args(args)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise SystemExit(
                f'--auto-scale-lr needs auto_scale_lr.base_batch_size in '
                f'{args.config}, which has none')
        cfg.auto_scale_lr.enable = True

    # resume: an explicit checkpoint > auto-resume from the work dir
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    check_data(cfg, ('train_dataloader', 'val_dataloader'), args.config)

    runner = build_runner(cfg)
    try:
        runner.train()
    except ResumeError as e:
        raise SystemExit(str(e))
    except Preempted:
        # SIGTERM/SIGINT: every rank stopped after the same iteration, saved
        # and said so; the exit status is 128 + the signal number
        shutdown_dist()
        raise
    shutdown_dist()


if __name__ == '__main__':
    main()
