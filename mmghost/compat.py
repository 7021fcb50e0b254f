# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The one torch/mmengine compatibility fix mmghost applies on import.

mmengine 0.10.7 reads local checkpoints with ``torch.load(filename,
map_location=...)``. Since torch 2.6 that call defaults to
``weights_only=True``, which refuses the checkpoints mmengine's own
``Runner`` writes (they pickle ``message_hub``, config and numpy objects), so
``load_from``, ``--resume`` and ``tools/test.py`` stop working.

The fix is scoped to mmengine's checkpoint loading: mmengine resolves every
checkpoint path through ``CheckpointLoader``'s URL schemes, and the empty
prefix is its local-file scheme. We register a replacement for that one
scheme that

* passes ``weights_only=False`` explicitly, which is what mmengine meant
  when it was written (checkpoints are trusted inputs of a training run,
  exactly as they were under torch < 2.6), and
* reads ``.safetensors`` files (timm publishes its weights that way, and
  mmengine 0.10.7 cannot read them) through ``safetensors.torch``.

``torch.load`` itself is untouched for every other caller in the process.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['load_from_local', 'SAFETENSORS_SUFFIX']

SAFETENSORS_SUFFIX = '.safetensors'


def load_from_local(filename: str, map_location=None):
    """Load a local checkpoint (``.pth`` pickle or ``.safetensors``)."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if filename.endswith(SAFETENSORS_SUFFIX):
        from safetensors.torch import load_file
        device = map_location if isinstance(map_location, str) else 'cpu'
        return load_file(filename, device=device)
    return torch.load(filename, map_location=map_location, weights_only=False)


CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                 force=True)
