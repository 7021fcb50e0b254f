# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""A hook for preemption tests: a signal at a chosen iteration.

A signal from outside arrives wherever the process happens to be; this hook
sends it at a known point, so the tests stop a run at an iteration they
choose, on a loaded machine too. Loaded by a config through
``custom_imports=dict(imports=['mmghost', 'tests.test_engine.signal_hooks'])``
with the repository root on ``PYTHONPATH``.
"""
import os
import os.path as osp
import signal
import time
from typing import Optional

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

WAIT = 60  # s, for the signal to reach the main thread's handler


@HOOKS.register_module()
class SignalAtIter(Hook):
    """Send signal ``send`` (a name) to this process at the end of
    iteration ``at`` (counted from 1) on rank ``rank``, and wait until its
    :class:`~mmghost.engine.PreemptionHook` has it (another thread may take
    the signal first). With ``again_in_save`` (a name), send that signal
    to this process when the stop's checkpoint is about to be written,
    after saying so in ``signal_in_save.txt`` in the work dir.

    Every rank appends the iterations it finished to
    ``iters_rank{r}.txt`` in the work dir; ``run_ended`` says whether the
    ``after_run`` hooks ran.
    """

    priority = 'NORMAL'  # before PreemptionHook looks for a stop

    def __init__(self,
                 at: Optional[int] = None,
                 send: str = 'SIGTERM',
                 rank: int = 0,
                 again_in_save: Optional[str] = None):
        self.at = at
        self.send = signal.Signals[send]
        self.rank = rank
        self.again_in_save = (None if again_in_save is None else
                              signal.Signals[again_in_save])
        self.run_ended = False

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        iteration = runner.iter + 1
        with open(osp.join(runner.work_dir, f'iters_rank{get_rank()}.txt'),
                  'a') as f:
            f.write(f'{iteration}\n')
        if iteration != self.at or get_rank() != self.rank:
            return
        os.kill(os.getpid(), self.send)
        deadline = time.monotonic() + WAIT
        while runner.preemption.signum is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f'no {self.send.name} came back in {WAIT} s')
            time.sleep(0.01)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if (self.again_in_save is not None
                and runner.preemption.signum is not None):
            with open(osp.join(runner.work_dir, 'signal_in_save.txt'),
                      'w') as f:
                f.write(f'{self.again_in_save.name}\n')
            os.kill(os.getpid(), self.again_in_save)

    def after_run(self, runner) -> None:
        self.run_ended = True
