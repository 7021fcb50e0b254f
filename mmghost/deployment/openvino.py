# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""OpenVINO IR of a detector's raw outputs, FP32 or NNCF INT8, and inference.

The converted network is the one ``mmghost.deployment.onnx`` exports
(``DetectorForOnnx``/``BackboneForOnnx``: MMDetection's ``tensor`` mode from
the preprocessed batch to the raw per-level maps), converted from the
PyTorch module by ``openvino.convert_model`` with the batch, height and
width dynamic. An export directory holds:

* ``model.xml``/``model.bin``: the IR. FP32 weights unless asked for FP16
  (``openvino.save_model`` compresses to FP16 by default; here it does
  not), or INT8 where NNCF quantized it;
* ``config.py``: the model's config, as the export resolved it;
* ``export.json``: what inference needs besides (the output groups, the
  classes from the checkpoint's ``dataset_meta``, the precision) and the
  export's parity check against PyTorch.

INT8 is NNCF's post-training quantization of the FP32 IR, calibrated on
real images through the config's test pipeline, mixed preset (symmetric
weights, asymmetric activations) and bias correction, with the
convolutions that write the box regressions kept in floating point (or
every output convolution, or none: ``keep_fp32``).

``OpenVINODetector`` runs an export directory's IR on a data batch and hands
the raw outputs to the detector's own ``bbox_head.predict_by_feat`` (the
post-processing of ``model.predict``); ``OpenVINOInferencer`` is mmdet's
``DetInferencer`` with that in place of the PyTorch forward, so it writes
the same pictures and JSON.

``openvino`` and ``nncf`` are the optional extra ``pip install -e
.[openvino]``; they are imported only when needed.
"""
import copy
import json
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from mmdet.apis import DetInferencer
from mmdet.registry import DATASETS
from mmengine.config import Config

from mmghost.utils import list_images, require
from .onnx import INPUT_NAME, GroupedOutputs, preprocess_images
from .parity import RuntimeCheck, check_runtime

__all__ = [
    'TOLERANCE', 'RuntimeCheck', 'convert_to_openvino', 'compile_ir',
    'run_ir', 'check_openvino', 'output_convolutions', 'kept_fp32',
    'quantize_int8', 'KEEP_FP32',
    'calibration_images', 'calibration_batches', 'save_export',
    'update_export', 'read_export', 'OpenVINODetector', 'OpenVINOInferencer'
]

# max |openvino - torch| / max |torch| allowed for each output of an FP32 IR
TOLERANCE = 1e-4
PRECISIONS = ('fp32', 'fp16', 'int8')
EXPORT_META = 'export.json'
EXPORT_CONFIG = 'config.py'


def _require(module: str):
    """Import ``module`` for OpenVINO deployment, or say how to install it."""
    return require(module, 'openvino', 'OpenVINO deployment')


# ---------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------


def convert_to_openvino(module: GroupedOutputs, example: torch.Tensor):
    """``module`` as an ``openvino.Model`` with dynamic batch, height, width.

    ``example`` is a real preprocessed batch (the trace's input). The input
    is named ``inputs``, the outputs as ``module.output_names`` names them
    (``cls_score_0``...). ``RuntimeError`` if an axis came out fixed.
    """
    ov = _require('openvino')
    module = module.eval()
    names = module.output_names(example)
    with torch.no_grad():
        ov_model = ov.convert_model(
            module,
            example_input=example,
            input=[ov.PartialShape([-1, example.shape[1], -1, -1])])
    if len(ov_model.outputs) != len(names):
        raise RuntimeError(f'the converted model has {len(ov_model.outputs)} '
                           f'outputs, the PyTorch module {len(names)}')
    ov_model.inputs[0].get_tensor().set_names({INPUT_NAME})
    for output, name in zip(ov_model.outputs, names):
        output.get_tensor().set_names({name})
    shape = ov_model.inputs[0].get_partial_shape()
    fixed = [
        f'{axis_name}={shape[axis]}'
        for axis, axis_name in ((0, 'batch'), (2, 'height'), (3, 'width'))
        if not shape[axis].is_dynamic
    ]
    if fixed:
        raise RuntimeError(f'the conversion fixed {", ".join(fixed)} (input '
                           f'shape {shape}): the IR would run at that size '
                           'only')
    return ov_model


def compile_ir(model, threads: Optional[int] = None, hint: str = 'LATENCY'):
    """``model`` (an ``openvino.Model`` or an ``.xml`` path) compiled for CPU.

    FP32 arithmetic wherever the IR is not quantized
    (``INFERENCE_PRECISION_HINT=f32``: the CPU plugin would otherwise pick
    bf16 on CPUs that have it), ``threads`` inference threads (default:
    torch's), ``PERFORMANCE_HINT=hint``.
    """
    ov = _require('openvino')
    core = ov.Core()
    if isinstance(model, (str, os.PathLike)):
        model = core.read_model(str(model))
    config = {
        'INFERENCE_PRECISION_HINT': 'f32',
        'PERFORMANCE_HINT': hint,
        'INFERENCE_NUM_THREADS': threads or torch.get_num_threads(),
    }
    return core.compile_model(model, 'CPU', config)


def run_ir(compiled,
           batch: Union[torch.Tensor, np.ndarray]) -> List[np.ndarray]:
    """The outputs of ``compiled`` on ``batch``, in the IR's output order."""
    if isinstance(batch, torch.Tensor):
        batch = batch.detach().cpu().float().contiguous().numpy()
    results = compiled(np.ascontiguousarray(batch, dtype=np.float32))
    return [results[output] for output in compiled.outputs]


# ---------------------------------------------------------------------------
# Check against PyTorch
# ---------------------------------------------------------------------------


def check_openvino(compiled,
                   module: nn.Module,
                   inputs: Sequence[Tuple[str, torch.Tensor]],
                   tol: float = TOLERANCE,
                   strict: bool = True) -> RuntimeCheck:
    """Run ``compiled`` (see ``compile_ir``) on each ``(label, batch)`` of
    ``inputs`` and compare every output with ``module`` in PyTorch.

    ``ParityError`` (a ``ValueError``) names the output and the input where
    either side holds a NaN or an infinity, whatever ``strict`` says, or
    where the numbers of outputs or the shapes differ.
    """
    names = [output.get_any_name() for output in compiled.outputs]
    return check_runtime(lambda batch: run_ir(compiled, batch), names, module,
                         inputs, tol, strict, runtime='OpenVINO')


# ---------------------------------------------------------------------------
# INT8
# ---------------------------------------------------------------------------

# what ``quantize_int8(keep_fp32=...)`` leaves in floating point: the
# convolutions that write the outputs whose names start with these
KEEP_FP32 = {
    'box': ('bbox_pred', 'rpn_bbox_pred'),
    'outputs': ('', ),
    'none': (),
}


def output_convolutions(ov_model, prefixes: Sequence[str] = ('', )
                        ) -> List[str]:
    """Names of the convolutions that write the model's outputs.

    Only the outputs whose tensor names start with one of ``prefixes``
    (default: every output). Walks back from each output through the ops
    that follow a convolution (its bias ``Add``, reshapes, activations) to
    the first convolution; for a detector these are its heads' last
    classification and box convs.
    """
    conv_types = {'Convolution', 'GroupConvolution'}
    found = []
    for output, result in zip(ov_model.outputs, ov_model.get_results()):
        if not any(
                name.startswith(prefix) for name in output.get_names()
                for prefix in prefixes):
            continue
        stack = [result.input_value(0).get_node()]
        seen = set()
        while stack:
            node = stack.pop()
            name = node.get_friendly_name()
            if name in seen or node.get_type_name() in ('Parameter',
                                                        'Constant'):
                continue
            seen.add(name)
            if node.get_type_name() in conv_types:
                if name not in found:
                    found.append(name)
                continue
            stack += [value.get_node() for value in node.input_values()]
    return found


def kept_fp32(ov_model, keep_fp32: str = 'box') -> List[str]:
    """The convolutions ``quantize_int8(keep_fp32=keep_fp32)`` leaves in
    floating point: ``'box'`` those that write box regressions
    (``bbox_pred_*``, ``rpn_bbox_pred_*``), ``'outputs'`` those that write
    any output, ``'none'`` none."""
    if keep_fp32 not in KEEP_FP32:
        raise ValueError(f'keep_fp32={keep_fp32!r}: expected one of '
                         f'{", ".join(KEEP_FP32)}')
    prefixes = KEEP_FP32[keep_fp32]
    return output_convolutions(ov_model, prefixes) if prefixes else []


def quantize_int8(ov_model,
                  batches: Sequence[torch.Tensor],
                  keep_fp32: str = 'box',
                  fast_bias_correction: bool = True):
    """NNCF post-training INT8 quantization of ``ov_model``.

    Calibrated on ``batches`` (preprocessed real images, one calibration
    sample each), mixed preset, bias correction (the fast variant unless
    ``fast_bias_correction=False``), and the convolutions that
    ``kept_fp32(ov_model, keep_fp32)`` names left in floating point. The
    default keeps the box regressions, whose few channels cost little and
    whose values are coordinates; the classification convs, RetinaNet's
    most expensive layer with 80 classes, are quantized.
    """
    nncf = _require('nncf')
    if not batches:
        raise ValueError('no calibration batches')
    ignored = nncf.IgnoredScope(names=kept_fp32(ov_model, keep_fp32))
    data = [
        b.detach().cpu().float().contiguous().numpy() for b in batches
    ]
    return nncf.quantize(
        ov_model,
        nncf.Dataset(data),
        preset=nncf.QuantizationPreset.MIXED,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(data),
        fast_bias_correction=fast_bias_correction,
        ignored_scope=ignored)


def calibration_batches(model: nn.Module, image_files: Sequence[str],
                        shape: Tuple[int, int]) -> List[torch.Tensor]:
    """One preprocessed batch per image, padded to ``shape``."""
    return [
        preprocess_images(model, [f], shape, pad_to_shape=True)
        for f in image_files
    ]


def calibration_images(source: str, count: int) -> List[str]:
    """The first ``count`` images of ``source``: a folder of images, or a
    COCO annotation file whose images lie in a folder beside it.

    For an annotation file ``ROOT/annotations/instances_NAME.json`` the
    images are looked for in ``ROOT/NAME``, ``ROOT/images`` and the
    annotation file's own folder, the first that holds its first image.
    """
    if count < 1:
        raise ValueError(f'calibration count {count}: expected at least 1')
    if osp.isdir(source):
        return list_images(source)[:count]
    if not osp.isfile(source):
        raise FileNotFoundError(f'calibration images {source} do not exist')
    if not source.endswith('.json'):
        raise ValueError(f'calibration images {source}: expected a folder '
                         'of images or a COCO annotation file (.json)')
    with open(source, encoding='utf-8') as f:
        ann = json.load(f)
    if not isinstance(ann, dict) or not ann.get('images'):
        raise ValueError(f'{source} is not a COCO annotation file with '
                         'images: it has no "images" list')
    files = [image['file_name'] for image in ann['images']][:count]
    ann_dir = osp.dirname(osp.abspath(source))
    root = osp.dirname(ann_dir)
    stem = osp.splitext(osp.basename(source))[0]
    candidates = [
        osp.join(root, stem.split('instances_', 1)[-1]),
        osp.join(root, 'images'), ann_dir
    ]
    for folder in candidates:
        if osp.isfile(osp.join(folder, files[0])):
            return [osp.join(folder, name) for name in files]
    raise FileNotFoundError(
        f'the images of {source} ({files[0]}...) are in none of '
        + ', '.join(candidates))


# ---------------------------------------------------------------------------
# The export directory
# ---------------------------------------------------------------------------


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic, )):
        return value.item()
    return value


def save_export(out_dir: str, ov_model, model: nn.Module,
                module: GroupedOutputs, example: torch.Tensor,
                precision: str, extra: Optional[dict] = None) -> str:
    """Write ``ov_model`` to ``out_dir/model.xml`` with ``config.py`` and
    ``export.json`` beside it; returns the ``.xml`` path.

    ``precision='fp16'`` stores the weights in FP16; otherwise they stay as
    the model has them (FP32, or INT8 where quantized).
    """
    if precision not in PRECISIONS:
        raise ValueError(f'precision={precision!r}: expected one of '
                         f'{", ".join(PRECISIONS)}')
    ov = _require('openvino')
    os.makedirs(out_dir, exist_ok=True)
    xml = osp.join(out_dir, 'model.xml')
    ov.save_model(ov_model, xml, compress_to_fp16=precision == 'fp16')
    model.cfg.dump(osp.join(out_dir, EXPORT_CONFIG))
    with torch.no_grad():
        groups = [(name, len(outs)) for name, outs in module.groups(example)]
    meta = dict(
        precision=precision,
        part='backbone' if type(module).__name__.startswith('Backbone')
        else 'detector',
        detector=type(model).__name__,
        two_stage=bool(getattr(module, 'two_stage', False)),
        input=dict(name=INPUT_NAME, export_shape=list(example.shape),
                   dynamic=['batch', 'height', 'width']),
        output_groups=groups,
        dataset_meta=_jsonable(getattr(model, 'checkpoint_meta', {}).get(
            'dataset_meta', {})),
        **(extra or {}))
    with open(osp.join(out_dir, EXPORT_META), 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=1)
    return xml


def update_export(out_dir: str, **fields) -> None:
    """Add ``fields`` to the ``export.json`` of ``out_dir``."""
    path = osp.join(out_dir, EXPORT_META)
    with open(path, encoding='utf-8') as f:
        meta = json.load(f)
    meta.update(_jsonable(fields))
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(meta, f, indent=1)


def read_export(xml: str) -> Tuple[Config, dict]:
    """The config and ``export.json`` of the export directory of ``xml``."""
    if not osp.isfile(xml):
        raise FileNotFoundError(f'{xml} does not exist')
    if not xml.endswith('.xml'):
        raise ValueError(f'{xml}: expected the model.xml of an export '
                         'directory (tools/deployment/export_openvino.py)')
    out_dir = osp.dirname(osp.abspath(xml))
    paths = [osp.join(out_dir, name) for name in (EXPORT_CONFIG, EXPORT_META)]
    missing = [p for p in paths if not osp.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f'{", ".join(missing)} missing: {xml} was not written by '
            'tools/deployment/export_openvino.py')
    with open(paths[1], encoding='utf-8') as f:
        meta = json.load(f)
    return Config.fromfile(paths[0]), meta


# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------


class OpenVINODetector:
    """A single-stage detector whose network runs as an OpenVINO IR.

    ``model`` supplies what is not in the IR: the ``data_preprocessor`` and
    the head's post-processing (anchors, box decoding, NMS and
    ``test_cfg``); its weights are not used.
    """

    def __init__(self, xml: str, model: nn.Module, meta: dict,
                 threads: Optional[int] = None):
        if meta.get('part') != 'detector' or meta.get('two_stage'):
            what = ('a backbone alone' if meta.get('part') == 'backbone' else
                    f"a two-stage {meta.get('detector')} (the IR stops at "
                    'the RPN)')
            raise ValueError(f'{xml} holds {what}: inference needs a '
                             'single-stage detector (RetinaNet, FCOS, ...)')
        self.model = model
        self.groups = meta['output_groups']
        self.compiled = compile_ir(xml, threads=threads)
        # a config whose head differs from the exported one would decode
        # the maps wrongly, silently
        head = model.bbox_head
        expected = head.num_base_priors * head.cls_out_channels
        got = self.compiled.outputs[0].get_partial_shape()[1]
        if got.is_static and got.get_length() != expected:
            raise ValueError(
                f'{xml} scores {got.get_length()} channels per location, the '
                f"config's {type(head).__name__} {expected} "
                f'({head.num_base_priors} anchors x {head.cls_out_channels} '
                'classes): use the config the IR was exported from')

    def raw(self, inputs: torch.Tensor) -> List[List[torch.Tensor]]:
        """The IR's outputs on ``inputs``, grouped as the head returns them
        (``[cls_scores per level, bbox_preds per level, ...]``)."""
        outs = [torch.from_numpy(o) for o in run_ir(self.compiled, inputs)]
        grouped, start = [], 0
        for _, count in self.groups:
            grouped.append(outs[start:start + count])
            start += count
        return grouped

    @torch.no_grad()
    def predict(self, data: dict) -> list:
        """``model.test_step(data)`` with the network run by OpenVINO."""
        data = self.model.data_preprocessor(data, False)
        samples = data['data_samples']
        results = self.model.bbox_head.predict_by_feat(
            *self.raw(data['inputs']),
            batch_img_metas=[s.metainfo for s in samples],
            rescale=True)
        return self.model.add_pred_to_datasample(samples, results)


class OpenVINOInferencer(DetInferencer):
    """mmdet's ``DetInferencer`` running an export directory's IR.

    Same pipeline, visualisation and JSON as the PyTorch inferencer; the
    forward is ``OpenVINODetector.predict``. The classes come from
    ``export.json`` (the checkpoint's ``dataset_meta``); the pipeline and
    post-processing from ``cfg``, by default the export's ``config.py``.
    """

    def __init__(self,
                 xml: str,
                 cfg: Optional[Config] = None,
                 palette: str = 'none',
                 threads: Optional[int] = None,
                 show_progress: bool = True):
        export_cfg, self.export_meta = read_export(xml)
        cfg = export_cfg if cfg is None else cfg
        super().__init__(
            model=cfg,
            weights=None,
            device='cpu',
            palette=palette,
            show_progress=show_progress)
        self.detector = OpenVINODetector(
            xml, self.model, self.export_meta, threads=threads)

    def _load_weights_to_model(self, model, checkpoint, cfg):
        # The weights are in the IR, the classes in export.json; the palette
        # as DetInferencer picks it: argument, then config, then export.
        meta = copy.deepcopy(self.export_meta.get('dataset_meta', {}))
        if not meta.get('classes'):
            raise ValueError(
                'export.json has no dataset_meta classes: the checkpoint '
                'that was exported did not record them')
        if self.palette != 'none':
            meta['palette'] = self.palette
        else:
            dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
            dataset_cfg['lazy_init'] = True
            palette = DATASETS.build(dataset_cfg).metainfo.get('palette')
            if palette is not None:
                meta['palette'] = palette
            meta.setdefault('palette', 'random')
        model.dataset_meta = meta

    @torch.no_grad()
    def forward(self, inputs, **kwargs):
        return self.detector.predict(inputs)
