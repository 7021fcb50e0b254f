# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""mmghost: GhostNet backbones for MMDetection 3.x.

Importing the package registers its modules in MMDetection's registries and
applies the one torch/mmengine compatibility fix (see ``mmghost.compat``).
"""
from . import compat  # noqa: F401  (must precede any checkpoint load)
from . import engine  # noqa: F401  (SafeRunner, its checkpoint hook, CPU DDP)
from .models import *  # noqa: F401,F403
from .version import __version__

__all__ = ['__version__']
