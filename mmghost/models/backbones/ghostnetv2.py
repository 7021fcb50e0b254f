# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""GhostNetV2 backbone for MMDetection.

GhostNetV2: Enhance Cheap Operation with Long-Range Attention. Yehui Tang,
Kai Han, Jianyuan Guo, Chang Xu, Chao Xu, Yunhe Wang. NeurIPS 2022.
https://arxiv.org/abs/2211.12905

GhostNetV2 keeps GhostNet's table and gates the expanding Ghost module
(``ghost1``) of every bottleneck but the first two with DFC attention: a
"decoupled fully connected" map built at half resolution from a 1x1 conv and
two depthwise convs along the width (1x5) and the height (5x1), squashed by a
sigmoid and upsampled (nearest) onto the Ghost features.

The structure and the parameter names follow Huawei's release
(github.com/huawei-noah/Efficient-AI-Backbones,
``ghostnetv2_pytorch/model/ghostnetv2_torch.py``, Apache-2.0), which timm's
``ghostnetv2_100/130/160`` share, so both ImageNet checkpoints load without
key surgery.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS

from ..layers import GhostModule, build_norm, fuse_sequential
from .ghostnet import GhostBottleneck, GhostNet

__all__ = ['GhostNetV2', 'GhostBottleneckV2', 'GhostModuleV2']


class GhostModuleV2(GhostModule):
    """Ghost module whose output is gated by DFC attention.

    The Ghost features are v1's (``primary_conv``, ``cheap_operation``);
    ``short_conv`` computes the attention map from the input pooled to half
    resolution (floor, as released: a trailing odd row or column is left out
    of the map and covered by the nearest upsampling). Inputs must be at
    least 2x2.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel of the primary convolution and of the
            attention's first convolution. Default: 1.
        stride (int): Stride of the primary convolution and of the
            attention's first convolution. Default: 1.
        norm_cfg (dict): Norm layer after each convolution, the attention's
            included. Default: ``dict(type='BN')``.
        dfc_kernel_size (int): Length of the horizontal and vertical
            depthwise kernels of DFC attention. Default: 5.
        deploy (bool): Build the inference structure that
            :meth:`switch_to_deploy` makes. Default: False.
        prefix (str): The module's path in its network, ending with ``.``,
            for the names in norm errors. Default: ``''``.
        **kwargs: The other arguments of :class:`GhostModule` (``ratio``,
            ``dw_size``, ``act``, ...). They shape the Ghost features only:
            ``act``'s ReLU, for one, is not applied inside the attention.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 *,
                 stride: int = 1,
                 norm_cfg: dict = dict(type='BN'),
                 dfc_kernel_size: int = 5,
                 deploy: bool = False,
                 prefix: str = '',
                 **kwargs):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            stride=stride,
            norm_cfg=norm_cfg,
            deploy=deploy,
            prefix=prefix,
            **kwargs)
        pad = dfc_kernel_size // 2

        # DFC attention: 1x1 conv, then fully connected along W and along H
        # (depthwise 1xK and Kx1), each followed by a norm
        self.short_conv = nn.Sequential(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride,
                kernel_size // 2,
                bias=deploy),
            build_norm(norm_cfg, out_channels, f'{prefix}short_conv.1',
                       deploy),
            nn.Conv2d(
                out_channels,
                out_channels, (1, dfc_kernel_size),
                padding=(0, pad),
                groups=out_channels,
                bias=deploy),
            build_norm(norm_cfg, out_channels, f'{prefix}short_conv.3',
                       deploy),
            nn.Conv2d(
                out_channels,
                out_channels, (dfc_kernel_size, 1),
                padding=(pad, 0),
                groups=out_channels,
                bias=deploy),
            build_norm(norm_cfg, out_channels, f'{prefix}short_conv.5',
                       deploy),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # DFC attention, at half resolution
        attn = self.short_conv(F.avg_pool2d(x, kernel_size=2, stride=2))
        # Ghost features (primary convolution + cheap operation)
        out = super().forward(x)
        return out * F.interpolate(
            attn.sigmoid(), size=out.shape[-2:], mode='nearest')

    def switch_to_deploy(self):
        if self.deploy:
            return
        for conv in (0, 2, 4):
            fuse_sequential(self.short_conv, conv, conv + 1)
        super().switch_to_deploy()


class GhostBottleneckV2(GhostBottleneck):
    """v1's Ghost bottleneck with DFC attention on the expansion.

    Only ``ghost1`` differs (a :class:`GhostModuleV2`); the depthwise conv,
    SE, ``ghost2`` and shortcut are v1's, under the same names. Arguments
    are those of :class:`GhostBottleneck`.
    """

    ghost1_type = GhostModuleV2


@MODELS.register_module()
class GhostNetV2(GhostNet):
    """GhostNetV2 backbone.

    Stages, the one index space of ``out_indices`` and ``frozen_stages``
    (the same split as :class:`GhostNet`):

    ===== ===================== ====== ============================
    stage modules               stride channels at 1.0x / 1.3x / 1.6x
    ===== ===================== ====== ============================
    0     stem + ``blocks.0``   2      16 / 20 / 24
    1     ``blocks.1-2``        4      24 / 32 / 40
    2     ``blocks.3-4``        8      40 / 52 / 64
    3     ``blocks.5-6``        16     112 / 144 / 180
    4     ``blocks.7-8``        32     160 / 208 / 256
    5     ``blocks.9`` (1x1)    32     960 / 1248 / 1536
    ===== ===================== ====== ============================

    Args:
        widen_factor (float): Width multiplier; every width is
            ``make_divisible(c * widen_factor, 4)``. ImageNet weights are
            published for 1.0, 1.3 and 1.6. Default: 1.0.

    Other arguments: see :class:`GhostNet` (``out_indices``) and
    :class:`GhostBackboneBase`.

    Note:
        DFC attention pools its input by 2, so every feature map entering a
        bottleneck must be at least 2x2: the input must be larger than
        32x32 (detection inputs padded to a multiple of 32 need >= 64).
    """

    # GhostNetV2 keeps GhostNet's table, stem, head and stages unchanged
    # (as released): see GhostNet.arch_settings.
    # Bottlenecks are counted over the whole table; from this one on (the
    # third, blocks.2.0) ghost1 carries DFC attention, as released.
    dfc_from = 2
    # The released checkpoints also hold the FLOP counters that thop
    # registers on every module (`blocks.0.0.total_ops`, ...).
    ignored_checkpoint_suffixes = ('total_ops', 'total_params')

    def _make_bottleneck(self, index: int, *args, **kwargs) -> nn.Module:
        if index >= self.dfc_from:
            return GhostBottleneckV2(*args, **kwargs)
        return GhostBottleneck(*args, **kwargs)
