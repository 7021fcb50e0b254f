# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Run tools/train.py and tools/test.py on the demo config, shrunk for CI."""
import glob
import os
import os.path as osp
import subprocess
import sys

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOLS = osp.join(ROOT, 'tools')
DEMO = osp.join(ROOT, 'configs', 'retinanet_ghostnet_fpn_demo.py')
DATA = osp.join(ROOT, 'data', 'tiny-coco') + '/'
TIMEOUT = 300  # s, for any one tool run


def env(**extra):
    """A child environment: one thread per process (2 shared cores), logs
    line by line."""
    out = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
               PYTHONUNBUFFERED='1', PYTHONWARNINGS='ignore')
    out.update(extra)
    return out


def demo_options(times=2, epochs=3, scale=128, data_root=None):
    """cfg-options that shrink the demo: `times` passes over the 10 person
    images per epoch (5 iterations of 4 at times=2), `scale` pixels, one
    checkpoint per epoch, all kept, a fixed seed, no worker processes."""
    s = f'({scale},{scale})'
    opts = [
        f'train_dataloader.dataset.times={times}',
        f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs}',
        f'train_dataloader.dataset.dataset.pipeline.2.scale={s}',
        f'val_dataloader.dataset.pipeline.1.scale={s}',
        f'test_dataloader.dataset.pipeline.1.scale={s}',
        'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=-1',
        'randomness.seed=0',
    ]
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0',
                 f'{loader}.persistent_workers=False']
    if data_root is not None:
        opts += [
            f'train_dataloader.dataset.dataset.data_root={data_root}',
            f'val_dataloader.dataset.data_root={data_root}',
            f'test_dataloader.dataset.data_root={data_root}',
            f'val_evaluator.ann_file={data_root}annotations/instances.json',
            f'test_evaluator.ann_file={data_root}annotations/instances.json',
        ]
    return opts


def train_cmd(work_dir, *args, options=(), config=DEMO):
    return [sys.executable, osp.join(TOOLS, 'train.py'), config,
            '--work-dir', str(work_dir), *args,
            '--cfg-options', *options]


def run(cmd, cwd=ROOT, **env_extra):
    """Run a tool to its end; stdout and stderr come back as text."""
    return subprocess.run(cmd, cwd=cwd, env=env(**env_extra),
                          capture_output=True, text=True, timeout=TIMEOUT)


def log_text(work_dir):
    """All of the work dir's run logs, oldest run first."""
    logs = sorted(glob.glob(osp.join(str(work_dir), '*', '*.log')))
    return '\n'.join(open(p).read() for p in logs)


def load(path):
    return torch.load(path, map_location='cpu', weights_only=False)


def snapshot(work_dir):
    """path -> (bytes, mtime) of every file under work_dir."""
    out = {}
    for dirpath, _, files in os.walk(str(work_dir)):
        for name in files:
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[path] = (f.read(), os.stat(path).st_mtime_ns)
    return out
