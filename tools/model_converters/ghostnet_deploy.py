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

import mmghost  # noqa: F401
from mmghost.checkpoint import build_model


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.model.backbone.get('deploy'):
        raise SystemExit(f'{args.config} already builds its backbone in '
                         'deploy mode; pass the training config')
    cfg.model.backbone.init_cfg = None
    # strict: a half-loaded detector must not be converted and saved
    model = build_model(cfg, args.checkpoint)
    if not hasattr(model.backbone, 'switch_to_deploy'):
        raise SystemExit(f'{type(model.backbone).__name__} has no deploy '
                         'mode; only GhostNet and GhostNetV2 do')
    model.backbone.switch_to_deploy()
    meta = model.checkpoint_meta
    meta['deploy'] = dict(backbone=True, source=osp.abspath(args.checkpoint))
    torch.save(dict(state_dict=model.state_dict(), meta=meta), args.out)
    print(f'saved {args.out}: backbone in deploy mode; build it with '
          '--cfg-options model.backbone.deploy=True')


if __name__ == '__main__':
    main()
