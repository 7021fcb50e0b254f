# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""GhostNet backbone for MMDetection.

GhostNet: More Features from Cheap Operations. Kai Han, Yunhe Wang, Qi Tian,
Jianyuan Guo, Chunjing Xu, Chang Xu. CVPR 2020.
https://arxiv.org/abs/1911.11907

The structure and the parameter names follow Huawei's release
(github.com/huawei-noah/Efficient-AI-Backbones, ``ghostnet_pytorch``,
Apache-2.0), which timm's ``ghostnet_100`` shares, so both ImageNet
checkpoints load without key surgery.
"""
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.utils import make_divisible
from mmdet.registry import MODELS

from ..layers import GhostModule, build_norm, fuse_conv_norm, fuse_sequential
from .base import GhostBackboneBase

__all__ = ['GhostNet', 'GhostBottleneck', 'SqueezeExcite']


def _width(channels: float, widen_factor: float) -> int:
    """Scale a channel count; divisor 4, as the published weights were."""
    return make_divisible(channels * widen_factor, 4)


class SqueezeExcite(nn.Module):
    """GhostNet's squeeze-and-excitation: ReLU, then a hard-sigmoid gate.

    Not mmdet's ``SELayer``: the reduced width uses divisor 4 and the
    parameters are named ``conv_reduce``/``conv_expand`` as released.
    """

    def __init__(self, channels: int, se_ratio: float = 0.25):
        super().__init__()
        reduced = make_divisible(channels * se_ratio, 4)
        self.conv_reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)
        self.conv_expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(F.adaptive_avg_pool2d(x, 1))

    def gate(self, pooled: torch.Tensor) -> torch.Tensor:
        """Per-channel scale in [0, 1] from the pooled ``(N, C, 1, 1)``."""
        return F.hardsigmoid(
            self.conv_expand(self.act1(self.conv_reduce(pooled))))


class ConvBnAct(nn.Module):
    """Convolution, norm, ReLU under the released names (``conv``, ``bn1``).

    ``prefix`` is the module's path in its network, ending with ``.``, for
    the names in norm errors.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 norm_cfg: dict,
                 deploy: bool = False,
                 prefix: str = ''):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=kernel_size // 2,
            bias=deploy)
        self.bn1 = build_norm(norm_cfg, out_channels, f'{prefix}bn1', deploy)
        self.act1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv(x)))

    def switch_to_deploy(self):
        self.conv = fuse_conv_norm(self.conv, self.bn1)
        self.bn1 = nn.Identity()


class GhostBottleneck(nn.Module):
    """Ghost bottleneck: Ghost expand, [depthwise stride], [SE], Ghost project.

    Args:
        in_channels (int): Input channels.
        mid_channels (int): Hidden (expanded) channels.
        out_channels (int): Output channels.
        dw_kernel_size (int): Kernel of the strided depthwise conv and of the
            shortcut's depthwise conv. Default: 3.
        stride (int): 1 or 2. Default: 1.
        se_ratio (float): Squeeze-excite ratio, 0 for none. Default: 0.
        norm_cfg (dict): Norm layers. Default: ``dict(type='BN')``.
        deploy (bool): Build the structure :meth:`switch_to_deploy` makes.
            Default: False.
        prefix (str): The bottleneck's path in its network, ending with
            ``.`` (``'blocks.0.0.'``), for the names in norm errors.
            Default: ``''``.
    """

    # The expanding Ghost module (GhostNetV2 gates it with DFC attention).
    ghost1_type = GhostModule

    def __init__(self,
                 in_channels: int,
                 mid_channels: int,
                 out_channels: int,
                 dw_kernel_size: int = 3,
                 stride: int = 1,
                 se_ratio: float = 0.,
                 norm_cfg: dict = dict(type='BN'),
                 deploy: bool = False,
                 prefix: str = ''):
        super().__init__()
        self.stride = stride
        padding = (dw_kernel_size - 1) // 2

        # Point-wise expansion
        self.ghost1 = self.ghost1_type(
            in_channels,
            mid_channels,
            act=True,
            norm_cfg=norm_cfg,
            deploy=deploy,
            prefix=f'{prefix}ghost1.')

        # Depth-wise convolution
        if stride > 1:
            self.conv_dw = nn.Conv2d(
                mid_channels,
                mid_channels,
                dw_kernel_size,
                stride=stride,
                padding=padding,
                groups=mid_channels,
                bias=deploy)
            self.bn_dw = build_norm(norm_cfg, mid_channels, f'{prefix}bn_dw',
                                    deploy)
        else:
            self.conv_dw = None
            self.bn_dw = None

        # Squeeze-and-excitation
        self.se = SqueezeExcite(mid_channels, se_ratio) if se_ratio else None

        # Point-wise linear projection
        self.ghost2 = GhostModule(
            mid_channels,
            out_channels,
            act=False,
            norm_cfg=norm_cfg,
            deploy=deploy,
            prefix=f'{prefix}ghost2.')

        # Shortcut
        if in_channels == out_channels and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(
                    in_channels,
                    in_channels,
                    dw_kernel_size,
                    stride=stride,
                    padding=padding,
                    groups=in_channels,
                    bias=deploy),
                build_norm(norm_cfg, in_channels, f'{prefix}shortcut.1',
                           deploy),
                nn.Conv2d(in_channels, out_channels, 1, bias=deploy),
                build_norm(norm_cfg, out_channels, f'{prefix}shortcut.3',
                           deploy),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x

        # Point-wise expansion
        x = self.ghost1(x)

        # Depth-wise convolution
        if self.conv_dw is not None:
            x = self.bn_dw(self.conv_dw(x))

        # Squeeze-and-excitation
        if self.se is not None:
            x = self.se(x)

        # Point-wise linear projection
        x = self.ghost2(x)

        # Shortcut
        return x + self.shortcut(shortcut)

    def switch_to_deploy(self):
        self.ghost1.switch_to_deploy()
        if self.conv_dw is not None:
            self.conv_dw = fuse_conv_norm(self.conv_dw, self.bn_dw)
            self.bn_dw = nn.Identity()
        self.ghost2.switch_to_deploy()
        if len(self.shortcut):
            fuse_sequential(self.shortcut, 0, 1)
            fuse_sequential(self.shortcut, 2, 3)


@MODELS.register_module()
class GhostNet(GhostBackboneBase):
    """GhostNet backbone (v1).

    Stages, the one index space of ``out_indices`` and ``frozen_stages``:

    ===== ===================== ====== ======================
    stage modules               stride channels at 1.0x / 1.1x
    ===== ===================== ====== ======================
    0     stem + ``blocks.0``   2      16 / 16
    1     ``blocks.1-2``        4      24 / 28
    2     ``blocks.3-4``        8      40 / 44
    3     ``blocks.5-6``        16     112 / 124
    4     ``blocks.7-8``        32     160 / 176
    5     ``blocks.9`` (1x1)    32     960 / 1056
    ===== ===================== ====== ======================

    Args:
        widen_factor (float): Width multiplier; every width is
            ``make_divisible(c * widen_factor, 4)``. The paper's detection
            backbone is 1.1. Default: 1.0.
        out_indices (Sequence[int]): Stages whose outputs ``forward``
            returns. Default: (1, 2, 3, 4), the last block of each stride
            4/8/16/32, the paper's FPN taps. Stage 5, the final 1x1 conv
            (made for the ImageNet classifier), stays selectable.

    Other arguments (``frozen_stages``, ``norm_cfg``, ``norm_eval``,
    ``with_cp``, ``deploy``, ``init_cfg``): see :class:`GhostBackboneBase`.
    """

    # One row per Ghost bottleneck, grouped into the release's `blocks.{i}`.
    # k: depthwise kernel, exp: hidden channels, out: output channels,
    # se: squeeze-excite ratio (0: none), s: stride.
    arch_settings = [
        # k, exp, out,  se, s
        # stage 0 (stride 2, with the stem): blocks.0
        [[3, 16, 16, 0, 1]],
        # stage 1 (stride 4): blocks.1-2
        [[3, 48, 24, 0, 2]],
        [[3, 72, 24, 0, 1]],
        # stage 2 (stride 8): blocks.3-4
        [[5, 72, 40, 0.25, 2]],
        [[5, 120, 40, 0.25, 1]],
        # stage 3 (stride 16): blocks.5-6
        [[3, 240, 80, 0, 2]],
        [[3, 200, 80, 0, 1],
         [3, 184, 80, 0, 1],
         [3, 184, 80, 0, 1],
         [3, 480, 112, 0.25, 1],
         [3, 672, 112, 0.25, 1]],
        # stage 4 (stride 32): blocks.7-8
        [[5, 672, 160, 0.25, 2]],
        [[5, 960, 160, 0, 1],
         [5, 960, 160, 0.25, 1],
         [5, 960, 160, 0, 1],
         [5, 960, 160, 0.25, 1]],
    ]
    # Stage 5 is blocks.9: a 1x1 ConvBnAct to `head_channels` (scaled).
    head_channels = 960
    stem_channels = 16
    # The last blocks.{i} of each stage.
    stage_ends = (0, 2, 4, 6, 8, 9)

    def __init__(self,
                 widen_factor: float = 1.0,
                 out_indices: Sequence[int] = (1, 2, 3, 4),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN'),
                 norm_eval: bool = False,
                 with_cp: bool = False,
                 deploy: bool = False,
                 init_cfg=None):
        super().__init__(widen_factor, out_indices, frozen_stages, norm_cfg,
                         norm_eval, with_cp, deploy, init_cfg)

        # Stem
        channels = _width(self.stem_channels, widen_factor)
        self.conv_stem = nn.Conv2d(3, channels, 3, 2, 1, bias=deploy)
        self.bn1 = build_norm(norm_cfg, channels, 'bn1', deploy)
        self.act1 = nn.ReLU(inplace=True)
        stride = 2

        # Ghost bottlenecks
        blocks = []
        index = 0  # over the whole table
        for i, group in enumerate(self.arch_settings):
            layers = []
            for j, (k, exp, out, se_ratio, s) in enumerate(group):
                out = _width(out, widen_factor)
                layers.append(
                    self._make_bottleneck(
                        index,
                        channels,
                        _width(exp, widen_factor),
                        out,
                        dw_kernel_size=k,
                        stride=s,
                        se_ratio=se_ratio,
                        norm_cfg=norm_cfg,
                        deploy=deploy,
                        prefix=f'blocks.{i}.{j}.'))
                channels, stride, index = out, stride * s, index + 1
            blocks.append(nn.Sequential(*layers))
            self._record_tap(i, channels, stride)

        # Final 1x1 conv
        out = _width(self.head_channels, widen_factor)
        head = ConvBnAct(channels, out, 1, norm_cfg, deploy,
                         prefix=f'blocks.{len(blocks)}.0.')
        blocks.append(nn.Sequential(head))
        self._record_tap(len(blocks) - 1, out, stride)
        self.blocks = nn.Sequential(*blocks)

        # Frozen stages and those past the last tap: no gradient
        self._freeze_stages()

        # Deploy mode: the inference blocks that switch_to_deploy() swaps in
        if deploy:
            self.switch_to_deploy()

    def _make_bottleneck(self, index: int, *args, **kwargs) -> nn.Module:
        """The ``index``-th bottleneck of the table (counted from 0)."""
        return GhostBottleneck(*args, **kwargs)

    def _record_tap(self, block_index: int, channels: int, stride: int):
        if block_index in self.stage_ends:
            self.stage_channels.append(channels)
            self.stage_strides.append(stride)

    def switch_to_deploy(self):
        """Fold every norm into its convolution, then swap in the
        concat-free bottleneck of :mod:`mmghost.deployment.split_bottleneck`
        (same parameters, same outputs up to float rounding), in place."""
        from mmghost.deployment.split_bottleneck import split_bottlenecks
        super().switch_to_deploy()
        split_bottlenecks(self)

    def _fold_norms(self):
        self.conv_stem = fuse_conv_norm(self.conv_stem, self.bn1)
        self.bn1 = nn.Identity()
        for stage in self.blocks:
            for block in stage:
                block.switch_to_deploy()
