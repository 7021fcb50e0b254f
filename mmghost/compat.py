# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The one torch/mmengine compatibility fix mmghost applies on import.

What it patches: the local-file scheme of mmengine's ``CheckpointLoader``
(``CheckpointLoader._schemes['']``, registered by mmengine 0.10.7 as
``mmengine.runner.checkpoint.load_from_local``), which every local
checkpoint path goes through: ``load_from``, ``--resume``,
``tools/test.py``, ``init_cfg=dict(type='Pretrained')`` and
``mmengine.runner.load_checkpoint``. It is replaced by
:func:`mmghost.checkpoint.load_from_local`. Nothing else changes:
``torch.load`` itself is untouched for every other caller in the process,
and the other schemes (``http://``, ``s3://``, ...) stay mmengine's.

Why: mmengine 0.10.7 calls ``torch.load(filename, map_location=...)``.
Since torch 2.6 that call defaults to ``weights_only=True``, which refuses
the checkpoints mmengine's own ``Runner`` writes (they pickle
``message_hub``, config and numpy objects). The replacement passes
``weights_only=False``, as mmengine meant when it was written, and also
reads ``.safetensors`` files (timm publishes its weights that way).

When it can go: once the mmengine that mmghost requires loads local
checkpoints with ``weights_only=False`` (or an allow-list that covers its
own checkpoints) and reads ``.safetensors``; 0.10.7, the release mmghost is
tested with, does neither. Without ``.safetensors`` support upstream, keep
only that part. ``tests/test_compat.py`` fails when the patch is gone.
"""
from mmengine.runner.checkpoint import CheckpointLoader

from .checkpoint import load_from_local

__all__ = ['load_from_local']

CheckpointLoader.register_scheme(prefixes='', loader=load_from_local,
                                 force=True)
