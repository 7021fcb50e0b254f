# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Checkpoints are never half-written (issue #5).

A toy run (a 4 MB linear layer, so the child starts in seconds) is killed
with SIGKILL while ``epoch_2.pth`` is half on disk: the child's file backend
writes half the bytes, flushes them and waits to be killed. With
``max_keep_ckpts=1`` stock mmengine has by then deleted ``epoch_1.pth``
and left a truncated ``epoch_2.pth``; mmghost's runner must leave
``epoch_1.pth`` and ``last_checkpoint`` intact and resumable.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from torch.utils.data import DataLoader

from mmghost.engine import (SafeRunner, atomic_write_text, checkpointing,
                            find_resume_checkpoint)
from mmghost.engine.checkpointing import resume_problem
from tests.test_engine.helpers import ROOT, env

pytestmark = pytest.mark.trains

CHILD = textwrap.dedent('''
    import os, sys, time
    import torch, torch.nn as nn
    from torch.utils.data import DataLoader
    from mmengine.fileio import LocalBackend
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from mmghost.engine import SafeRunner

    work_dir, runner_name, marker = sys.argv[1:4]

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1000, 1000)

        def forward(self, inputs, data_samples=None, mode='tensor'):
            out = self.fc(torch.stack(inputs))
            return dict(loss=out.pow(2).mean()) if mode == 'loss' else out

    put = LocalBackend.put

    def put_half_then_hang(self, obj, filepath):
        if 'epoch_2' not in str(filepath):
            return put(self, obj, filepath)
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
            f.flush()
            os.fsync(f.fileno())
        open(marker, 'w').close()
        time.sleep(600)  # killed here

    LocalBackend.put = put_half_then_hang
    runner_cls = dict(mmghost=SafeRunner, mmengine=Runner)[runner_name]
    runner = runner_cls(
        model=Toy(),
        work_dir=work_dir,
        train_dataloader=DataLoader(
            [torch.randn(1000) for _ in range(4)], batch_size=2,
            collate_fn=lambda batch: dict(inputs=batch)),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1,
                            max_keep_ckpts=1)),
        randomness=dict(seed=0))
    runner.train()
''')


def kill_during_second_save(tmp_path, runner_name):
    script = tmp_path / 'child.py'
    script.write_text(CHILD)
    work_dir = tmp_path / 'work'
    marker = tmp_path / 'writing'
    proc = subprocess.Popen(
        [sys.executable, str(script), str(work_dir), runner_name,
         str(marker)], cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, 'the child never reached epoch 2'
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return work_dir


def test_kill_during_save_keeps_previous_checkpoint(tmp_path):
    work_dir = kill_during_second_save(tmp_path, 'mmghost')
    last = (work_dir / 'last_checkpoint').read_text()
    assert last == str(work_dir / 'epoch_1.pth')
    assert resume_problem(last) is None
    assert torch.load(last, weights_only=False)['meta']['epoch'] == 1
    # the half-written bytes only ever had the temporary name
    assert not (work_dir / 'epoch_2.pth').exists()
    assert (work_dir / 'epoch_2.pth.tmp').is_file()
    assert find_resume_checkpoint(str(work_dir)) == last


def test_stock_mmengine_loses_checkpoint_on_kill(tmp_path):
    """The same kill under mmengine 0.10.7's Runner: the hole the test
    above guards against (and proof that the harness can see it)."""
    work_dir = kill_during_second_save(tmp_path, 'mmengine')
    assert not (work_dir / 'epoch_1.pth').exists()  # pruned before saving
    assert (work_dir / 'last_checkpoint').read_text() == str(
        work_dir / 'epoch_1.pth')
    assert resume_problem(str(work_dir / 'epoch_2.pth')).startswith(
        'is unreadable (PytorchStreamReader failed reading zip archive')


def test_atomic_write_text_keeps_old_content_on_failure(tmp_path,
                                                        monkeypatch):
    path = str(tmp_path / 'last_checkpoint')
    atomic_write_text(path, '/work/epoch_1.pth')
    assert open(path).read() == '/work/epoch_1.pth'

    def die(src, dst):
        raise KeyboardInterrupt('killed between write and rename')

    monkeypatch.setattr(os, 'replace', die)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, '/work/epoch_2.pth')
    assert open(path).read() == '/work/epoch_1.pth'
    monkeypatch.undo()
    atomic_write_text(path, '/work/epoch_2.pth')
    assert open(path).read() == '/work/epoch_2.pth'
    assert os.listdir(osp.dirname(path)) == ['last_checkpoint']


class Tiny(BaseModel):
    """One small linear layer: a run of a few iterations in a second."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(torch.stack(inputs))
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


def test_checkpoint_hook_writes_last_checkpoint_through_atomic_write(
        tmp_path, monkeypatch):
    """The function tested above is what a real run's checkpoint hook uses:
    each save's last_checkpoint goes through it, and through nothing else."""
    calls = []
    real = checkpointing.atomic_write_text

    def spy(path, text):
        calls.append((path, text))
        real(path, text)

    monkeypatch.setattr(checkpointing, 'atomic_write_text', spy)
    work_dir = tmp_path / 'work'
    runner = SafeRunner(
        model=Tiny(),
        work_dir=str(work_dir),
        train_dataloader=DataLoader(
            [torch.randn(4) for _ in range(2)], batch_size=2,
            collate_fn=lambda batch: dict(inputs=batch)),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        default_scope='mmengine')
    runner.train()
    last = str(work_dir / 'last_checkpoint')
    assert calls == [(last, str(work_dir / 'epoch_1.pth')),
                     (last, str(work_dir / 'epoch_2.pth'))]
    assert (work_dir / 'last_checkpoint').read_text() == str(
        work_dir / 'epoch_2.pth')
