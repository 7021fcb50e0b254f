# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""SIGTERM stops training after the current iteration with a checkpoint, and
``--resume`` continues from that iteration with nothing trained twice.

Runs of ``tools/train.py`` signal themselves at a chosen iteration through a
test hook (:mod:`tests.test_engine.signal_hooks`), which also records the
iterations each rank finished. A run stopped inside an epoch and resumed
must end like an uninterrupted one: the same iterations, optimizer steps
and weights. A second signal while the stop's checkpoint is written must
leave it complete; two gloo processes, one of them signalled, must stop
after the same iteration and resume to the same step count.
"""
import os
import os.path as osp
import random
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel

from mmghost.engine import Preempted, PreemptionHook, SafeRunner
from mmghost.engine.checkpointing import resume_problem
from tests.test_engine.helpers import (DATA, DEMO, ROOT, TIMEOUT, TOOLS,
                                       demo_options, env, load, log_text, run,
                                       train_cmd)
from tests.test_engine.signal_hooks import SignalAtIter

pytestmark = pytest.mark.trains

EPOCHS = 2
ITERS = 5  # per epoch: 10 person images x times=2, batches of 4
# no validation: it is not what is tested, and it costs a run seconds
OPTIONS = demo_options(times=2, epochs=EPOCHS) + [
    f'train_cfg.val_begin={EPOCHS + 1}']
# a seeded random iteration inside epoch 2 (epoch 1 has its checkpoint)
STOP_AT = random.Random(13).choice(
    [i for i in range(ITERS + 1, EPOCHS * ITERS) if i % ITERS])
STOPPED = (r'WARNING - {signal}: stopped after iteration {it} and saved '
           r'{path} \(last_checkpoint points at it\); continue with --resume')


def signal_config(directory, **hook):
    """The demo config with the test hook (``SignalAtIter(**hook)``)."""
    path = directory / f'demo_signal_{len(list(directory.glob("*.py")))}.py'
    path.write_text(
        f'_base_ = [{DEMO!r}]\n'
        "custom_imports = dict(imports=['mmghost', "
        "'tests.test_engine.signal_hooks'], allow_failed_imports=False)\n"
        f"custom_hooks = [dict(type='SignalAtIter', **{hook!r})]\n")
    return str(path)


def train(work_dir, *args, **hook):
    config = signal_config(work_dir.parent, **hook)
    return run(train_cmd(work_dir, *args, options=OPTIONS, config=config),
               PYTHONPATH=ROOT)


def iterations(work_dir, rank=0):
    """The iterations the rank finished, in the order it did."""
    with open(osp.join(str(work_dir), f'iters_rank{rank}.txt')) as f:
        return [int(line) for line in f]


def optimizer_steps(checkpoint):
    """AdamW's step count (the same for every parameter)."""
    steps = {int(state['step'])
             for state in checkpoint['optimizer']['state'].values()}
    assert len(steps) == 1, steps
    return steps.pop()


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """The uninterrupted run."""
    work_dir = tmp_path_factory.mktemp('reference') / 'work'
    proc = train(work_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work_dir


@pytest.fixture(scope='module')
def stopped(tmp_path_factory):
    """A run sent SIGTERM at the end of iteration STOP_AT, and a second
    SIGTERM as the stop's checkpoint is about to be written."""
    work_dir = tmp_path_factory.mktemp('stopped') / 'work'
    proc = train(work_dir, at=STOP_AT, again_in_save='SIGTERM')
    return work_dir, proc


def test_sigterm_stops_after_the_iteration_with_a_checkpoint(stopped):
    work_dir, proc = stopped
    # it finished the iteration, saved it, said so once, and exited 143
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    checkpoint = work_dir / f'iter_{STOP_AT}.pth'
    said = re.findall(
        STOPPED.format(signal='SIGTERM', it=STOP_AT,
                       path=re.escape(str(checkpoint))), proc.stdout)
    assert len(said) == 1, proc.stdout[-3000:]
    assert 'Traceback' not in proc.stderr
    assert iterations(work_dir) == list(range(1, STOP_AT + 1))
    meta = load(checkpoint)['meta']
    assert (meta['epoch'], meta['iter']) == (1, STOP_AT)


def test_second_sigterm_during_the_save_changes_nothing(stopped):
    """The new checkpoint is complete and ``last_checkpoint`` names it; the
    old one is untouched; nothing half written is left."""
    work_dir, _ = stopped
    assert (work_dir / 'signal_in_save.txt').read_text() == 'SIGTERM\n'
    checkpoint = work_dir / f'iter_{STOP_AT}.pth'
    assert (work_dir / 'last_checkpoint').read_text() == str(checkpoint)
    assert resume_problem(str(checkpoint)) is None
    assert optimizer_steps(load(checkpoint)) == STOP_AT
    assert load(work_dir / 'epoch_1.pth')['meta']['iter'] == ITERS
    assert not list(work_dir.glob('*.tmp'))


def test_resume_ends_like_the_uninterrupted_run(stopped, reference,
                                                tmp_path):
    work_dir = tmp_path / 'work'
    shutil.copytree(stopped[0], work_dir)
    (work_dir / 'last_checkpoint').write_text(
        str(work_dir / f'iter_{STOP_AT}.pth'))
    proc = train(work_dir, '--resume')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'resumed epoch: 1, iter: {STOP_AT}' in log_text(work_dir)
    # the rest of epoch 2, and nothing of it again
    assert iterations(work_dir) == list(range(1, EPOCHS * ITERS + 1))
    ours = load(work_dir / f'epoch_{EPOCHS}.pth')
    ref = load(reference / f'epoch_{EPOCHS}.pth')
    assert ours['meta']['iter'] == ref['meta']['iter'] == EPOCHS * ITERS
    assert optimizer_steps(ours) == optimizer_steps(ref) == EPOCHS * ITERS
    assert ours['state_dict'].keys() == ref['state_dict'].keys()
    for key, value in ref['state_dict'].items():
        torch.testing.assert_close(
            ours['state_dict'][key], value, atol=1e-5, rtol=0, msg=key)


def run_launcher(cmd, cwd, **env_extra):
    """``run`` for a torchrun launch that stops its ranks at the timeout.

    The ranks run in sessions of their own, so killing the launcher would
    leave ranks that wait for each other running: the launcher gets
    SIGTERM, and kills its ranks when they have not stopped 30 s later."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env(**env_extra),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=120)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path')
def test_two_processes_stop_together_and_resume(tmp_path):
    """SIGTERM to rank 1 alone stops both ranks after the same iteration,
    rank 0 saves, and the resumed run ends at one epoch's step count. Run
    outside the repository, as ``test_dist_cpu.py`` explains."""
    work_dir = tmp_path / 'work'
    options = demo_options(times=2, epochs=1, data_root=DATA) + [
        'train_cfg.val_begin=2']
    stop_at = 2  # of 3: 20 images over 2 ranks in batches of 4

    def dist_train(*args, **hook):
        config = signal_config(tmp_path, **hook)
        return run_launcher(['bash', osp.join(TOOLS, 'dist_train.sh'),
                             config, '2', '--work-dir', str(work_dir), *args,
                             '--cfg-options', *options], cwd=tmp_path,
                            PORT=free_port(), PYTHON=sys.executable,
                            PYTHONPATH=ROOT)

    # rank 0, which saves, gets no signal: it learns of the stop from rank 1
    # (a signal to torchrun reaches both ranks, usually in the same
    # iteration, and would not show that they agree)
    proc = dist_train(at=stop_at, rank=1)
    assert proc.returncode != 0
    checkpoint = work_dir / f'iter_{stop_at}.pth'
    assert re.search(
        STOPPED.format(signal='SIGTERM', it=stop_at,
                       path=re.escape(str(checkpoint))), proc.stdout), (
                           proc.stdout + proc.stderr)[-4000:]
    assert iterations(work_dir, 0) == iterations(work_dir, 1) == [1, 2]
    assert (work_dir / 'last_checkpoint').read_text() == str(checkpoint)
    assert optimizer_steps(load(checkpoint)) == stop_at

    resumed = dist_train('--resume')
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    for rank in (0, 1):
        assert iterations(work_dir, rank) == [1, 2, 3]
    final = load(work_dir / 'epoch_1.pth')
    assert final['meta']['iter'] == 3
    assert optimizer_steps(final) == 3


# -- in-process: a toy model, the signal handling ----------------------------
class Recorder(BaseModel):
    """A linear layer that records the dataset indices it trains on."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.seen = []

    def forward(self, inputs, idx, data_samples=None, mode='tensor'):
        self.seen += idx.tolist()
        out = self.fc(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def toy_runner(work_dir, seed, **kwargs):
    data = [dict(inputs=torch.full((4, ), float(i)), idx=i)
            for i in range(16)]
    return SafeRunner(
        model=Recorder(),
        work_dir=str(work_dir),
        experiment_name=f'toy_seed{seed}',
        train_dataloader=dict(
            dataset=data,
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,  # 8 iterations an epoch
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1)),
        randomness=dict(seed=seed),
        default_scope='mmengine',
        **kwargs)


def test_resumed_epoch_meets_the_rest_of_its_batches(tmp_path):
    """Stopped after 3 of epoch 2's 8 batches, the resumed run trains the
    other 5, in the stopped run's shuffle: the resuming process has a seed
    of its own (as every run without ``randomness.seed`` has)."""
    signaller = SignalAtIter(at=11)
    first = toy_runner(tmp_path, seed=1, custom_hooks=[signaller])
    with pytest.raises(Preempted) as stop:
        first.train()
    assert stop.value.code == 143
    assert signaller.run_ended  # the visualizer is closed, logs uploaded
    seen = first.model.seen
    assert len(seen) == 22 and sorted(seen[:16]) == list(range(16))

    resumed = toy_runner(tmp_path, seed=2, resume=True)
    resumed.train()
    assert len(resumed.model.seen) == 10
    assert sorted(seen[16:] + resumed.model.seen) == list(range(16))


# -- the signal handling, in-process -----------------------------------------
def test_signals_are_recorded_inside_the_block_only():
    hook = PreemptionHook()
    before = signal.getsignal(signal.SIGINT)
    with hook.catch_signals():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # the first one counts
    assert hook.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before
    assert Preempted(signal.SIGINT, 'x.pth').code == 130
    assert Preempted(signal.SIGTERM, 'x.pth').code == 143


def test_an_ignored_signal_stays_ignored():
    hook = PreemptionHook()
    before = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with hook.catch_signals():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
        assert hook.signum is None
    finally:
        signal.signal(signal.SIGTERM, before)
