# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Kill and resume, and a resume that never silently restarts (issue #5).

One uninterrupted 3-epoch demo run is the reference. A run killed with
SIGKILL in epoch 2 and resumed with bare ``--resume`` must end with the
reference's weights, optimizer and scheduler state; so must a resume whose
``last_checkpoint`` names a truncated file. Fast cases of the checkpoint
choice run in-process against :func:`find_resume_checkpoint`.
"""
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import threading
import time

import pytest
import torch

from mmghost.engine import ResumeError, find_resume_checkpoint
from mmghost.engine.checkpointing import resume_problem
from tests.test_engine.helpers import (ROOT, demo_options, env, load,
                                       log_text, run, train_cmd)

pytestmark = pytest.mark.trains

EPOCHS = 3
ITERS = 5  # per epoch: 10 person images x times=2, batches of 4
OPTIONS = demo_options(times=2, epochs=EPOCHS)
FRESH = 'holds no checkpoint yet'


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    """An uninterrupted run, started with bare --resume in an empty dir."""
    work_dir = tmp_path_factory.mktemp('reference')
    proc = run(train_cmd(work_dir, '--resume', options=OPTIONS))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work_dir


def assert_same_final_state(work_dir, reference, atol=1e-5):
    ours = load(osp.join(str(work_dir), f'epoch_{EPOCHS}.pth'))
    ref = load(osp.join(str(reference), f'epoch_{EPOCHS}.pth'))
    assert ours['meta']['epoch'] == ref['meta']['epoch'] == EPOCHS
    assert ours['meta']['iter'] == ref['meta']['iter'] == EPOCHS * ITERS
    assert ours['state_dict'].keys() == ref['state_dict'].keys()
    for key, value in ref['state_dict'].items():
        torch.testing.assert_close(
            ours['state_dict'][key], value, atol=atol, rtol=0, msg=key)
    # AdamW moments and step counts, and the schedulers' positions
    ref_opt = ref['optimizer']['state']
    our_opt = ours['optimizer']['state']
    assert our_opt.keys() == ref_opt.keys()
    for idx, state in ref_opt.items():
        for name, value in state.items():
            torch.testing.assert_close(
                our_opt[idx][name], value, atol=atol, rtol=0,
                msg=f'optimizer state {idx}.{name}')
    assert len(ours['param_schedulers']) == len(ref['param_schedulers'])
    for our_s, ref_s in zip(ours['param_schedulers'],
                            ref['param_schedulers']):
        assert our_s['last_step'] == ref_s['last_step']
        assert our_s['_global_step'] == ref_s['_global_step']
        torch.testing.assert_close(our_s['_last_value'],
                                   ref_s['_last_value'])


def test_fresh_resume_says_so_once(reference):
    log = log_text(reference)
    lines = [line for line in log.splitlines() if FRESH in line]
    assert len(lines) == 1, lines
    assert 'WARNING' in lines[0] and 'starts from scratch' in lines[0]
    assert 'resumed epoch' not in log


def test_kill_mid_epoch_then_resume(reference, tmp_path):
    work_dir = tmp_path / 'killed'
    proc = subprocess.Popen(
        train_cmd(work_dir, options=OPTIONS), cwd=ROOT, env=env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(240, proc.kill)
    watchdog.start()
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if (re.search(r'Epoch\(train\)\s+\[2\]\[\s*1/', line)
                    and (work_dir / 'epoch_1.pth').is_file()):
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, ''.join(seen[-30:])
    # killed inside epoch 2: its checkpoint was never started
    assert (work_dir / 'epoch_1.pth').is_file()
    assert not (work_dir / 'epoch_2.pth').exists()
    assert (work_dir / 'last_checkpoint').read_text().endswith('epoch_1.pth')

    resumed = run(train_cmd(work_dir, '--resume', options=OPTIONS))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = log_text(work_dir)
    assert f'resumed epoch: 1, iter: {ITERS}' in log
    assert FRESH not in log
    assert_same_final_state(work_dir, reference)


def test_resume_falls_back_from_truncated_last_checkpoint(
        reference, tmp_path):
    work_dir = tmp_path / 'truncated'
    work_dir.mkdir()
    for epoch in (1, 2):
        shutil.copy2(reference / f'epoch_{epoch}.pth', work_dir)
    bad = work_dir / 'epoch_2.pth'
    with open(bad, 'r+b') as f:
        f.truncate(os.path.getsize(bad) // 2)
    (work_dir / 'last_checkpoint').write_text(str(bad))

    proc = run(train_cmd(work_dir, '--resume', options=OPTIONS))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = log_text(work_dir)
    assert re.search(
        rf'WARNING - .*last_checkpoint names {re.escape(str(bad))}, which '
        r'is unreadable \(PytorchStreamReader failed reading zip archive'
        rf'.*resuming from .*{re.escape(str(work_dir / "epoch_1.pth"))}',
        log)
    assert f'resumed epoch: 1, iter: {ITERS}' in log
    assert_same_final_state(work_dir, reference)


def test_resume_stops_when_no_checkpoint_loads(reference, tmp_path):
    work_dir = tmp_path / 'hopeless'
    work_dir.mkdir()
    good = (reference / 'epoch_1.pth').read_bytes()
    (work_dir / 'epoch_1.pth').write_bytes(good[:len(good) // 3])
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_2.pth'))
    before = (work_dir / 'epoch_1.pth').read_bytes()

    proc = run(train_cmd(work_dir, '--resume', options=OPTIONS))
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(f'cannot resume in {work_dir}: ')
    assert f'names {work_dir / "epoch_2.pth"}, which does not exist' in message
    assert 'epoch_1.pth is unreadable' in message
    assert 'Traceback' not in proc.stderr
    # it trained nothing and left the checkpoint alone
    assert 'Epoch(train)' not in log_text(work_dir)
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['epoch_1.pth']
    assert (work_dir / 'epoch_1.pth').read_bytes() == before


# -- the choice of checkpoint, in-process ------------------------------------
def fake_checkpoint(path, epoch, mtime=None):
    torch.save({'meta': {'epoch': epoch, 'iter': 5 * epoch},
                'state_dict': {'w': torch.full((2, ), float(epoch))}},
               str(path))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return str(path)


@pytest.fixture
def three_checkpoints(tmp_path):
    now = time.time()
    return [fake_checkpoint(tmp_path / f'epoch_{e}.pth', e, now - 30 + e)
            for e in (1, 2, 3)]


def test_choice_follows_a_good_last_checkpoint(tmp_path, three_checkpoints):
    (tmp_path / 'last_checkpoint').write_text(three_checkpoints[1])
    assert find_resume_checkpoint(str(tmp_path)) == three_checkpoints[1]


@pytest.mark.parametrize('last', [None, '', 'missing', 'corrupt'])
def test_choice_falls_back_to_newest_that_loads(tmp_path, three_checkpoints,
                                                last):
    if last == 'missing':
        os.remove(three_checkpoints[2])
        (tmp_path / 'last_checkpoint').write_text(three_checkpoints[2])
        expected = three_checkpoints[1]
    elif last == 'corrupt':
        with open(three_checkpoints[2], 'r+b') as f:
            f.truncate(100)
        (tmp_path / 'last_checkpoint').write_text(three_checkpoints[2])
        expected = three_checkpoints[1]
    else:
        if last == '':
            (tmp_path / 'last_checkpoint').write_text('')
        expected = three_checkpoints[2]
    assert find_resume_checkpoint(str(tmp_path)) == expected


@pytest.mark.parametrize('last', [None, 'missing'])
def test_choice_prefers_this_runs_furthest_checkpoint(tmp_path,
                                                      three_checkpoints,
                                                      last):
    """Newer files that the run's checkpoint hook did not write as
    epoch_N/iter_N lose: a best_*.pth (an earlier, better-scoring epoch) and
    a checkpoint of another run copied in; so does an older-looking
    iteration checkpoint's mtime against its progress."""
    now = time.time()
    best = fake_checkpoint(tmp_path / 'best_coco_bbox_mAP_epoch_2.pth', 2,
                           now + 10)
    foreign = fake_checkpoint(tmp_path / 'retinanet_other_run.pth', 12,
                              now + 20)
    # written mid-epoch 3 (iteration 13 of 15), mtime older than epoch_3's
    mid = tmp_path / 'iter_13.pth'
    torch.save({'meta': {'epoch': 2, 'iter': 13},
                'state_dict': {'w': torch.zeros(2)}}, str(mid))
    os.utime(mid, (now - 100, now - 100))
    if last == 'missing':
        (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'gone.pth'))
    assert find_resume_checkpoint(str(tmp_path)) == three_checkpoints[2]

    # this run's furthest is the one that counts, not the newest
    os.remove(three_checkpoints[2])
    assert find_resume_checkpoint(str(tmp_path)) == str(mid)
    # none of this run's loads: then the newest other one that does
    for path in (three_checkpoints[0], three_checkpoints[1], str(mid)):
        with open(path, 'r+b') as f:
            f.truncate(100)
    assert find_resume_checkpoint(str(tmp_path)) == foreign
    os.remove(foreign)
    assert find_resume_checkpoint(str(tmp_path)) == best


def test_choice_is_none_in_a_fresh_dir(tmp_path):
    assert find_resume_checkpoint(str(tmp_path)) is None
    # an ImageNet file that happens to be there is no run to resume
    torch.save({'conv_stem.weight': torch.zeros(1)},
               str(tmp_path / 'ghostnet_imagenet.pth'))
    assert find_resume_checkpoint(str(tmp_path)) is None


def test_choice_refuses_when_nothing_loads(tmp_path, three_checkpoints):
    for path in three_checkpoints:
        with open(path, 'r+b') as f:
            f.truncate(100)
    (tmp_path / 'last_checkpoint').write_text(three_checkpoints[2])
    with pytest.raises(ResumeError, match=r'cannot resume in .*epoch_3\.pth, '
                       r'which is unreadable.*epoch_2\.pth is unreadable'):
        find_resume_checkpoint(str(tmp_path))


def test_explicit_resume_file_problems(tmp_path, three_checkpoints):
    assert resume_problem(three_checkpoints[0]) is None
    assert resume_problem(str(tmp_path / 'nope.pth')) == 'does not exist'
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    assert resume_problem(str(tmp_path / 'junk.pth')).startswith(
        'is unreadable (')
    torch.save({'state_dict': {}}, str(tmp_path / 'weights.pth'))
    assert resume_problem(str(tmp_path / 'weights.pth')).startswith(
        'is not a training checkpoint')


def test_explicit_resume_of_a_bad_file_stops(tmp_path):
    """``--resume CKPT`` with a bad CKPT: no fallback, one sentence."""
    from types import SimpleNamespace

    from mmengine.logging import MMLogger

    from mmghost.engine import SafeRunner
    bad = tmp_path / 'epoch_7.pth'
    bad.write_bytes(b'PK\x03\x04 truncated')
    runner = SimpleNamespace(
        _has_loaded=False, _resume=True, _load_from=str(bad),
        work_dir=str(tmp_path),
        logger=MMLogger.get_instance('test_explicit_resume'))
    with pytest.raises(ResumeError,
                       match=rf'^cannot resume from {re.escape(str(bad))}: '
                       r'it is unreadable \(.*\)\.$'):
        SafeRunner.load_or_resume(runner)
