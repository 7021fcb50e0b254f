# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The Ghost module, shared by the GhostNet backbones and ``GhostConv``.

GhostNet: More Features from Cheap Operations (Han et al., CVPR 2020,
https://arxiv.org/abs/1911.11907). A primary convolution makes
``ceil(out / ratio)`` intrinsic feature maps; a cheap depthwise convolution
makes the "ghost" maps from them; both are concatenated and cut to ``out``.

The submodule names (``primary_conv.{0,1}``, ``cheap_operation.{0,1}``)
follow Huawei's release (github.com/huawei-noah/Efficient-AI-Backbones,
Apache-2.0) so its checkpoints load without renaming.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer

__all__ = [
    'GhostModule', 'build_norm', 'fuse_conv_norm', 'fuse_sequential',
    'NORM_TYPES'
]

# Norm layers a Ghost network may be built with, as ``norm_cfg['type']``.
NORM_TYPES = ('BN', 'BN2d', 'SyncBN', 'GN')


def build_norm(norm_cfg: Optional[dict],
               num_features: int,
               name: str,
               deploy: bool = False) -> nn.Module:
    """The norm after a conv, checking ``norm_cfg`` against its channels.

    ``nn.Identity()`` where there is none: ``norm_cfg=None``, or deploy mode
    (the norm is folded into its conv). ``name`` is the layer's path in the
    network (``'blocks.0.0.ghost1.primary_conv.1'``), which a GN error
    names.
    """
    if norm_cfg is None or deploy:
        return nn.Identity()
    norm_type = norm_cfg.get('type') if isinstance(norm_cfg, dict) else None
    if norm_type not in NORM_TYPES:
        raise ValueError(f'norm_cfg type must be one of {NORM_TYPES}, '
                         f'but got norm_cfg={norm_cfg!r}')
    if norm_type == 'GN':
        groups = norm_cfg.get('num_groups')
        if not isinstance(groups, int) or groups <= 0:
            raise ValueError('norm_cfg GN needs a positive int num_groups, '
                             f'but got norm_cfg={norm_cfg!r}')
        if num_features % groups:
            raise ValueError(
                f'norm_cfg={norm_cfg!r} cannot normalise the {num_features} '
                f'channels of {name}: num_groups must divide the channel '
                'count of every norm layer (Ghost halves are often not '
                'multiples of 8 or 32; pick num_groups that divides them, or '
                'use BN)')
    return build_norm_layer(norm_cfg, num_features)[1]


def fuse_conv_norm(conv: nn.Conv2d, norm: nn.Module) -> nn.Conv2d:
    """A convolution computing ``norm(conv(x))`` of an eval-mode norm.

    ``norm`` is a BatchNorm (its running statistics are folded in) or
    ``nn.Identity`` (the conv is returned as it is). Used by every
    ``switch_to_deploy``.
    """
    if isinstance(norm, nn.Identity):
        return conv
    if not isinstance(norm, nn.modules.batchnorm._BatchNorm):
        raise ValueError(f'switch_to_deploy folds BatchNorm only, not '
                         f'{type(norm).__name__}')
    std = (norm.running_var + norm.eps).sqrt()
    scale = (norm.weight if norm.affine else torch.ones_like(std)) / std
    shift = norm.bias if norm.affine else torch.zeros_like(std)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(std)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True).to(conv.weight)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((bias - norm.running_mean) * scale + shift)
    return fused


def fuse_sequential(seq: nn.Sequential, conv: int = 0, norm: int = 1):
    """Fold ``seq[norm]`` into ``seq[conv]`` in place (norm -> Identity)."""
    seq[conv] = fuse_conv_norm(seq[conv], seq[norm])
    seq[norm] = nn.Identity()


class GhostModule(nn.Module):
    """Primary convolution plus cheap depthwise convolution.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel of the primary convolution. Default: 1.
        ratio (int): Output channels per intrinsic channel. Default: 2.
        dw_size (int): Kernel of the cheap depthwise convolution. Default: 3.
        stride (int): Stride of the primary convolution. Default: 1.
        act (bool): Apply ReLU after both convolutions. Default: True.
        norm_cfg (dict, optional): Norm layer after each convolution; None
            for none (the convolutions then carry ``bias``).
            Default: ``dict(type='BN')``.
        padding (int, optional): Padding of the primary convolution.
            Default: ``kernel_size // 2 * dilation``.
        dilation (int): Dilation of the primary convolution. Default: 1.
        bias (bool): Convolution bias when there is no norm. Default: True.
        deploy (bool): Build the inference structure that
            :meth:`switch_to_deploy` makes: norms folded into biased
            convolutions. Default: False.
        prefix (str): The module's path in its network, ending with ``.``
            as in state-dict keys (``'blocks.0.0.ghost1.'``), for the names
            in norm errors. Default: ``''``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 1,
                 ratio: int = 2,
                 dw_size: int = 3,
                 stride: int = 1,
                 act: bool = True,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 padding: Optional[int] = None,
                 dilation: int = 1,
                 bias: bool = True,
                 deploy: bool = False,
                 prefix: str = ''):
        super().__init__()
        self.out_channels = out_channels
        self.deploy = deploy
        init_channels = math.ceil(out_channels / ratio)
        new_channels = init_channels * (ratio - 1)
        if padding is None:
            padding = kernel_size // 2 * dilation
        conv_bias = deploy or (bias and norm_cfg is None)

        # Primary convolution: the intrinsic feature maps
        self.primary_conv = nn.Sequential(
            nn.Conv2d(
                in_channels,
                init_channels,
                kernel_size,
                stride,
                padding,
                dilation,
                bias=conv_bias),
            build_norm(norm_cfg, init_channels, f'{prefix}primary_conv.1',
                       deploy),
            nn.ReLU(inplace=True) if act else nn.Identity(),
        )

        # Cheap operation: depthwise "ghost" maps of the intrinsic ones
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(
                init_channels,
                new_channels,
                dw_size,
                1,
                dw_size // 2,
                groups=init_channels,
                bias=conv_bias),
            build_norm(norm_cfg, new_channels, f'{prefix}cheap_operation.1',
                       deploy),
            nn.ReLU(inplace=True) if act else nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Primary convolution
        x1 = self.primary_conv(x)
        # Cheap operation
        return self.cheap(x1)

    def cheap(self, x1: torch.Tensor) -> torch.Tensor:
        """The module's output from its primary convolution's output."""
        x2 = self.cheap_operation(x1)
        out = torch.cat([x1, x2], dim=1)
        if out.shape[1] != self.out_channels:
            out = out[:, :self.out_channels]
        return out

    def switch_to_deploy(self):
        """Fold the norms into the convolutions, in place, irreversibly."""
        if self.deploy:
            return
        fuse_sequential(self.primary_conv)
        fuse_sequential(self.cheap_operation)
        self.deploy = True
