# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Deployment: runtime rewrites of the networks, and ONNX export checked
against PyTorch.

How a network is made fast on one runtime lives here, beside the models:
GhostNet's concat-free bottleneck (swapped in by ``switch_to_deploy()``)
and channel padding for runtimes that block channels by 8 or 16.

``mmghost.deployment.onnx`` imports ``onnx``, ``onnxscript`` and
``onnxruntime`` only when it exports or checks, so this package imports
without the optional extra (``pip install -e .[onnx]``).
"""
from .onnx import (BackboneForOnnx, DetectorForOnnx, GroupedOutputs,
                   check_inputs, check_onnx, export_onnx, preprocess_images,
                   wrap_for_onnx)
from .padding import ChannelPadded, pad_channels
from .parity import ParityError, RuntimeCheck
from .split_bottleneck import SplitGhostBottleneck, split_bottlenecks

__all__ = [
    'GroupedOutputs', 'BackboneForOnnx', 'DetectorForOnnx', 'RuntimeCheck',
    'ParityError', 'check_inputs', 'check_onnx', 'export_onnx',
    'preprocess_images', 'wrap_for_onnx', 'ChannelPadded', 'pad_channels',
    'SplitGhostBottleneck', 'split_bottlenecks'
]
