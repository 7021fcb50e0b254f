# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Run one of MMDetection's own tool scripts with mmghost imported.

    python tools/mmdet_tool.py TOOL [ARGS ...]

TOOL is a path under mmdet's bundled ``tools/`` (what ``mim run mmdet`` runs),
e.g. ``analysis_tools/browse_dataset.py``, ``misc/print_config.py``,
``analysis_tools/analyze_logs.py``, ``analysis_tools/benchmark.py``. mmghost's
configs import mmghost themselves (``custom_imports``), so ``mim run mmdet
browse_dataset CONFIG`` works too; this wrapper needs no mim and also
applies mmghost's checkpoint fix before the tool loads anything.
"""
import os.path as osp
import runpy
import sys

import mmdet

import mmghost  # noqa: F401


def main():
    tools = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')
    if len(sys.argv) < 2 or sys.argv[1] in ('-h', '--help'):
        print(__doc__)
        raise SystemExit(0 if len(sys.argv) > 1 else 2)
    script = osp.join(tools, sys.argv[1])
    if not osp.isfile(script):
        raise SystemExit(f'{sys.argv[1]} is not one of mmdet\'s tools '
                         f'(looked in {tools})')
    sys.argv = [script] + sys.argv[2:]
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
