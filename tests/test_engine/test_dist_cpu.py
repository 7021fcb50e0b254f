# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Distributed training and testing on CPU, over gloo (issue #5).

``tools/dist_train.sh CONFIG 2`` trains the demo detector in two processes
and evaluates with both processes' results; ``tools/dist_test.sh`` dumps
the predictions gathered from both. The demo taps the paper config's stage
ends (1, 2, 3, 4): the stage after them never runs and must not make DDP
wait for its gradients (no ``find_unused_parameters``). The fixes in
``mmghost.engine.dist`` must change nothing where CUDA is available.
"""
import gc
import os.path as osp
import pickle
import re
import socket
import sys

import pytest
import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel

from mmghost.engine import dist
from mmghost.engine.dist import (CPUDistributedDataParallel,
                                 cpu_model_wrapper_cfg)
from tests.test_engine.helpers import (DATA, DEMO, ROOT, TOOLS,
                                       demo_options, log_text, run)

NUM_IMAGES = 16  # in data/tiny-coco, all evaluated
OPTIONS = demo_options(times=2, epochs=1, data_root=DATA)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def dist_run(script, *args, cwd):
    return run(['bash', osp.join(TOOLS, script), *args], cwd=cwd,
               PORT=free_port(), PYTHON=sys.executable)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """dist_train.sh on 2 processes, run outside the repo (mmengine gathers
    results through a ./.dist_test folder); the demo config plus a hook
    with which each rank saves its parameters."""
    cwd = tmp_path_factory.mktemp('dist_cwd')
    work_dir = cwd / 'work'
    config = cwd / 'demo_rank_params.py'
    config.write_text(
        f'_base_ = {DEMO!r}\n'
        "custom_imports = dict(imports=['mmghost', "
        "'tests.test_engine.rank_params'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='SaveRankParams')]\n")
    proc = run(['bash', osp.join(TOOLS, 'dist_train.sh'), str(config), '2',
                '--work-dir', str(work_dir), '--cfg-options', *OPTIONS],
               cwd=cwd, PORT=free_port(), PYTHON=sys.executable,
               PYTHONPATH=ROOT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return cwd, work_dir


def assert_same_params(a, b):
    assert a and sorted(a) == sorted(b)
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, different[:5]


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path')
def test_dist_train_two_cpu_processes(trained):
    _, work_dir = trained
    log = log_text(work_dir)
    assert 'Distributed launcher: pytorch' in log
    # 20 training images split over 2 ranks in batches of 4: 3 iterations
    # each (a single process would take 5); 16 val images: 2 batches each
    assert re.search(r'Epoch\(train\)\s+\[1\]\[3/3\]', log)
    assert re.search(r'Epoch\(val\)\s+\[1\]\[2/2\]\s+coco/.*coco/bbox_mAP',
                     log)
    assert 'bbox_mAP_copypaste' in log
    ckpt = torch.load(str(work_dir / 'epoch_1.pth'), weights_only=False)
    assert ckpt['meta']['iter'] == 3
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])


@pytest.mark.trains
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path')
def test_dist_train_taps_stage_ends_without_unused_parameters(trained):
    _, work_dir = trained
    cfg = Config.fromfile(str(work_dir / 'demo_rank_params.py'))
    assert cfg.model.backbone.out_indices == (1, 2, 3, 4)
    assert not cfg.get('find_unused_parameters', False)
    assert cfg.get('model_wrapper_cfg') is None


@pytest.mark.trains
@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path')
def test_dist_train_ranks_end_with_identical_weights(trained):
    _, work_dir = trained

    def params(name):
        return torch.load(str(work_dir / name), weights_only=True)

    before, after = params('rank0_before.pth'), params('rank0_after.pth')
    # both ranks start and end with the same weights...
    assert_same_params(before, params('rank1_before.pth'))
    assert_same_params(after, params('rank1_after.pth'))
    # ... the ones rank 0's checkpoint holds
    state = torch.load(str(work_dir / 'epoch_1.pth'),
                       weights_only=False)['state_dict']
    assert_same_params(after, {k: state[k] for k in after})
    # what runs trained; stage 5 (blocks.9, past the last tap) did not
    stage5 = {k for k in after if k.startswith('backbone.blocks.9.')}
    moved = {k for k in after if not torch.equal(after[k], before[k])}
    assert stage5 and moved == set(after) - stage5


@pytest.mark.skipif(torch.cuda.is_available(), reason='the CPU path')
def test_dist_test_gathers_both_processes(trained):
    cwd, work_dir = trained
    out = cwd / 'preds.pkl'
    proc = dist_run('dist_test.sh', DEMO, str(work_dir / 'epoch_1.pth'), '2',
                    '--work-dir', str(cwd / 'test'), '--out', str(out),
                    '--cfg-options', *OPTIONS, cwd=cwd)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert re.search(r'Epoch\(test\)\s+\[2/2\]\s+coco/.*coco/bbox_mAP',
                     proc.stdout + log_text(cwd / 'test'))
    with open(out, 'rb') as f:
        results = pickle.load(f)
    # rank 0 holds every image once, half of them predicted by rank 1
    assert len(results) == NUM_IMAGES
    assert len({r['img_id'] for r in results}) == NUM_IMAGES


# -- the fixes, in-process ---------------------------------------------------
def test_nothing_changes_with_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    calls = []
    monkeypatch.setattr(dist, 'mmengine_init_dist',
                        lambda *a, **k: calls.append((a, k)))
    monkeypatch.setattr(torch_dist, 'init_process_group',
                        lambda *a, **k: pytest.fail('not mmengine'))
    dist.init_dist('pytorch', backend='nccl', timeout=60)
    assert calls == [(('pytorch', ), dict(backend='nccl', timeout=60))]
    assert cpu_model_wrapper_cfg(None) is None
    cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
    assert cpu_model_wrapper_cfg(cfg) is cfg


def test_cpu_uses_gloo_and_no_device_ids(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '2')
    calls = []
    monkeypatch.setattr(torch_dist, 'init_process_group',
                        lambda **k: calls.append(k))
    dist.init_dist('pytorch', backend='nccl', timeout=60)
    assert calls[0]['backend'] == 'gloo'
    assert (calls[0]['rank'], calls[0]['world_size']) == (1, 2)
    assert calls[0]['timeout'].total_seconds() == 60
    dist.init_dist('pytorch', backend='mpi')
    assert calls[1]['backend'] == 'mpi'  # what the user asked for stays
    with pytest.raises(RuntimeError, match='--launcher slurm needs CUDA'):
        dist.init_dist('slurm')

    assert cpu_model_wrapper_cfg(None, True) == dict(
        type='CPUDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=True)
    assert cpu_model_wrapper_cfg(dict(detect_anomalous_params=True)) == dict(
        type='CPUDistributedDataParallel', detect_anomalous_params=True)
    fsdp = dict(type='MMFullyShardedDataParallel')
    assert cpu_model_wrapper_cfg(fsdp) is fsdp


def test_cpu_ddp_takes_mmengines_device_ids(tmp_path):
    """mmengine passes device_ids=[LOCAL_RANK]; torch refuses it on CPU."""
    torch_dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    model = None
    try:
        with pytest.raises(ValueError, match='device_ids'):
            MMDistributedDataParallel(module=nn.Linear(2, 2), device_ids=[0])
        model = CPUDistributedDataParallel(
            module=nn.Linear(2, 2), device_ids=[0], broadcast_buffers=False)
        assert model.device_ids is None
        model(torch.ones(1, 2)).sum().backward()
    finally:
        # free DDP's reducer while its gloo group is alive (see the backbone
        # contract's DDP test)
        del model
        gc.collect()
        torch_dist.destroy_process_group()
