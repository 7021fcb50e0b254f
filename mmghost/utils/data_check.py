# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Say in one sentence when a config's dataset is not on disk or is broken.

Without this, a missing COCO surfaces as a stack trace from deep inside
``CocoDataset``/pycocotools, after the model has been built. The same holds
for a COCO annotation file that is not JSON (a bare ``JSONDecodeError`` that
names no file) or has no ``images``; an image that is listed but not on disk
stops training only when the loader reaches it, perhaps hours in; and an
annotation whose ``category_id`` is not in ``categories`` is dropped without
a word. :func:`coco_problems` finds these before anything is built. The
evaluator (``CocoMetric``) reads the ground truth from its own ``ann_file``,
relative to the working directory; that file is checked too.
"""
import json
import os.path as osp
from typing import Iterator, List, Optional, Tuple

from mmdet.datasets import CocoDataset
from mmdet.evaluation import CocoMetric
from mmdet.registry import DATASETS, METRICS
from mmengine.config import Config
from mmengine.registry import Registry

__all__ = [
    'broken_data', 'check_data', 'coco_problems', 'missing_data',
    'missing_evaluator_files'
]

_SHOWN = 5  # offending entries named in a message


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


def _dataset_paths(cfg: Config, loaders: Tuple[str, ...]):
    """(dataset cfg, annotation file, image dir) of each leaf dataset of the
    given dataloaders, paths joined with the dataset's ``data_root``."""
    for loader in loaders:
        loader_cfg = cfg.get(loader)
        if not loader_cfg:
            continue
        for ds in _datasets(loader_cfg.get('dataset')):
            root = ds.get('data_root', '')
            prefix = ds.get('data_prefix') or {}
            yield (ds, _join(root, ds.get('ann_file')),
                   _join(root, prefix.get('img', prefix.get('img_path'))))


def _evaluator_ann_files(cfg: Config, loaders: Tuple[str, ...]):
    """(config key, path, evaluator cfg) of each ``ann_file`` set in the
    evaluators of the given dataloaders (``val_dataloader`` ->
    ``val_evaluator``). Relative paths are relative to the working directory,
    as ``CocoMetric`` opens them."""
    for loader in loaders:
        key = loader.replace('_dataloader', '_evaluator')
        evaluator = cfg.get(key) if key != loader else None
        if isinstance(evaluator, dict):
            metrics = [(key, evaluator)]
        elif isinstance(evaluator, (list, tuple)):
            metrics = [(f'{key}[{i}]', m) for i, m in enumerate(evaluator)]
        else:
            continue
        for name, metric in metrics:
            ann = metric.get('ann_file') if isinstance(metric, dict) else None
            if ann:
                yield f'{name}.ann_file', str(ann), metric


def missing_evaluator_files(cfg: Config,
                            loaders: Tuple[str, ...]) -> List[str]:
    """``'KEY=PATH'`` of each evaluator ``ann_file`` that is not on disk."""
    return [
        f'{key}={ann}' for key, ann, _ in _evaluator_ann_files(cfg, loaders)
        if '://' not in ann and not osp.isfile(ann)
    ]


def missing_data(cfg: Config, loaders: Tuple[str, ...]) -> List[str]:
    """Local paths the given dataloaders need that do not exist."""
    missing = []
    for _, ann, img in _dataset_paths(cfg, loaders):
        if ann and '://' not in ann and not osp.isfile(ann):
            missing.append(ann)
        if img and '://' not in img and not osp.isdir(img):
            missing.append(img)
    return list(dict.fromkeys(missing))


def _listing(items: List[str]) -> str:
    more = len(items) - _SHOWN
    return ', '.join(items[:_SHOWN]) + (f', ... ({more} more)'
                                        if more > 0 else '')


def coco_problems(ann_file: str, img_dir: Optional[str] = None) -> List[str]:
    """What is wrong with a COCO detection annotation file, one sentence per
    problem (empty if nothing is).

    Checks that it is JSON with ``images`` and ``categories`` lists, that each
    annotation's ``category_id`` is one of ``categories``, and, given
    ``img_dir``, that every listed image is on disk.
    """
    try:
        with open(ann_file, 'rb') as f:
            coco = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is one
        return [f'annotation file {ann_file} is not JSON ({e})']
    if not isinstance(coco, dict):
        return [f'annotation file {ann_file} holds a JSON '
                f'{type(coco).__name__}, not a COCO object with "images", '
                '"annotations" and "categories"']
    problems = []
    for key in ('images', 'categories'):
        if not isinstance(coco.get(key), list):
            problems.append(
                f'annotation file {ann_file} has no "{key}" list (its keys: '
                f'{", ".join(map(str, coco)) or "none"}), so it is not a '
                'COCO detection file')
    if problems:
        return problems

    cat_ids = {c.get('id') for c in coco['categories'] if isinstance(c, dict)}
    bad_cats = [
        f'annotation {a.get("id")} (category_id={a.get("category_id")!r})'
        for a in coco.get('annotations') or []
        if isinstance(a, dict) and 'category_id' in a  # not panoptic
        and a['category_id'] not in cat_ids
    ]
    if bad_cats:
        problems.append(
            f'annotation file {ann_file} has {len(bad_cats)} annotations '
            'whose category_id is not the id of one of its categories: '
            f'{_listing(bad_cats)}')

    no_name = [
        str(i) for i, img in enumerate(coco['images'])
        if not isinstance(img, dict) or not img.get('file_name')
    ]
    if no_name:
        problems.append(f'annotation file {ann_file} has images without a '
                        f'file_name (entries {_listing(no_name)})')
    elif img_dir and '://' not in img_dir:
        absent = [
            img['file_name'] for img in coco['images']
            if not osp.isfile(osp.join(img_dir, img['file_name']))
        ]
        if absent:
            problems.append(
                f'{len(absent)} of the {len(coco["images"])} images listed '
                f'in {ann_file} are not in {img_dir}: {_listing(absent)}')
    return problems


def _is_a(cfg: dict, registry: Registry, base: type) -> bool:
    """Whether ``cfg['type']`` (a class, or its name in ``registry``) is
    ``base`` or a subclass of it."""
    cls = cfg.get('type')
    if isinstance(cls, str):
        cls = registry.get(cls)
    return isinstance(cls, type) and issubclass(cls, base)


def broken_data(cfg: Config, loaders: Tuple[str, ...]) -> List[str]:
    """The :func:`coco_problems` of the COCO datasets of the given loaders,
    and of the annotation files their ``CocoMetric`` evaluators read."""
    problems = []
    seen = set()
    for ds, ann, img in _dataset_paths(cfg, loaders):
        if (not ann or '://' in ann or not str(ann).endswith('.json')
                or not _is_a(ds, DATASETS, CocoDataset)):
            continue
        if (ann, img) not in seen:
            seen.add((ann, img))
            problems += coco_problems(ann, img)
    checked = {osp.abspath(ann) for ann, _ in seen}
    for key, ann, metric in _evaluator_ann_files(cfg, loaders):
        if ('://' in ann or not osp.isfile(ann)
                or osp.abspath(ann) in checked
                or not _is_a(metric, METRICS, CocoMetric)):
            continue
        checked.add(osp.abspath(ann))
        problems += [f'{key}: {p}' for p in coco_problems(ann)]
    return list(dict.fromkeys(problems))


def check_data(cfg: Config, loaders: Tuple[str, ...], config_path: str):
    """Exit with one clear sentence if the dataset, or the ``ann_file`` of
    the loaders' evaluators (``val_evaluator`` for ``val_dataloader``), is
    not on disk, or if their COCO annotations are broken (see
    :func:`coco_problems`)."""
    missing = missing_data(cfg, loaders)
    if missing:
        raise SystemExit(
            f'Dataset not found for {config_path}: looked for '
            f"{' and '.join(missing)} (relative to {osp.abspath('.')}); "
            'put COCO 2017 there in the MMDetection layout (see README, '
            '"Reproducing it"), point data_root elsewhere with '
            '--cfg-options, or run `make demo` to train on the dataset '
            'shipped in data/tiny-coco.')
    missing = missing_evaluator_files(cfg, loaders)
    if missing:
        raise SystemExit(
            f'Annotation file not found for {config_path}: '
            f"{' and '.join(missing)} does not exist (relative to "
            f"{osp.abspath('.')}); the evaluator reads the ground truth "
            "from it: point it at the annotation file of the dataloader's "
            'dataset (its data_root + ann_file) with --cfg-options.')
    problems = broken_data(cfg, loaders)
    if problems:
        raise SystemExit(f'Bad dataset for {config_path}: '
                         + '; '.join(problems) + '.')
