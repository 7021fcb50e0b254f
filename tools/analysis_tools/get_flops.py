# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Complexity of a config's backbone and whole detector; no dataset needed.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]
        [--classifier] [--cfg-options K=V ...]

Prints multiply-adds in the paper's convention (convolutions and linear
layers, counted by mmengine's FlopAnalyzer), mmengine's total (which also
counts norms, pooling and resizing) and parameters. ``--classifier`` counts
the backbone with its ImageNet classifier instead of the detector, which is
how the paper's 141M for GhostNet 1.0x is meant.
"""
import argparse

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmghost  # noqa: F401
from mmghost.analysis import ImageNetClassifier, TensorMode, complexity

MIN_SIZE = 32  # pixels: one cell of a stride-32 feature map


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs='+',
        default=None,
        metavar='SIZE',
        help='input H W, or S for S x S (default: 800 1333 for detectors, '
        '224 224 with --classifier)')
    parser.add_argument(
        '--classifier',
        action='store_true',
        help='count the backbone with its ImageNet classifier head')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    if args.shape is not None and (len(args.shape) > 2
                                   or min(args.shape) < MIN_SIZE):
        parser.error(f"--shape {' '.join(map(str, args.shape))}: give the "
                     'input size as H W (or S for S x S), each at least '
                     f'{MIN_SIZE}; the 3 colour channels are implied')
    return args


def build(cfg, classifier=False):
    from mmdet.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg = cfg.model
    model_cfg.backbone.pop('init_cfg', None)
    stage_ends = getattr(MODELS.get(model_cfg.backbone.type), 'stage_ends',
                         None)
    if classifier and stage_ends:
        # the ImageNet network goes on to the last stage (GhostNet's final
        # 1x1 conv), whichever stages the detector taps
        model_cfg.backbone.out_indices = (len(stage_ends) - 1, )
    model = MODELS.build(model_cfg)
    model.eval()
    return model


def row(name, counts):
    return (f"| {name:<34} | {counts['conv_linear'] / 1e6:>12.1f} | "
            f"{counts['total'] / 1e6:>12.1f} | {counts['params'] / 1e6:>7.2f} |")


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    shape = args.shape or ([224, 224] if args.classifier else [800, 1333])
    if len(shape) == 1:
        shape = shape * 2
    x = torch.randn(1, 3, *shape)
    model = build(cfg, args.classifier)
    backbone = model.backbone
    backbone_type = cfg.model.backbone.type
    width = cfg.model.backbone.get('widen_factor', 1.0)

    print(f'{args.config}: {backbone_type} widen_factor={width}, '
          f'input 1x3x{shape[0]}x{shape[1]}')
    print('| model                              | MAdds (paper,'
          ' M) | MAdds (all, M) | params (M) |')
    print('|------------------------------------|-------------:|'
          '--------------:|-----------:|')
    with torch.no_grad():
        if args.classifier:
            last = backbone.out_indices[-1] if hasattr(
                backbone, 'out_indices') else None
            channels = (backbone.out_channels[-1] if hasattr(
                backbone, 'out_channels') else 1280)
            print(row(f'{backbone_type} classifier',
                      complexity(ImageNetClassifier(backbone, channels),
                                 (x, ))))
            if last is not None:
                print(f'(classifier on the output of stage {last})')
            return
        print(row(f'{backbone_type} backbone', complexity(backbone, (x, ))))
        print(row(f'{cfg.model.type} (tensor mode)',
                  complexity(TensorMode(model, shape), (x, ))))


if __name__ == '__main__':
    main()
