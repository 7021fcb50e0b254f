# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
import os
import os.path as osp

import pytest
from mmengine.registry import DefaultScope

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA_ROOT = osp.join(ROOT, 'data', 'tiny-coco')


@pytest.fixture(autouse=True, scope='session')
def _repo_root_cwd():
    """Configs and the demo data are addressed relative to the repo root."""
    old = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(old)


@pytest.fixture(autouse=True)
def _mmdet_default_scope():
    """Every test starts in mmdet's scope and leaves no scope behind.

    A Runner built with ``default_scope='mmengine'`` (the engine tests' toy
    runs) makes that the current scope for the rest of the process; without
    this, every later ``MODELS.build`` would look in mmengine's registry.
    """
    with DefaultScope.overwrite_default_scope('mmdet'):
        yield
