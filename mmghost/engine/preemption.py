# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Stop on SIGTERM or SIGINT without losing the iterations trained.

Cluster schedulers stop a job with SIGTERM and kill it a grace period later
(torchrun forwards the signal to its workers and kills them 30 s later);
by default the process dies at once and everything since the last
checkpoint is lost. While :class:`~mmghost.engine.SafeRunner` trains,
:class:`PreemptionHook` turns SIGTERM and SIGINT into a request: the
current iteration runs to its end, an iteration checkpoint is written
(atomically, with ``last_checkpoint`` pointing at it), one line says so and
:class:`Preempted` ends the process with status 128 + the signal number
(143 for SIGTERM, 130 for SIGINT). ``--resume`` continues from that
iteration.
"""
import contextlib
import os.path as osp
import signal
import threading
from typing import Iterator, Optional

import torch
from mmengine.dist import all_reduce, is_main_process
from mmengine.fileio import join_path
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from .checkpointing import LAST_CHECKPOINT, atomic_write_text

__all__ = ['Preempted', 'PreemptionHook']

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(SystemExit):
    """Training stopped on a signal after saving ``checkpoint``; the exit
    status is 128 + ``signum``, as for a process the signal had killed."""

    def __init__(self, signum: int, checkpoint: str):
        super().__init__(128 + signum)
        self.signum = signum
        self.checkpoint = checkpoint


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Stop at the next iteration boundary once SIGTERM or SIGINT arrived,
    after saving ``iter_{N}.pth``.

    :meth:`catch_signals` installs the handlers, which only record the
    signal, so neither the iteration nor the save is cut short; signals
    after the first change nothing (SIGKILL still kills). The stop is
    looked for after every training iteration and before every epoch (a
    signal during validation stops training before the next epoch). In a
    distributed run the ranks agree first (the largest signal number any
    rank received, one small ``all_reduce``), so all stop after the same
    iteration; rank 0 saves. The checkpoint goes where the checkpoint hook
    saves, with the optimizer and scheduler states whatever that hook's
    settings, and is not pruned by it.

    The hook runs last (``LOWEST``, registered after all other hooks), so
    the checkpoint holds what every hook did in the iteration.
    """

    priority = 'LOWEST'

    def __init__(self):
        self.signum: Optional[int] = None

    @contextlib.contextmanager
    def catch_signals(self) -> Iterator[None]:
        """Handle SIGTERM and SIGINT inside the block (main thread only; a
        signal the process ignores stays ignored)."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    previous[signum] = signal.signal(signum, self._record)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _record(self, signum: int, frame) -> None:
        # nothing else here: a handler runs between two bytecodes of
        # whatever the main thread does, a save included
        if self.signum is None:
            self.signum = signum

    def before_train_epoch(self, runner) -> None:
        self._stop_if_asked(runner, runner.iter)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        # the loop counts the iteration after its hooks
        self._stop_if_asked(runner, runner.iter + 1)

    def _stop_if_asked(self, runner, iteration: int) -> None:
        asked = torch.tensor([self.signum or 0])
        all_reduce(asked, op='max')
        signum = int(asked.item())
        if not signum:
            return
        checkpoint = self._save(runner, iteration)
        runner.logger.warning(
            f'{signal.Signals(signum).name}: stopped after iteration '
            f'{iteration} and saved {checkpoint} (last_checkpoint points '
            'at it); continue with --resume')
        raise Preempted(signum, checkpoint)

    @staticmethod
    def _save(runner, iteration: int) -> str:
        ckpt_hook = next(
            (h for h in runner.hooks if isinstance(h, CheckpointHook)), None)
        out_dir = runner.work_dir
        backend_args = None
        if ckpt_hook is not None and ckpt_hook.out_dir is not None:
            out_dir = ckpt_hook.out_dir
            backend_args = ckpt_hook.backend_args
        filename = f'iter_{iteration}.pth'
        runner.save_checkpoint(
            out_dir,
            filename,
            meta=dict(epoch=runner.epoch, iter=iteration),
            by_epoch=False,
            backend_args=backend_args)
        checkpoint = join_path(out_dir, filename, backend_args=backend_args)
        if is_main_process():
            atomic_write_text(
                osp.join(runner.work_dir, LAST_CHECKPOINT), checkpoint)
        return checkpoint
