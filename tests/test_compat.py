# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""mmengine's own checkpoints load under torch >= 2.6 once mmghost is in."""
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

import mmghost  # noqa: F401  (applies the fix)
from mmghost.compat import load_from_local

pytestmark = pytest.mark.trains


class TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=(out.squeeze(-1) - labels).pow(2).mean())
        return out


def _dataset():
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(8, 2, generator=gen)
    return [dict(inputs=x, labels=x.sum()) for x in xs]


def _runner(work_dir, max_epochs, resume=False):
    return Runner(
        model=TinyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=_dataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        resume=resume,
        default_scope='mmengine',
        experiment_name=f'tiny_{max_epochs}_{resume}')


def test_local_scheme_is_replaced():
    assert CheckpointLoader._get_checkpoint_loader('a/b.pth') is \
        load_from_local
    # torch.load itself is left alone for everybody else
    assert torch.load.__module__ == 'torch.serialization'


def test_runner_checkpoint_loads_and_resumes(tmp_path):
    _runner(tmp_path, max_epochs=1).train()
    ckpt = tmp_path / 'epoch_1.pth'
    assert ckpt.is_file()
    # The checkpoint holds objects torch >= 2.6 refuses by default: without
    # the fix, mmengine's plain torch.load(filename) would raise here.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(str(ckpt))
    state = _load_checkpoint(str(ckpt), map_location='cpu')
    assert state['meta']['epoch'] == 1
    assert 'message_hub' in state

    runner = _runner(tmp_path, max_epochs=2, resume=True)
    runner.train()
    assert runner.epoch == 2
    assert (tmp_path / 'epoch_2.pth').is_file()
    resumed = _load_checkpoint(str(tmp_path / 'epoch_2.pth'), 'cpu')
    # 2 epochs of 2 iterations: the counter continued from epoch 1
    assert resumed['meta']['iter'] == 4


def test_missing_local_file_is_named(tmp_path):
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(missing)
