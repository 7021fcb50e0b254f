# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""ONNX export of a detector's raw outputs, checked against PyTorch.

What is exported is MMDetection's ``tensor`` mode: the network from the
preprocessed image batch (normalised, padded, ``NCHW`` float32: what the
config's ``data_preprocessor`` returns) to the raw per-level maps, with no
anchor decoding and no NMS:

* a single-stage detector (RetinaNet): backbone + neck + head, outputs
  ``cls_score_{l}`` and ``bbox_pred_{l}`` per FPN level;
* a two-stage detector (Faster R-CNN): backbone + neck + RPN head, outputs
  the FPN features ``feat_{l}`` (what RoIAlign reads) and
  ``rpn_cls_score_{l}``/``rpn_bbox_pred_{l}``. The graph stops there:
  proposal decoding, NMS and RoIAlign need mmdeploy's custom ops;
* a backbone alone: ``feat_{i}`` for each of its ``out_indices``.

Export goes through torch's default exporter (``torch.onnx.export`` with
``dynamo=True``: ``torch.export``, translated by ``onnxscript``), with the
batch, height and width traced as symbols (``batch``, ``height``, ``width``
in the file). Where the network turns one into a Python int, the exporter
writes the traced size instead, silently; ``export_onnx`` refuses such a
file. ``check_onnx`` then runs the file in onnxruntime on real images at
several batch sizes and image sizes and compares every output with
PyTorch.

``onnx``, ``onnxscript`` and ``onnxruntime`` are the optional extra
``pip install -e .[onnx]``; they are imported only when needed.
"""
import copy
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dataset import Compose, pseudo_collate

from mmghost.utils import require
from .parity import RuntimeCheck, check_runtime

__all__ = [
    'GroupedOutputs', 'BackboneForOnnx', 'DetectorForOnnx', 'wrap_for_onnx',
    'preprocess_images', 'check_inputs', 'export_onnx', 'ort_session',
    'check_onnx', 'DEFAULT_OPSET', 'TOLERANCE'
]

# ONNX opset of the export: the lowest that torch's exporter translates to
# directly (its torchlib's); a lower one goes through a version conversion
# that may fail, a higher one (torch 2.13 defaults to 20) narrows the runtimes
# that can load the file.
DEFAULT_OPSET = 18
# max |onnxruntime - torch| / max |torch| allowed for each output
TOLERANCE = 1e-4

INPUT_NAME = 'inputs'
# names of a dense head's output groups, by how many it returns
_HEAD_OUTPUTS = {
    2: ('cls_score', 'bbox_pred'),  # RetinaNet, GFL, anchor heads
    3: ('cls_score', 'bbox_pred', 'centerness'),  # FCOS, ATSS
}


def _require(module: str):
    """Import ``module`` for ONNX export, or say how to install it."""
    return require(module, 'onnx', 'ONNX export')


# ---------------------------------------------------------------------------
# What is exported
# ---------------------------------------------------------------------------


class GroupedOutputs(nn.Module):
    """Flattens groups of per-level tensors into one tuple, for ONNX.

    Subclasses return ``[(group_name, [tensor per level]), ...]`` from
    ``groups``; the ONNX outputs are named ``{group_name}_{level}``.
    """

    description = ''

    def groups(self, inputs: torch.Tensor) -> List[Tuple[str, Sequence]]:
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(t for _, level_outs in self.groups(inputs)
                     for t in level_outs)

    @torch.no_grad()
    def output_names(self, inputs: torch.Tensor) -> List[str]:
        return [
            f'{name}_{level}' for name, level_outs in self.groups(inputs)
            for level in range(len(level_outs))
        ]


class BackboneForOnnx(GroupedOutputs):
    """A backbone alone: ``feat_{i}`` for each of its ``out_indices``."""

    description = 'backbone alone'

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def groups(self, inputs):
        return [('feat', self.backbone(inputs))]


class DetectorForOnnx(GroupedOutputs):
    """A detector's raw outputs (MMDetection's ``tensor`` mode), flattened.

    Single-stage: backbone + neck + head. Two-stage: backbone + neck + RPN
    head, with the neck's features as outputs too; the RoI stage is not
    exported (it needs proposals, so NMS, and RoIAlign: mmdeploy's custom
    ops).
    """

    def __init__(self, detector: nn.Module):
        super().__init__()
        from mmdet.models.detectors import (SingleStageDetector,
                                            TwoStageDetector)
        if isinstance(detector, TwoStageDetector):
            self.two_stage = True
            self.description = (
                'backbone + neck + RPN head raw outputs (stops before '
                'proposal decoding, NMS and RoIAlign)')
        elif isinstance(detector, SingleStageDetector):
            self.two_stage = False
            self.description = 'backbone + neck + head raw outputs'
        else:
            raise ValueError(
                f'detector={type(detector).__name__} is not supported: '
                'expected a SingleStageDetector (RetinaNet) or a '
                'TwoStageDetector (Faster R-CNN)')
        self.detector = detector

    def groups(self, inputs):
        feats = self.detector.extract_feat(inputs)
        if self.two_stage:
            cls_scores, bbox_preds = self.detector.rpn_head(feats)
            return [('feat', feats), ('rpn_cls_score', cls_scores),
                    ('rpn_bbox_pred', bbox_preds)]
        outs = self.detector.bbox_head(feats)
        names = _HEAD_OUTPUTS.get(
            len(outs), tuple(f'head_out{k}' for k in range(len(outs))))
        return list(zip(names, outs))


def wrap_for_onnx(model: nn.Module, part: str = 'detector') -> nn.Module:
    """``DetectorForOnnx(model)`` or, for ``part='backbone'``, its backbone."""
    if part == 'detector':
        return DetectorForOnnx(model).eval()
    if part == 'backbone':
        return BackboneForOnnx(model.backbone).eval()
    raise ValueError(f"part={part!r}: expected 'detector' or 'backbone'")


# ---------------------------------------------------------------------------
# Inputs: real images through the config's test pipeline
# ---------------------------------------------------------------------------


def _round_up(x: int, divisor: int) -> int:
    return -(-x // divisor) * divisor


def _fit_size(img_shape: Tuple[int, int],
              shape: Tuple[int, int]) -> Tuple[int, int]:
    """(w, h) of an ``img_shape`` (h, w) picture scaled to fit inside
    ``shape`` (H, W), aspect ratio kept."""
    h, w = img_shape
    height, width = shape
    factor = min(height / h, width / w)
    return (min(width, max(1, int(w * factor + 0.5))),
            min(height, max(1, int(h * factor + 0.5))))


def preprocess_images(model: nn.Module,
                      image_files: Sequence[str],
                      shape: Tuple[int, int],
                      pad_to_shape: bool = False) -> torch.Tensor:
    """A batch of ``image_files`` as the exported graph takes it.

    Each image goes through the config's test pipeline with its ``Resize``
    set to fit the whole picture inside ``shape`` (H, W): scaled by
    ``min(H / h, W / w)``, aspect ratio kept, nothing cropped (a keep-ratio
    ``Resize`` reads a ``scale`` as long and short edge, whatever its order,
    so a portrait ``shape`` would not hold a landscape picture). Then the
    model's ``data_preprocessor`` (BGR to RGB, normalisation, padding to its
    ``pad_size_divisor``). With ``pad_to_shape`` the batch is padded further,
    like the preprocessor pads, to ``shape`` rounded up to that divisor.
    """
    height, width = shape
    before, resize, after = [], None, []
    for transform in copy.deepcopy(model.cfg.test_dataloader.dataset.pipeline):
        if transform['type'] in ('LoadAnnotations', 'mmdet.LoadAnnotations'):
            continue
        if resize is None and transform['type'] in ('Resize', 'mmdet.Resize'):
            resize = transform
            resize.pop('scale_factor', None)
            resize['keep_ratio'] = False  # the size below keeps the ratio
            continue
        (before if resize is None else after).append(transform)
    if resize is None:
        raise ValueError('the test pipeline of the config has no Resize to '
                         'set the image size with')
    load, finish = Compose(before), Compose(after)
    samples = []
    for f in image_files:
        results = load(dict(img_path=f))
        size = _fit_size(results['img'].shape[:2], (height, width))
        results = Compose([dict(resize, scale=size)])(results)
        samples.append(finish(results))
    data = pseudo_collate(samples)
    with torch.no_grad():
        inputs = model.data_preprocessor(data, training=False)['inputs']
    if pad_to_shape:
        divisor = getattr(model.data_preprocessor, 'pad_size_divisor', 1)
        pad_value = getattr(model.data_preprocessor, 'pad_value', 0)
        target_h, target_w = (_round_up(height, divisor),
                              _round_up(width, divisor))
        inputs = F.pad(
            inputs, (0, target_w - inputs.shape[-1], 0,
                     target_h - inputs.shape[-2]),
            value=pad_value)
    return inputs.contiguous()


def check_inputs(model: nn.Module, image_files: Sequence[str],
                 shape: Tuple[int, int]) -> List[Tuple[str, torch.Tensor]]:
    """Real batches that exercise the dynamic axes, the first for export.

    2 images padded to ``shape`` (the export input), 1 image fit into 0.6x
    ``shape`` and 3 images fit into 1.25x ``shape`` (each padded by the
    preprocessor only), so the batch size, height and width all take values
    the export did not see. Fewer images are repeated to fill a batch.
    """
    height, width = shape
    files = list(image_files)
    return [
        ('2 images, export size',
         preprocess_images(model, (files * 2)[:2], shape, pad_to_shape=True)),
        ('1 image, 0.6x size',
         preprocess_images(model, files[:1],
                           (round(height * 0.6), round(width * 0.6)))),
        ('3 images, 1.25x size',
         preprocess_images(model, (files * 3)[:3],
                           (round(height * 1.25), round(width * 1.25)))),
    ]


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


def export_onnx(module: GroupedOutputs,
                example: torch.Tensor,
                out_file: str,
                opset: int = DEFAULT_OPSET) -> List[str]:
    """Export ``module`` to ``out_file`` with dynamic batch, height, width.

    ``example`` is a real preprocessed batch; give it at least 2 images, as
    ``torch.export`` specialises a dimension traced at size 1. Returns the
    output names. The file is self-contained (no external data) and passes
    ``onnx.checker``; ``RuntimeError`` if an axis came out fixed.
    """
    _require('onnxscript')  # the dynamo exporter's translator
    onnx = _require('onnx')
    from torch.export import Dim
    if example.shape[0] < 2:
        raise ValueError(f'example batch of {example.shape[0]}: export with '
                         'at least 2 images, or the batch axis is fixed')
    module = module.eval()
    names = module.output_names(example)
    dynamic = {
        0: Dim('batch', min=1),
        2: Dim('height', min=32),
        3: Dim('width', min=32)
    }
    torch.onnx.export(
        module, (example, ),
        out_file,
        dynamo=True,
        input_names=[INPUT_NAME],
        output_names=names,
        dynamic_shapes=(dynamic, ),
        opset_version=opset,
        external_data=False,
        optimize=True)
    onnx.checker.check_model(out_file)
    # The exporter does not fail where the network turns an axis into a
    # Python int (``int(x.shape[2])``): it writes the traced size into the
    # file instead of the axis name.
    graph_input = onnx.load(out_file, load_external_data=False).graph.input[0]
    dims = [d.dim_param or d.dim_value
            for d in graph_input.type.tensor_type.shape.dim]
    fixed = [
        f'{name}={dims[axis]}' for axis, name in ((0, 'batch'), (2, 'height'),
                                                  (3, 'width'))
        if dims[axis] != name
    ]
    if fixed:
        raise RuntimeError(
            f'{out_file}: the export fixed {", ".join(fixed)} (input dims '
            f'{dims}): the network specialises these axes to the example '
            'input, so the file runs at that size only')
    return names


# ---------------------------------------------------------------------------
# Check against PyTorch
# ---------------------------------------------------------------------------


def ort_session(onnx_file: str, threads: Optional[int] = None):
    """An onnxruntime CPU session of ``onnx_file``: every graph
    optimisation on, ``threads`` intra-op threads (default: torch's), and
    threads that sleep between runs instead of spinning."""
    ort = _require('onnxruntime')
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    return ort.InferenceSession(
        onnx_file, options, providers=['CPUExecutionProvider'])


def check_onnx(onnx_file: str,
               module: nn.Module,
               inputs: Sequence[Tuple[str, torch.Tensor]],
               tol: float = TOLERANCE) -> RuntimeCheck:
    """Run ``onnx_file`` in onnxruntime on each ``(label, batch)`` of
    ``inputs`` and compare every output with ``module`` in PyTorch.

    :class:`~mmghost.deployment.parity.ParityError` (a ``ValueError``)
    names the output and the input where the two disagree in number of
    outputs or shape, or where either holds a NaN or an infinity.
    """
    session = ort_session(onnx_file)
    names = [o.name for o in session.get_outputs()]
    input_name = session.get_inputs()[0].name
    return check_runtime(
        lambda batch: session.run(None, {input_name: batch.numpy()}),
        names,
        module,
        inputs,
        tol,
        runtime='onnxruntime')
