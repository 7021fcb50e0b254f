# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
from .complexity import (CLASSIFIER_HEADS, ImageNetClassifier, TensorMode,
                         complexity)

__all__ = [
    'complexity', 'ImageNetClassifier', 'TensorMode', 'CLASSIFIER_HEADS'
]
