# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Strict loading of ImageNet checkpoints into a backbone.

The published GhostNet weights (Huawei's ``ghostnet_1x.pth`` and timm's
``ghostnet_100``, ``.pth`` or ``.safetensors``) carry the backbone under the
same names as mmghost plus a classifier (``conv_head``, ``classifier``).
Anything else that does not fit is an error, never a log line.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['load_backbone_checkpoint', 'read_state_dict']

_SHOWN = 5  # keys listed per category in an error message


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
