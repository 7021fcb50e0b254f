# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Test (and evaluate) a detector: MMDetection 3.x's ``tools/test.py`` flags.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out X.pkl]
        [--show] [--show-dir DIR] [--tta] [--cfg-options K=V ...]
        [--launcher {none,pytorch,slurm,mpi}]
"""
import argparse
import os
import os.path as osp

from mmengine.config import Config, ConfigDict, DictAction
from mmengine.registry import RUNNERS

import mmghost  # noqa: F401  (registers mmghost, applies its fixes)
from mmghost.engine import SafeRunner, shutdown_dist
from mmghost.utils import check_data


def parse_args():
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='save painted predictions to work_dir/<timestamp>/SHOW_DIR')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--tta',
        action='store_true',
        help="test-time augmentation from the config's tta_model and "
        'tta_pipeline')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main():
    args = parse_args()
    from mmdet.engine.hooks.utils import trigger_visualization_hook
    from mmdet.evaluation import DumpDetResults

    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if not osp.isfile(args.checkpoint) and '://' not in args.checkpoint:
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist')
    cfg.load_from = args.checkpoint

    if args.show or args.show_dir:
        cfg = trigger_visualization_hook(cfg, args)

    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise SystemExit(f'--tta needs tta_model and tta_pipeline in '
                             f'{args.config}, which lacks them')
        cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline

    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        raise SystemExit(f'--out must name a .pkl or .pickle file, '
                         f'got {args.out}')

    check_data(cfg, ('test_dataloader', ), args.config)

    # mmghost's runner (atomic checkpoints, a checked resume, DDP on CPU)
    # unless the config names its own
    if 'runner_type' not in cfg:
        runner = SafeRunner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)

    if args.out is not None:
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))

    runner.test()
    shutdown_dist()


if __name__ == '__main__':
    main()
