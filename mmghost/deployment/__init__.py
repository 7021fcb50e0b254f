# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Deployment helpers: image inputs, and ONNX export checked against PyTorch.

``mmghost.deployment.onnx`` imports ``onnx``, ``onnxscript`` and
``onnxruntime`` only when it exports or checks, so this package imports
without the optional extra (``pip install -e .[onnx]``).
"""
from .inputs import config_images_dir, list_images
from .onnx import (BackboneForOnnx, DetectorForOnnx, GroupedOutputs,
                   OnnxCheck, build_model, check_inputs, check_onnx,
                   export_onnx, preprocess_images, wrap_for_onnx)

__all__ = [
    'list_images', 'config_images_dir', 'GroupedOutputs', 'BackboneForOnnx',
    'DetectorForOnnx', 'OnnxCheck', 'build_model', 'check_inputs',
    'check_onnx', 'export_onnx', 'preprocess_images', 'wrap_for_onnx'
]
