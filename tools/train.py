# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Train a detector: MMDetection 3.x's ``tools/train.py`` flags, with mmghost.

    python tools/train.py configs/retinanet_ghostnet_fpn.py [--work-dir DIR]
        [--resume [CKPT]] [--amp] [--auto-scale-lr] [--cfg-options K=V ...]
        [--launcher {none,pytorch,slurm,mpi}]

SIGTERM or SIGINT stops training after the current iteration with a
checkpoint (exit status 143 or 130); ``--resume`` continues from it.
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.registry import RUNNERS

import mmghost  # noqa: F401  (registers mmghost, applies its fixes)
from mmghost.engine import Preempted, ResumeError, SafeRunner, shutdown_dist
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
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir: CLI > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

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

    # mmghost's runner (atomic checkpoints, a checked resume, DDP on CPU)
    # unless the config names its own
    if 'runner_type' not in cfg:
        runner = SafeRunner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
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
