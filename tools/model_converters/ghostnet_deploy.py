# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Convert a detector checkpoint's Ghost backbone to deploy mode.

    python tools/model_converters/ghostnet_deploy.py CONFIG CKPT OUT.pth

Loads CKPT into the detector built from CONFIG, calls the backbone's
``switch_to_deploy()`` (every batch-norm folded into its convolution) and
saves the weights to OUT.pth. Test or serve it with the config's backbone
built in deploy mode:

    python tools/test.py CONFIG OUT.pth --cfg-options model.backbone.deploy=True
"""
import argparse
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import mmghost  # noqa: F401


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main():
    args = parse_args()
    from mmdet.registry import MODELS
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.backbone.init_cfg = None
    if cfg.model.backbone.get('deploy'):
        raise SystemExit(f'{args.config} already builds its backbone in '
                         'deploy mode; pass the training config')
    model = MODELS.build(cfg.model)
    checkpoint = load_checkpoint(
        model, args.checkpoint, map_location='cpu', strict=True)
    if not hasattr(model.backbone, 'switch_to_deploy'):
        raise SystemExit(f'{type(model.backbone).__name__} has no deploy '
                         'mode; only GhostNet and GhostNetV2 do')
    model.eval()
    model.backbone.switch_to_deploy()
    meta = dict(checkpoint.get('meta', {}))
    meta['deploy'] = dict(backbone=True, source=osp.abspath(args.checkpoint))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), args.out)
    print(f'saved {args.out}: backbone in deploy mode; build it with '
          '--cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    main()
