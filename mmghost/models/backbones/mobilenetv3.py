# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""MobileNetV3 backbone for MMDetection: the baseline of GhostNet's COCO table.

Searching for MobileNetV3. Andrew Howard, Mark Sandler, Grace Chu,
Liang-Chieh Chen, Bo Chen, Mingxing Tan, Weijun Wang, Yukun Zhu, Ruoming Pang,
Vijay Vasudevan, Quoc V. Le, Hartwig Adam. ICCV 2019.
https://arxiv.org/abs/1905.02244

The module tree and the parameter names follow torchvision's
``mobilenet_v3_large`` (github.com/pytorch/vision,
``torchvision/models/mobilenetv3.py``, BSD-3-Clause): ``features.{i}``,
``block.{j}`` inside a bottleneck, ``fc1``/``fc2`` in the squeeze-excite,
BatchNorm with eps 0.001 and momentum 0.01. torchvision's ImageNet
checkpoints therefore load strictly, without key surgery.
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.models.utils import make_divisible
from mmdet.registry import MODELS

from ..layers import build_norm, fuse_sequential
from .base import GhostBackboneBase

__all__ = ['MobileNetV3', 'InvertedResidual', 'SqueezeExcitation']

_ACTIVATIONS = dict(RE=nn.ReLU, HS=nn.Hardswish)


def _width(channels: float, widen_factor: float) -> int:
    """Scale a channel count; divisor 8, as torchvision made the weights."""
    return make_divisible(channels * widen_factor, 8)


class ConvNormAct(nn.Sequential):
    """Convolution, norm and optional activation as children ``0, 1, 2``
    (torchvision's ``Conv2dNormActivation`` layout; the conv has a bias only
    in deploy mode, where the norm is folded into it)."""

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 norm_cfg: dict,
                 name: str,
                 stride: int = 1,
                 groups: int = 1,
                 act: Optional[str] = None,
                 deploy: bool = False):
        layers = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                (kernel_size - 1) // 2,
                groups=groups,
                bias=deploy),
            build_norm(norm_cfg, out_channels, f'{name}.1', deploy),
        ]
        if act is not None:
            layers.append(_ACTIVATIONS[act](inplace=True))
        super().__init__(*layers)

    def switch_to_deploy(self):
        fuse_sequential(self, 0, 1)


class SqueezeExcitation(nn.Module):
    """MobileNetV3's squeeze-and-excitation: ReLU, then a hard-sigmoid gate.

    The reduced width is ``make_divisible(channels // 4, 8)`` and the
    parameters are ``fc1``/``fc2``, as torchvision built and named them.
    """

    def __init__(self, channels: int):
        super().__init__()
        squeeze_channels = make_divisible(channels // 4, 8)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze_channels, 1)
        self.fc2 = nn.Conv2d(squeeze_channels, channels, 1)
        self.activation = nn.ReLU(inplace=True)
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.activation(self.fc1(self.avgpool(x)))
        return x * self.scale_activation(self.fc2(scale))


class InvertedResidual(nn.Module):
    """Bottleneck: [1x1 expand], depthwise, [SE], 1x1 linear projection.

    The layers are ``block.{j}`` in that order (no expansion where the
    hidden width equals the input width), plus the identity shortcut when
    the shape is kept.

    Args:
        in_channels (int): Input channels.
        kernel_size (int): Kernel of the depthwise convolution.
        mid_channels (int): Hidden (expanded) channels.
        out_channels (int): Output channels.
        with_se (bool): Squeeze-and-excitation after the depthwise conv.
        act (str): ``'RE'`` (ReLU) or ``'HS'`` (hard-swish).
        stride (int): 1 or 2.
        norm_cfg (dict): Norm layers.
        name (str): Where the bottleneck sits, for error messages.
        deploy (bool): Build the structure :meth:`switch_to_deploy` makes.
            Default: False.
    """

    def __init__(self,
                 in_channels: int,
                 kernel_size: int,
                 mid_channels: int,
                 out_channels: int,
                 with_se: bool,
                 act: str,
                 stride: int,
                 norm_cfg: dict,
                 name: str,
                 deploy: bool = False):
        super().__init__()
        layers = []

        # Point-wise expansion
        if mid_channels != in_channels:
            layers.append(
                ConvNormAct(
                    in_channels,
                    mid_channels,
                    1,
                    norm_cfg,
                    f'{name}.block.{len(layers)}',
                    act=act,
                    deploy=deploy))

        # Depth-wise convolution
        layers.append(
            ConvNormAct(
                mid_channels,
                mid_channels,
                kernel_size,
                norm_cfg,
                f'{name}.block.{len(layers)}',
                stride=stride,
                groups=mid_channels,
                act=act,
                deploy=deploy))

        # Squeeze-and-excitation
        if with_se:
            layers.append(SqueezeExcitation(mid_channels))

        # Point-wise linear projection
        layers.append(
            ConvNormAct(
                mid_channels,
                out_channels,
                1,
                norm_cfg,
                f'{name}.block.{len(layers)}',
                deploy=deploy))
        self.block = nn.Sequential(*layers)

        # Shortcut: identity where the shape is kept
        self.with_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Expansion, depth-wise convolution, SE, projection
        out = self.block(x)

        # Shortcut
        return out + x if self.with_shortcut else out


@MODELS.register_module()
class MobileNetV3(GhostBackboneBase):
    """MobileNetV3 backbone, the paper's 1.0x large network.

    Stages, the one index space of ``out_indices`` and ``frozen_stages``
    (the same contract as :class:`GhostNet`: each stage ends with the last
    block of its stride):

    ===== ========================= ====== ===============
    stage modules                   stride channels at 1.0x
    ===== ========================= ====== ===============
    0     ``features.0-1`` (stem+1) 2      16
    1     ``features.2-3``          4      24
    2     ``features.4-6``          8      40
    3     ``features.7-12``         16     112
    4     ``features.13-15``        32     160
    5     ``features.16`` (1x1)     32     960
    ===== ========================= ====== ===============

    Args:
        arch (str): ``'large'``. Default: ``'large'``.
        widen_factor (float): Width multiplier; every width is
            ``make_divisible(c * widen_factor, 8)`` as torchvision's
            ``width_mult``. Default: 1.0.
        out_indices (Sequence[int]): Stages whose outputs ``forward``
            returns. Default: (1, 2, 3, 4), the stage ends at strides 4, 8,
            16 and 32.
        norm_cfg (dict): Norm layers, as in :class:`GhostBackboneBase`.
            Default: BN with eps 0.001 and momentum 0.01, as the released
            weights were trained; keep that eps when loading them.
        with_cp (bool): Gradient checkpointing per ``features.{i}``.
            Default: False.
        init_cfg (dict | list[dict], optional): As in
            :class:`GhostBackboneBase`; a ``Pretrained`` checkpoint is
            torchvision's ImageNet ``mobilenet_v3_large`` (its classifier is
            dropped).

    Other arguments (``frozen_stages``, ``norm_eval``, ``deploy``): see
    :class:`GhostBackboneBase`.
    """

    # One row per inverted residual, `features.1` to `features.15`.
    # k: depthwise kernel, exp: hidden channels, out: output channels,
    # se: squeeze-excite, act: 'RE' ReLU / 'HS' hard-swish, s: stride.
    arch_settings = {
        'large': [
            # k, exp, out,  se,    act,  s
            # stage 0 (stride 2, with the stem features.0): features.1
            [3, 16, 16, False, 'RE', 1],
            # stage 1 (stride 4): features.2-3
            [3, 64, 24, False, 'RE', 2],
            [3, 72, 24, False, 'RE', 1],
            # stage 2 (stride 8): features.4-6
            [5, 72, 40, True, 'RE', 2],
            [5, 120, 40, True, 'RE', 1],
            [5, 120, 40, True, 'RE', 1],
            # stage 3 (stride 16): features.7-12
            [3, 240, 80, False, 'HS', 2],
            [3, 200, 80, False, 'HS', 1],
            [3, 184, 80, False, 'HS', 1],
            [3, 184, 80, False, 'HS', 1],
            [3, 480, 112, True, 'HS', 1],
            [3, 672, 112, True, 'HS', 1],
            # stage 4 (stride 32): features.13-15
            [5, 672, 160, True, 'HS', 2],
            [5, 960, 160, True, 'HS', 1],
            [5, 960, 160, True, 'HS', 1],
        ],
    }
    # Stage 5 is the last features.{i}: a 1x1 conv to `head_expansion`
    # times the last bottleneck's width (960 at 1.0x), hard-swish.
    head_expansion = 6
    stem_channels = 16
    # The last features.{i} of each stage.
    stage_ends = (1, 3, 6, 12, 15, 16)
    ignored_checkpoint_prefixes: Tuple[str, ...] = ('classifier.', )

    def __init__(self,
                 arch: str = 'large',
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (1, 2, 3, 4),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN', eps=0.001, momentum=0.01),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 deploy: bool = False,
                 init_cfg=None):
        if arch not in self.arch_settings:
            raise ValueError(f'arch must be one of '
                             f'{tuple(self.arch_settings)}, but got '
                             f'arch={arch!r}')
        super().__init__(widen_factor, out_indices, frozen_stages, norm_cfg,
                         norm_eval, with_cp, deploy, init_cfg)
        self.arch = arch

        # Stem
        channels = _width(self.stem_channels, widen_factor)
        layers = [
            ConvNormAct(
                3,
                channels,
                3,
                norm_cfg,
                'features.0',
                stride=2,
                act='HS',
                deploy=deploy)
        ]
        stride = 2

        # Inverted residuals
        for k, exp, out, with_se, act, s in self.arch_settings[arch]:
            out = _width(out, widen_factor)
            layers.append(
                InvertedResidual(
                    channels,
                    k,
                    _width(exp, widen_factor),
                    out,
                    with_se,
                    act,
                    s,
                    norm_cfg,
                    f'features.{len(layers)}',
                    deploy=deploy))
            channels, stride = out, stride * s
            self._record_tap(len(layers) - 1, channels, stride)

        # Final 1x1 conv
        out = self.head_expansion * channels
        layers.append(
            ConvNormAct(
                channels,
                out,
                1,
                norm_cfg,
                f'features.{len(layers)}',
                act='HS',
                deploy=deploy))
        self._record_tap(len(layers) - 1, out, stride)
        self.features = nn.Sequential(*layers)
        self._freeze_stages()

    def _record_tap(self, index: int, channels: int, stride: int):
        if index in self.stage_ends:
            self.stage_channels.append(channels)
            self.stage_strides.append(stride)

    def stage_modules(self, stage: int):
        return [self.features[i] for i in self.stage_blocks(stage)]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for stage in self.run_stages:
            for i in self.stage_blocks(stage):
                x = self._run(self.features[i], x)
            if stage in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _fold_norms(self):
        for module in self.modules():
            if isinstance(module, ConvNormAct):
                module.switch_to_deploy()
