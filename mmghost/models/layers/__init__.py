# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
from .ghost_conv import GhostConv2d, ghost_conv
from .ghost_module import (NORM_TYPES, GhostModule, build_norm, fuse_conv_norm,
                           fuse_sequential)

__all__ = [
    'GhostModule', 'build_norm', 'fuse_conv_norm',
    'fuse_sequential', 'NORM_TYPES', 'GhostConv2d', 'ghost_conv'
]
