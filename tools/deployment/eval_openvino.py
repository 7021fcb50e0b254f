# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""COCO mAP of a detector in PyTorch and of its OpenVINO IRs, same images.

    python tools/deployment/eval_openvino.py CONFIG CHECKPOINT XML [XML ...]
        [--out RESULTS.md] [--cfg-options K=V ...]

Runs the config's test set through the checkpoint in PyTorch
(``model.test_step``) and through each ``model.xml`` written by
``export_openvino.py`` (``OpenVINODetector``: the IR's raw outputs into the
detector's own ``predict_by_feat``), scores each with the config's test
evaluator, and prints one table (written to ``--out`` too, as markdown).
"""
import argparse
import copy
import os.path as osp
import time

from mmengine.config import DictAction
from mmengine.evaluator import Evaluator
from mmengine.runner import Runner

import mmghost  # noqa: F401  (registers mmghost, applies its fixes)
from mmghost.checkpoint import build_model
from mmghost.deployment.openvino import OpenVINODetector, read_export

METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75')


def parse_args():
    parser = argparse.ArgumentParser(
        description='COCO mAP of a detector in PyTorch and of its OpenVINO '
        'IRs on the same test images')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file of the model')
    parser.add_argument(
        'irs', nargs='+', metavar='XML', help='model.xml of export dirs')
    parser.add_argument('--out', help='also write the table here (markdown)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs')
    return parser.parse_args()


def evaluate(predict, cfg, loader) -> dict:
    """``predict`` (a data batch to data samples) scored on ``loader``."""
    evaluator = Evaluator(copy.deepcopy(cfg.test_evaluator))
    evaluator.dataset_meta = loader.dataset.metainfo
    start = time.perf_counter()
    for data in loader:
        evaluator.process(data_samples=predict(data), data_batch=data)
    seconds = time.perf_counter() - start
    metrics = evaluator.evaluate(len(loader.dataset))
    metrics['seconds_per_image'] = seconds / len(loader.dataset)
    return metrics


def main():
    args = parse_args()
    for path in [args.checkpoint] + args.irs:
        if not osp.isfile(path):
            raise SystemExit(f'{path} does not exist')
    try:
        model = build_model(args.config, args.checkpoint, args.cfg_options)
        runs = [('PyTorch FP32', args.checkpoint, model.test_step)]
        for xml in args.irs:
            _, meta = read_export(xml)
            detector = OpenVINODetector(xml, model, meta)
            name = f"OpenVINO {meta['precision'].upper()}"
            if meta['precision'] == 'int8':
                kept = meta.get('calibration', {}).get('keep_fp32')
                name += f' (FP32 kept: {kept})' if kept else ''
            runs.append((name, xml, detector.predict))
    except (OSError, ValueError) as e:
        raise SystemExit(str(e))
    cfg = model.cfg
    loader = Runner.build_dataloader(cfg.test_dataloader)

    rows = []
    for name, source, predict in runs:
        metrics = evaluate(predict, cfg, loader)
        found = {m: v for k, v in metrics.items()
                 for m in METRICS if k.endswith('/' + m)}
        missing = [m for m in METRICS if m not in found]
        if missing:
            raise SystemExit(f'the test evaluator of {args.config} gives no '
                             f'{", ".join(missing)} (got {sorted(metrics)})')
        rows.append((name, source, found, metrics['seconds_per_image']))

    lines = [
        f'{len(loader.dataset)} test images of `{args.config}`, '
        f'checkpoint `{args.checkpoint}`', '',
        '| runtime | model | bbox mAP | mAP@0.5 | mAP@0.75 | s/image '
        '(pipeline + forward + post-processing) |',
        '|---|---|---:|---:|---:|---:|'
    ]
    base = rows[0][2]
    for name, source, found, seconds in rows:
        cells = ' | '.join(
            f'{found[m]:.3f}' + ('' if found is base else
                                 f' ({found[m] - base[m]:+.3f})')
            for m in METRICS)
        lines.append(f'| {name} | `{source}` | {cells} | {seconds:.3f} |')
    table = '\n'.join(lines)
    print(table)
    if args.out:
        with open(args.out, 'w', encoding='utf-8') as f:
            f.write(table + '\n')


if __name__ == '__main__':
    main()
