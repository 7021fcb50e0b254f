# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Convert a trained detector (or its backbone) to an OpenVINO IR, FP32 or
INT8, checked on real images.

    python tools/deployment/export_openvino.py CONFIG CHECKPOINT --out-dir DIR
        [--part {detector,backbone}] [--images DIR_OR_FILES ...]
        [--shape H W] [--int8] [--calib-images DIR_OR_ANNFILE]
        [--calib-count N] [--keep-fp32 {box,outputs,none}] [--fp16]
        [--tol T] [--cfg-options K=V ...]

Writes ``DIR/model.xml`` (+ ``model.bin``), ``DIR/config.py`` and
``DIR/export.json``; ``tools/infer.py --runtime openvino DIR/model.xml``
runs it. The network is the one ``export_onnx.py`` exports (MMDetection's
``tensor`` mode: the preprocessed batch in, the raw per-level outputs out),
converted from the PyTorch module by ``openvino.convert_model`` with the
batch, height and width dynamic.

The saved IR is read back and run by OpenVINO on real images at three
batch sizes and image sizes (one the export's, two others) and every output
is compared with PyTorch. An FP32 IR must be within ``--tol`` (1e-4) max
|openvino - torch| / max |torch| per output, else the tool exits with 1
naming the output and the input. ``--int8`` (NNCF post-training
quantization calibrated on ``--calib-count`` images of ``--calib-images``,
by default the config's test images, with the convolutions that write
the box regressions left in FP32: ``--keep-fp32``) and ``--fp16``
(weights stored in FP16) report their error instead of judging it, after
the FP32 conversion has passed the check. Non-finite outputs always fail.

Needs the optional extra: ``pip install -e .[openvino]``.
"""
import argparse
import logging
import os.path as osp
import sys

import mmghost  # noqa: F401  (registers mmghost, applies its fixes)
from mmghost.deployment.cli import add_model_arguments, load_for_export
from mmghost.deployment.openvino import (TOLERANCE, calibration_batches,
                                         calibration_images, check_openvino,
                                         compile_ir, convert_to_openvino,
                                         KEEP_FP32, kept_fp32, quantize_int8,
                                         save_export, update_export)
from mmghost.deployment.parity import ParityError
from mmghost.utils import config_images_dir
CALIB_COUNT = 16


def parse_args():
    parser = argparse.ArgumentParser(
        description='Convert a detector or its backbone to an OpenVINO IR '
        '(FP32, FP16 or INT8) and check it against PyTorch on real images')
    add_model_arguments(parser)
    parser.add_argument(
        '--out-dir',
        required=True,
        help='directory to write model.xml/.bin, config.py, export.json to')
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        '--int8',
        action='store_true',
        help='quantize to INT8 with NNCF (post-training, calibrated on real '
        'images; the convolutions of --keep-fp32 stay FP32)')
    precision.add_argument(
        '--fp16',
        action='store_true',
        help='store the weights in FP16 (half the file; the error is '
        'reported, not judged)')
    parser.add_argument(
        '--calib-images',
        help='INT8 calibration images: a folder of images or a COCO '
        "annotation file; default: the config's test images")
    parser.add_argument(
        '--calib-count',
        type=int,
        default=CALIB_COUNT,
        help='how many calibration images (the first N)')
    parser.add_argument(
        '--keep-fp32',
        default='box',
        choices=list(KEEP_FP32),
        help='with --int8: the output convolutions left in FP32: those '
        'writing box regressions (default), every output\'s, or none')
    parser.add_argument(
        '--tol',
        type=float,
        default=TOLERANCE,
        help='largest max|openvino - torch| / max|torch| allowed per output '
        'of an FP32 IR')
    args = parser.parse_args()
    if (args.calib_images or args.calib_count != CALIB_COUNT
            or args.keep_fp32 != 'box') and not args.int8:
        parser.error('--calib-images, --calib-count and --keep-fp32 shape '
                     '--int8; add --int8')
    if args.calib_count < 1:
        parser.error(f'--calib-count {args.calib_count}: expected at least 1')
    return args


def check(compiled, module, inputs, tol, strict):
    """``check_openvino``, exiting with its message where it cannot
    compare (a NaN or an infinity, on either side)."""
    try:
        return check_openvino(compiled, module, inputs, tol, strict)
    except ParityError as e:
        raise SystemExit(f'check FAILED: {e}')


def main():
    args = parse_args()
    job = load_for_export(args)
    model, module, example = job.model, job.module, job.example
    inputs, shape, checked_on = job.inputs, job.shape, job.checked_on

    ov_model = convert_to_openvino(module, example)
    extra = dict(checkpoint=osp.abspath(args.checkpoint))
    precision = 'int8' if args.int8 else 'fp16' if args.fp16 else 'fp32'
    if args.int8:
        # INT8 is judged against an FP32 conversion that is right
        print(f'FP32 conversion, on {checked_on}, OpenVINO vs PyTorch:')
        fp32 = check(compile_ir(ov_model), module, inputs, args.tol, True)
        print(fp32.table())
        if not fp32.ok:
            sys.exit(1)
        try:
            calib_files = calibration_images(
                args.calib_images or config_images_dir(model.cfg),
                args.calib_count)
        except (OSError, ValueError) as e:
            raise SystemExit(f'--calib-images: {e}')
        kept = kept_fp32(ov_model, args.keep_fp32)
        # NNCF logs each op it leaves unquantized
        import nncf
        nncf.set_log_level(logging.WARNING)
        print(f'\nINT8: NNCF calibration on {len(calib_files)} images at '
              f'{shape[0]}x{shape[1]}, {len(kept)} output convolutions kept '
              f'in FP32 (--keep-fp32 {args.keep_fp32})')
        ov_model = quantize_int8(
            ov_model, calibration_batches(model, calib_files, shape),
            keep_fp32=args.keep_fp32)
        extra['calibration'] = dict(
            images=[osp.abspath(f) for f in calib_files],
            shape=list(shape),
            keep_fp32=args.keep_fp32,
            kept_fp32=kept)

    xml = save_export(args.out_dir, ov_model, model, module, example,
                      precision, extra)
    size_mb = (osp.getsize(xml) + osp.getsize(xml[:-4] + '.bin')) / 2**20
    what = f'{type(model).__name__} {args.part}: {module.description}'
    print(f'\nconverted {what}\n  to {xml} ({precision.upper()}, '
          f'{size_mb:.1f} MiB), input inputs {list(example.shape)} with '
          f'dynamic batch, height, width, {len(ov_model.outputs)} outputs')

    print(f'check of the saved {precision.upper()} IR on {checked_on}, '
          'OpenVINO vs PyTorch:')
    result = check(
        compile_ir(xml), module, inputs, args.tol, strict=precision == 'fp32')
    print(result.table())
    update_export(
        args.out_dir,
        check=dict(
            tol=args.tol,
            judged=result.strict,
            ok=result.ok,
            max_error=result.max_error,
            errors=result.errors,
            inputs=result.inputs))
    if not result.ok:
        sys.exit(1)


if __name__ == '__main__':
    main()
