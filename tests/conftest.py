# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
import os
import os.path as osp

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DATA_ROOT = osp.join(ROOT, 'data', 'tiny-coco')


@pytest.fixture(autouse=True, scope='session')
def _repo_root_cwd():
    """Configs and the demo data are addressed relative to the repo root."""
    old = os.getcwd()
    os.chdir(ROOT)
    yield
    os.chdir(old)
