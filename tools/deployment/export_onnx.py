# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Export a trained detector (or its backbone) to ONNX, checked on real images.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out X.onnx
        [--part {detector,backbone}] [--images DIR_OR_FILES ...]
        [--shape H W] [--opset N] [--pad-channels N] [--no-check] [--tol T]
        [--cfg-options K=V ...]

The graph is MMDetection's ``tensor`` mode, from the preprocessed batch
(input ``inputs``: normalised RGB, NCHW float32, dynamic batch, height and
width) to the raw outputs: RetinaNet's ``cls_score_{l}``/``bbox_pred_{l}``;
Faster R-CNN's FPN features ``feat_{l}`` and ``rpn_cls_score_{l}``/
``rpn_bbox_pred_{l}`` (the export stops before proposal decoding, NMS and
RoIAlign); with ``--part backbone``, the backbone's ``feat_{i}``.

Unless ``--no-check``, the file then runs in onnxruntime on real images at
three batch sizes and image sizes (one the export's, two others) and every
output is compared with PyTorch; the tool exits with 1 if
max |ort - torch| / max |torch| exceeds ``--tol`` (1e-4) for any output, or
if either side returns a NaN or an infinity.

``--pad-channels 8`` (16 on AVX-512 CPUs) exports a GhostNet backbone in
deploy mode with every intermediate width padded to a multiple of 8 by
zero channels: the same outputs, and onnxruntime's CPU convolutions, which
work on blocks of 8 (16) channels, no longer fall back to their slow path
on GhostNet's 14-, 22- and 26-channel tensors (docs/deploy.md,
"Channel padding").

Needs the optional extra: ``pip install -e .[onnx]``.
"""
import argparse
import logging
import os
import os.path as osp
import sys

import mmghost  # noqa: F401  (registers mmghost, applies its fixes)
from mmghost.deployment import check_onnx, export_onnx, pad_channels
from mmghost.deployment.cli import add_model_arguments, load_for_export
from mmghost.deployment.onnx import DEFAULT_OPSET, TOLERANCE
from mmghost.deployment.parity import ParityError
from mmghost.models.backbones import GhostNet


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export a detector or its backbone to ONNX and check '
        'it against PyTorch on real images')
    add_model_arguments(parser)
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument(
        '--opset', type=int, default=DEFAULT_OPSET, help='ONNX opset')
    parser.add_argument(
        '--pad-channels',
        type=int,
        metavar='N',
        help='GhostNet backbones: deploy mode with every width padded to a '
        'multiple of N by zero channels (same outputs; 8 for AVX2, 16 for '
        'AVX-512 CPUs, where onnxruntime blocks channels by N)')
    parser.add_argument(
        '--check',
        action=argparse.BooleanOptionalAction,
        default=True,
        help='run the file in onnxruntime and compare it with PyTorch '
        '(default: on)')
    parser.add_argument(
        '--tol',
        type=float,
        default=TOLERANCE,
        help='largest max|ort - torch| / max|torch| allowed per output')
    return parser.parse_args()


def pad_backbone(model, multiple: int):
    backbone = model.backbone
    if not isinstance(backbone, GhostNet):
        raise SystemExit(f'--pad-channels {multiple}: the backbone is a '
                         f'{type(backbone).__name__}; only GhostNet '
                         'backbones can be channel-padded')
    try:
        model.backbone = pad_channels(backbone, multiple)
    except (ValueError, NotImplementedError) as e:
        raise SystemExit(f'--pad-channels {multiple}: {e}')


def main():
    args = parse_args()
    # torch's exporter warns once per torchvision op it cannot register
    logging.getLogger('torch.onnx._internal.exporter._registration').setLevel(
        logging.ERROR)
    job = load_for_export(
        args,
        prepare=None if args.pad_channels is None else
        (lambda model: pad_backbone(model, args.pad_channels)))
    model, module, example = job.model, job.module, job.example

    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    names = export_onnx(module, example, args.out, opset=args.opset)
    size_mb = osp.getsize(args.out) / 2**20
    what = f'{type(model).__name__} {args.part}: {module.description}'
    print(f'\nexported {what}\n  to {args.out} ({size_mb:.1f} MiB, opset '
          f'{args.opset}), input inputs {list(example.shape)} with dynamic '
          f'batch, height, width, {len(names)} outputs')
    if not args.check:
        return

    print(f'check on {job.checked_on}, onnxruntime vs PyTorch:')
    try:
        result = check_onnx(args.out, module, job.inputs, tol=args.tol)
    except ParityError as e:
        raise SystemExit(f'check FAILED: {e}')
    print(result.table())
    if not result.ok:
        sys.exit(1)


if __name__ == '__main__':
    main()
