# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""mmdet's own analysis tools run on mmghost configs; metafile is valid."""
import os.path as osp

import yaml

from tests.utils import ROOT, run_tool


def test_print_config_through_mmdet():
    proc = run_tool('tools/mmdet_tool.py', 'misc/print_config.py',
                    'configs/retinanet_ghostnet_fpn.py')
    assert "type='GhostNet'" in proc.stdout
    assert 'widen_factor=1.1' in proc.stdout


def test_unknown_tool_is_named():
    proc = run_tool('tools/mmdet_tool.py', 'no/such_tool.py', check=False)
    assert proc.returncode != 0
    assert "no/such_tool.py is not one of mmdet's tools" in proc.stderr


def test_metafile_lists_existing_configs():
    with open(osp.join(ROOT, 'metafile.yml')) as f:
        meta = yaml.safe_load(f)
    configs = [m['Config'] for m in meta['Models']]
    assert 'configs/retinanet_ghostnet_fpn.py' in configs
    for config in configs:
        assert osp.isfile(osp.join(ROOT, config)), config
