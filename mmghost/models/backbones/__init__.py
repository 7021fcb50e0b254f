# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
from .ghostnet import GhostNet
from .ghostnetv2 import GhostNetV2
from .mobilenetv3 import MobileNetV3

__all__ = ['GhostNet', 'GhostNetV2', 'MobileNetV3']
