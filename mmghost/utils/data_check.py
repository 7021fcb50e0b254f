# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Say in one sentence when a config's dataset is not on disk.

Without this, a missing COCO surfaces as a stack trace from deep inside
``CocoDataset``/pycocotools, after the model has been built.
"""
import os.path as osp
from typing import Iterator, List, Tuple

from mmengine.config import Config

__all__ = ['missing_data', 'check_data']


def _datasets(cfg) -> Iterator[dict]:
    """The leaf dataset configs under a dataset config (wrappers unfolded)."""
    if cfg is None:
        return
    if isinstance(cfg, (list, tuple)):
        for c in cfg:
            yield from _datasets(c)
        return
    if 'dataset' in cfg:
        yield from _datasets(cfg['dataset'])
    elif 'datasets' in cfg:
        yield from _datasets(cfg['datasets'])
    else:
        yield cfg


def _join(root, path):
    if not path or '://' in str(path) or osp.isabs(path):
        return path
    return osp.join(root or '', path)


def missing_data(cfg: Config, loaders: Tuple[str, ...]) -> List[str]:
    """Local paths the given dataloaders need that do not exist."""
    missing = []
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg:
            continue
        for ds in _datasets(loader_cfg.get('dataset')):
            root = ds.get('data_root', '')
            ann = _join(root, ds.get('ann_file'))
            if ann and '://' not in ann and not osp.isfile(ann):
                missing.append(ann)
            prefix = ds.get('data_prefix') or {}
            img = _join(root, prefix.get('img', prefix.get('img_path')))
            if img and '://' not in img and not osp.isdir(img):
                missing.append(img)
    return list(dict.fromkeys(missing))


def check_data(cfg: Config, loaders: Tuple[str, ...], config_path: str):
    """Exit with one clear sentence if the dataset is not on disk."""
    missing = missing_data(cfg, loaders)
    if missing:
        raise SystemExit(
            f'Dataset not found for {config_path}: looked for '
            f"{' and '.join(missing)} (relative to {osp.abspath('.')}); "
            'put COCO 2017 there in the MMDetection layout (see README, '
            '"Data"), point data_root elsewhere with --cfg-options, or run '
            '`make demo` to train on the dataset shipped in data/tiny-coco.')
