# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Detect objects in images with a trained detector: MMDetection's
``DetInferencer`` (the engine of mmdet's ``demo/image_demo.py``), with mmghost.

    python tools/infer.py IMAGE_OR_DIR [...] CONFIG CHECKPOINT
        [--runtime pytorch|openvino] [--out-dir outputs] [--device cpu|cuda]
        [--score-thr 0.3] [--batch-size 1] [--show] [--no-save-vis]
        [--no-save-pred] [--print-result] [--palette ...]
        [--cfg-options K=V ...]

Writes, as ``DetInferencer`` does:

* ``OUT_DIR/vis/<image name>``: the image with the boxes scoring at least
  ``--score-thr`` drawn, each with its class name and score;
* ``OUT_DIR/preds/<image stem>.json``: every prediction the model keeps
  (its ``test_cfg``, not ``--score-thr``, decides which), as
  ``{"labels": [class index, ...], "scores": [...],
  "bboxes": [[x1, y1, x2, y2], ...]}`` in the pixels of the original image,
  highest score first; the class index points into the checkpoint's
  ``dataset_meta['classes']``.

With ``--runtime openvino`` the CHECKPOINT is the ``model.xml`` of an
export directory (``tools/deployment/export_openvino.py``, FP32 or INT8):
OpenVINO runs the network on the CPU, and the detector's own head
post-processing (``bbox_head.predict_by_feat``: anchors, box decoding,
``test_cfg``, NMS) turns its raw outputs into the same pictures and JSON.
Single-stage detectors only (a two-stage IR stops at the RPN).
"""
import argparse
import os.path as osp

import torch
from mmengine.config import Config, DictAction

import mmghost  # noqa: F401  (registers mmghost, applies its fixes)
from mmghost.utils import list_images


def parse_args():
    parser = argparse.ArgumentParser(
        description='Detect objects in images with a trained detector and '
        'save the drawn images and the predictions')
    parser.add_argument(
        'inputs', nargs='+', help='image files and/or folders of images')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument(
        'checkpoint',
        help='checkpoint file of the model; with --runtime openvino, the '
        'model.xml of an export directory')
    parser.add_argument(
        '--runtime',
        choices=['pytorch', 'openvino'],
        default='pytorch',
        help='what runs the network: PyTorch on --device, or OpenVINO on the '
        'CPU (needs the [openvino] extra)')
    parser.add_argument(
        '--out-dir',
        default='outputs',
        help='where vis/ (drawn images) and preds/ (JSON) are written')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device to run on (default: cuda if available, else cpu)')
    parser.add_argument(
        '--score-thr',
        '--pred-score-thr',
        dest='score_thr',
        type=float,
        default=0.3,
        help='draw the boxes scoring at least this (the JSON keeps all)')
    parser.add_argument(
        '--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument(
        '--show', action='store_true', help='show each result in a window')
    parser.add_argument(
        '--no-save-vis', action='store_true', help='write no drawn images')
    parser.add_argument(
        '--no-save-pred', action='store_true', help='write no JSON')
    parser.add_argument(
        '--print-result',
        action='store_true',
        help='print the predictions to the console')
    parser.add_argument(
        '--palette',
        default='none',
        choices=['coco', 'voc', 'citys', 'random', 'none'],
        help="colours of the classes; 'none' takes the dataset's, else "
        'random')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs, e.g. '
        'model.test_cfg.score_thr=0.05')
    return parser.parse_args()


def main():
    args = parse_args()
    from mmdet.apis import DetInferencer

    try:
        images = list_images(args.inputs)
    except (OSError, ValueError) as e:
        raise SystemExit(str(e))
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)

    if args.runtime == 'openvino':
        from mmghost.deployment.openvino import OpenVINOInferencer
        try:
            inferencer = OpenVINOInferencer(
                args.checkpoint, cfg=cfg, palette=args.palette)
        except (OSError, ValueError) as e:
            raise SystemExit(str(e))
    else:
        inferencer = DetInferencer(
            model=cfg,
            weights=args.checkpoint,
            device=args.device,
            palette=args.palette)
    inferencer(
        images,
        batch_size=args.batch_size,
        show=args.show,
        no_save_vis=args.no_save_vis,
        no_save_pred=args.no_save_pred,
        pred_score_thr=args.score_thr,
        out_dir=args.out_dir,
        print_result=args.print_result)

    written = []
    if not args.no_save_vis:
        written.append(f'drawn images (score >= {args.score_thr}) in '
                       f"{osp.join(args.out_dir, 'vis')}")
    if not args.no_save_pred:
        written.append(
            f"predictions (JSON) in {osp.join(args.out_dir, 'preds')}")
    print(f'{len(images)} images: ' + ('; '.join(written) or 'nothing saved'))


if __name__ == '__main__':
    main()
