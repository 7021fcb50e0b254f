# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
from .ghost_module import NORM_TYPES, GhostModule, build_norm, norm_scope

__all__ = ['GhostModule', 'build_norm', 'norm_scope', 'NORM_TYPES']
