# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Loading weights: local files, ImageNet backbones, whole detectors.

* :func:`load_from_local` reads a local ``.pth`` or ``.safetensors`` file;
  ``mmghost.compat`` makes it mmengine's loader of local paths (under
  torch >= 2.6 mmengine's own refuses mmengine's checkpoints).
* :func:`load_backbone_checkpoint` loads ImageNet weights into a backbone,
  all or nothing. The published GhostNet weights (Huawei's
  ``ghostnet_1x.pth`` and timm's ``ghostnet_100``, ``.pth`` or
  ``.safetensors``) carry the backbone under the same names as mmghost plus
  a classifier (``conv_head``, ``classifier``). Anything else that does not
  fit is an error, never a log line.
* :func:`build_model` builds a config's detector with a trained checkpoint
  loaded strictly, for the tools that convert, export or evaluate it.

Saving and resuming training is :mod:`mmghost.engine.checkpointing`.
"""
import copy
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

__all__ = [
    'load_from_local', 'load_backbone_checkpoint', 'read_state_dict',
    'build_model', 'SAFETENSORS_SUFFIX'
]

SAFETENSORS_SUFFIX = '.safetensors'
_SHOWN = 5  # keys listed per category in an error message


def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint (``.pth`` pickle or ``.safetensors``).

    A ``.pth`` is unpickled with ``weights_only=False``: checkpoints are
    trusted inputs of a training run, as they were under torch < 2.6.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if filename.endswith(SAFETENSORS_SUFFIX):
        from safetensors.torch import load_file
        device = map_location if isinstance(map_location, str) else 'cpu'
        return load_file(filename, device=device)
    return torch.load(filename, map_location=map_location, weights_only=False)


def read_state_dict(filename: str,
                    prefix: Optional[str] = None,
                    map_location='cpu') -> Dict[str, torch.Tensor]:
    """The state dict of a checkpoint file, optionally under ``prefix``.

    Unwraps ``state_dict``/``model`` containers and DataParallel's
    ``module.`` prefix.
    """
    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'checkpoint {filename} holds a '
                         f'{type(checkpoint).__name__}, not a state dict')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
            break
    state_dict = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in checkpoint.items())
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'
        state_dict = OrderedDict((k[len(prefix):], v)
                                 for k, v in state_dict.items()
                                 if k.startswith(prefix))
        if not state_dict:
            raise ValueError(
                f'checkpoint {filename} has no keys under prefix={prefix!r}')
    return state_dict


def _listing(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:_SHOWN])
    more = len(keys) - _SHOWN
    return shown + (f', ... ({more} more)' if more > 0 else '')


def load_backbone_checkpoint(module: nn.Module,
                             filename: str,
                             prefix: Optional[str] = None,
                             map_location='cpu',
                             ignored_prefixes: Sequence[str] = (),
                             ignored_suffixes: Sequence[str] = ()) -> None:
    """Load ``filename`` into ``module``, all or nothing.

    Every parameter and buffer of ``module`` must be in the checkpoint with
    its shape (BN's ``num_batches_tracked`` may be absent: old releases lack
    it). Checkpoint keys that the module does not have must start with one
    of ``ignored_prefixes`` or end with one of ``ignored_suffixes``
    (a classifier head, profiler counters). Otherwise ``ValueError`` names
    the file, the network and the offending keys, and nothing is loaded.
    """
    state_dict = read_state_dict(filename, prefix, map_location)
    own = module.state_dict()
    missing = [
        k for k in own
        if k not in state_dict and not k.endswith('num_batches_tracked')
    ]
    mismatched = [
        f'{k} (checkpoint {tuple(state_dict[k].shape)}, '
        f'model {tuple(v.shape)})' for k, v in own.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    unexpected = [
        k for k in state_dict if k not in own
        and not k.startswith(tuple(ignored_prefixes))
        and not k.endswith(tuple(ignored_suffixes))
    ]
    if missing or mismatched or unexpected:
        width = getattr(module, 'widen_factor', None)
        what = type(module).__name__ + (
            f'(widen_factor={width})' if width is not None else '')
        problems = []
        if missing:
            problems.append(f'{len(missing)} missing keys: '
                            f'{_listing(missing)}')
        if mismatched:
            problems.append(f'{len(mismatched)} shape mismatches: '
                            f'{_listing(mismatched)}')
        if unexpected:
            problems.append(f'{len(unexpected)} unexpected keys: '
                            f'{_listing(unexpected)}')
        raise ValueError(
            f'checkpoint {filename} does not fit {what}: '
            + '; '.join(problems) + '. Is it a checkpoint of another network '
            'or width (or does it need prefix=...)? Nothing was loaded.')
    to_load = OrderedDict((k, v) for k, v in state_dict.items() if k in own)
    module.load_state_dict(to_load, strict=False)
    skipped = len(state_dict) - len(to_load)
    print_log(
        f'loaded {len(to_load)} tensors from {filename} into '
        f'{type(module).__name__} ({skipped} classifier/extra entries '
        'ignored)',
        logger='current')


def build_model(config: Union[str, Config],
                checkpoint: str,
                cfg_options: Optional[dict] = None) -> nn.Module:
    """The detector of ``config`` with ``checkpoint`` loaded, on CPU, eval.

    The checkpoint must fit exactly, else ``ValueError`` lists the keys: an
    export of a half-loaded network would be checked, and pass, against
    itself. ``model.cfg`` holds the config, ``model.checkpoint_meta`` the
    checkpoint's ``meta``.
    """
    if isinstance(config, str):
        cfg = Config.fromfile(config)
    else:
        cfg = copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    from mmdet.registry import MODELS
    model = MODELS.build(cfg.model)
    try:
        loaded = load_checkpoint(
            model, checkpoint, map_location='cpu', strict=True)
    except RuntimeError as e:  # mmengine's strict load lists the keys
        raise ValueError(f'checkpoint {checkpoint} does not fit the model of '
                         f'{cfg.filename}: {e}') from e
    model = revert_sync_batchnorm(model)
    model.cfg = cfg
    model.checkpoint_meta = dict(loaded.get('meta', {}))
    return model.eval()
