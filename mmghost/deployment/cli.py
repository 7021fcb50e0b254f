# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""What the export tools share on the command line: the model and image
arguments, and the model, check images and check inputs they name.

``tools/deployment/export_onnx.py`` and ``export_openvino.py`` call
``add_model_arguments`` on their parsers and ``load_for_export`` first
thing in ``main``; each error exits with one line naming the value.
"""
import argparse
import os.path as osp
from types import SimpleNamespace

from mmengine.config import DictAction

from mmghost.checkpoint import build_model
from mmghost.utils import config_images_dir, list_images
from .onnx import check_inputs, wrap_for_onnx

__all__ = ['NUM_CHECK_IMAGES', 'add_model_arguments', 'load_for_export']

# real images the export is traced on and checked against PyTorch with
NUM_CHECK_IMAGES = 3
MIN_SIDE = 32


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG, CHECKPOINT, ``--part``, ``--images``, ``--shape`` and
    ``--cfg-options``."""
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file of the model')
    parser.add_argument(
        '--part',
        choices=['detector', 'backbone'],
        default='detector',
        help='detector: backbone + neck + head raw outputs (for a two-stage '
        'detector, up to the RPN head); backbone: the backbone alone')
    parser.add_argument(
        '--images',
        nargs='+',
        help='image files or folders for the export input and the check '
        f'(the first {NUM_CHECK_IMAGES} are used); default: the folder of the '
        "config's test set")
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[320, 320],
        metavar=('H', 'W'),
        help='export (and INT8 calibration) input size: images are fit into '
        "H x W keeping their aspect ratio and padded to it (rounded up to the "
        "preprocessor's pad_size_divisor); batch, height and width stay "
        'dynamic')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')


def load_for_export(args, prepare=None) -> SimpleNamespace:
    """The model, check images, wrapped module and check inputs of
    ``args`` (parsed with ``add_model_arguments``).

    ``prepare(model)``, if given, changes the model before it is wrapped
    (channel padding). ``SystemExit`` with one line where the checkpoint,
    the shape or the images are wrong.
    """
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist')
    if min(args.shape) < MIN_SIDE:
        raise SystemExit(f'--shape {args.shape[0]} {args.shape[1]}: both '
                         f'sides must be at least {MIN_SIDE}')
    try:
        model = build_model(args.config, args.checkpoint, args.cfg_options)
    except ValueError as e:
        raise SystemExit(str(e))
    try:
        images = list_images(args.images or config_images_dir(model.cfg))
    except (OSError, ValueError) as e:
        hint = '' if args.images else ' (pass --images DIR_OR_FILES)'
        raise SystemExit(f'{e}{hint}')
    images = images[:NUM_CHECK_IMAGES]
    if prepare is not None:
        prepare(model)
    module = wrap_for_onnx(model, args.part)
    shape = tuple(args.shape)
    inputs = check_inputs(model, images, shape)
    return SimpleNamespace(
        model=model,
        images=images,
        module=module,
        shape=shape,
        inputs=inputs,
        example=inputs[0][1],
        checked_on=(f'{len(images)} real image{"s" * (len(images) > 1)} '
                    f'({", ".join(osp.basename(f) for f in images)})'))
