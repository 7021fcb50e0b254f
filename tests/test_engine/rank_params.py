# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""A hook for distributed tests: every rank saves its model's parameters.

Only rank 0 writes checkpoints, so a test that wants to see that the ranks
trained the same weights has each rank save its parameters in the work dir
when training starts and ends. Loaded by a config through
``custom_imports=dict(imports=['mmghost', 'tests.test_engine.rank_params'])``
with the repository root on ``PYTHONPATH``.
"""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SaveRankParams(Hook):
    """Save ``{name: parameter}`` of this rank's model before and after
    training, as ``rank{r}_before.pth`` and ``rank{r}_after.pth``."""

    priority = 'LOWEST'

    def before_train(self, runner) -> None:
        self._save(runner, 'before')

    def after_train(self, runner) -> None:
        self._save(runner, 'after')

    def _save(self, runner, when: str) -> None:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        params = {
            name: p.detach().clone()
            for name, p in model.named_parameters()
        }
        torch.save(
            params,
            osp.join(runner.work_dir, f'rank{get_rank()}_{when}.pth'))
