# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""mmengine's ``Runner`` with safe checkpoints, a checked resume and CPU DDP.

``tools/train.py`` and ``tools/test.py`` build this runner unless a config
sets ``runner_type``. What it changes, and nothing else:

* ``save_checkpoint`` writes ``<name>.tmp`` beside the checkpoint, flushes it
  to disk and renames it over ``<name>``: a kill leaves the old file or the
  new one, never half of one. How checkpoints are saved and which one a
  resume takes live in :mod:`mmghost.engine.checkpointing`; the hook is
  :class:`~mmghost.engine.checkpointing.SafeCheckpointHook`, which does the
  same for ``last_checkpoint`` and prunes old checkpoints last.
* Resuming checks the checkpoint first. Auto-resume (``resume=True`` without
  ``load_from``, i.e. bare ``--resume``) falls back to the newest checkpoint
  that loads when ``last_checkpoint`` is missing, empty or names a bad file,
  starts from scratch only in a work dir without checkpoints (with a
  warning), and otherwise stops with :class:`ResumeError`.
* Distributed runs without CUDA use gloo and a DDP without ``device_ids``
  (see :mod:`mmghost.engine.dist`); with CUDA these paths are mmengine's.
* SIGTERM and SIGINT stop training after the current iteration, with an
  iteration checkpoint (:class:`~mmghost.engine.PreemptionHook`) and the
  ``after_run`` hooks (the visualizer is closed, logs uploaded), and an
  ``EpochBasedTrainLoop`` is built as
  :class:`~mmghost.engine.ResumableEpochBasedTrainLoop`, which resumes
  inside the epoch where it stopped instead of training its first batches
  again.
"""
import argparse
import os
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config
from mmengine.dist import is_distributed, master_only
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.hooks import CheckpointHook
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import EpochBasedTrainLoop, Runner

from .checkpointing import (LAST_CHECKPOINT, ResumeError, resume_target,
                            save_atomically)
from .dist import cpu_model_wrapper_cfg, cuda_absent, init_dist
from .loops import ResumableEpochBasedTrainLoop
from .preemption import Preempted, PreemptionHook

__all__ = [
    'SafeRunner', 'build_runner', 'config_from_args', 'parse_tool_args'
]


def _is_checkpoint_hook(cfg) -> bool:
    if not isinstance(cfg, dict):
        return False  # None (disabled) or a built hook: leave it
    hook_type = cfg.get('type', 'CheckpointHook')
    if isinstance(hook_type, str):
        return hook_type.split('.')[-1] == 'CheckpointHook'
    return hook_type is CheckpointHook


def _resumable_loop_cfg(cfg: Dict) -> Dict:
    """``cfg`` with an ``EpochBasedTrainLoop`` (by type or ``by_epoch``)
    turned into a :class:`ResumableEpochBasedTrainLoop`."""
    cfg = dict(cfg)
    if 'type' not in cfg:
        if not cfg.get('by_epoch', False):
            return cfg
        cfg.pop('by_epoch')
    else:
        loop_type = cfg['type']
        if isinstance(loop_type, str):
            if loop_type.split('.')[-1] != 'EpochBasedTrainLoop':
                return cfg
        elif loop_type is not EpochBasedTrainLoop:
            return cfg
    cfg['type'] = ResumableEpochBasedTrainLoop
    return cfg


@RUNNERS.register_module()
class SafeRunner(Runner):
    """``mmengine.runner.Runner`` that saves atomically, resumes only from a
    checkpoint that loads, and trains distributed on CPU (see module
    docstring)."""

    # -- environment -------------------------------------------------------
    def setup_env(self, env_cfg: Dict) -> None:
        if self.distributed and not is_distributed() and cuda_absent():
            init_dist(self.launcher, **env_cfg.get('dist_cfg', {}))
        super().setup_env(env_cfg)

    def wrap_model(self, model_wrapper_cfg: Optional[Dict], model):
        if self.distributed and not is_model_wrapper(model):
            model_wrapper_cfg = cpu_model_wrapper_cfg(
                model_wrapper_cfg,
                self.cfg.get('find_unused_parameters', False))
        return super().wrap_model(model_wrapper_cfg, model)

    # -- saving ------------------------------------------------------------
    def register_default_hooks(self, hooks: Optional[Dict] = None) -> None:
        hooks = dict(hooks or {})
        checkpoint = hooks.get('checkpoint',
                               dict(type='CheckpointHook', interval=1))
        if _is_checkpoint_hook(checkpoint):
            hooks['checkpoint'] = dict(checkpoint, type='SafeCheckpointHook')
        super().register_default_hooks(hooks)

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        super().register_hooks(default_hooks, custom_hooks)
        # after every other hook, so that its checkpoint holds their work
        self.preemption = PreemptionHook()
        self.register_hook(self.preemption)

    @master_only
    def save_checkpoint(self,
                        out_dir: str,
                        filename: str,
                        file_client_args: Optional[dict] = None,
                        save_optimizer: bool = True,
                        save_param_scheduler: bool = True,
                        meta: Optional[dict] = None,
                        by_epoch: bool = True,
                        backend_args: Optional[dict] = None):
        """``Runner.save_checkpoint`` through ``filename.tmp`` and an
        atomic rename (local directories; other backends as mmengine)."""
        kwargs = dict(
            file_client_args=file_client_args,
            save_optimizer=save_optimizer,
            save_param_scheduler=save_param_scheduler,
            meta=meta,
            by_epoch=by_epoch,
            backend_args=backend_args)
        local = file_client_args is None and isinstance(
            get_file_backend(out_dir, backend_args=backend_args),
            LocalBackend)
        if not local:
            return super().save_checkpoint(out_dir, filename, **kwargs)
        save_atomically(
            lambda name: super(SafeRunner, self).save_checkpoint(
                out_dir, name, **kwargs), out_dir, filename)

    # -- resuming ----------------------------------------------------------
    def train(self):
        if not self._resume:
            last = osp.join(self.work_dir, LAST_CHECKPOINT)
            if osp.isfile(last):
                self.logger.warning(
                    f'{self.work_dir} holds the checkpoints of an earlier '
                    f'run ({last}); this run does not resume it and '
                    'overwrites them as it saves (pass --resume to '
                    'continue that run instead)')
        with self.preemption.catch_signals():
            try:
                return super().train()
            except Preempted:
                # the run ends here: close the visualizer, upload the logs
                self.call_hook('after_run')
                raise

    def build_train_loop(self, loop):
        if isinstance(loop, dict):
            loop = _resumable_loop_cfg(loop)
        return super().build_train_loop(loop)

    def load_or_resume(self) -> None:
        """mmengine's ``load_or_resume``, with the resume target checked."""
        if self._has_loaded or not self._resume:
            return super().load_or_resume()
        try:
            resume_from = resume_target(self.work_dir, self._load_from)
        except ResumeError as e:
            self.logger.error(str(e))
            raise
        if resume_from is None:
            self.logger.warning(
                f'resume: {self.work_dir} holds no checkpoint yet (no '
                'last_checkpoint, no *.pth), so training starts from scratch')
            return
        if self._load_from is None:
            self.logger.info(f'Auto-resuming from {resume_from}')
        self.resume(resume_from)
        self._has_loaded = True


# -- what tools/train.py and tools/test.py share ---------------------------
def parse_tool_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Add mmdet's ``--launcher``/``--local-rank`` to a tool's ``parser``,
    parse, and export ``LOCAL_RANK`` for launchers that pass the flag."""
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


def config_from_args(args: argparse.Namespace) -> Config:
    """``args.config`` with ``--launcher`` and ``--cfg-options`` applied and
    its work dir set: ``--work-dir`` > the config's > ``./work_dirs/<config
    name>``."""
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_runner(cfg: Config) -> Runner:
    """mmghost's :class:`SafeRunner` (atomic checkpoints, a checked resume,
    DDP on CPU), unless the config names its own ``runner_type``."""
    if 'runner_type' not in cfg:
        return SafeRunner.from_cfg(cfg)
    return RUNNERS.build(cfg)
