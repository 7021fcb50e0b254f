# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""``conv_cfg=dict(type='GhostConv')``: Ghost modules in necks and heads.

Registered in mmengine's root ``MODELS`` registry, which mmcv's
``build_conv_layer`` searches whatever the default scope, so any module
built through ``ConvModule`` (mmdet's FPN, RetinaHead, FCOSHead, ...) turns
its k>1 convolutions into Ghost modules by config alone. 1x1 convolutions
(FPN laterals) stay dense: a Ghost module saves nothing there.

The module is the paper's: a primary convolution with the original kernel,
stride, padding and dilation producing ``ceil(out/2)`` channels, then a
depthwise 3x3 cheap operation making the rest. BN/activation choice: none
inside. ``ConvModule`` already applies its own norm and activation after
the convolution it built, so GhostConv is a linear drop-in for the dense
convolution (both of its convolutions carry ``bias`` when ConvModule asks
for one, i.e. when no norm follows).
"""
from typing import Union

import torch.nn as nn
from mmengine.model import kaiming_init
from mmengine.registry import MODELS
from torch.nn.modules.utils import _pair

from .ghost_module import GhostModule

__all__ = ['GhostConv2d', 'ghost_conv']


class GhostConv2d(GhostModule):
    """A Ghost module with the attributes ``ConvModule`` reads of a conv.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel of the primary convolution (> 1).
        stride (int): Stride of the primary convolution. Default: 1.
        padding (int): Padding of the primary convolution. Default: 0,
            as ``nn.Conv2d`` (``ConvModule`` passes its own).
        dilation (int): Dilation of the primary convolution. Default: 1.
        groups (int): Must be 1. Default: 1.
        bias (bool): Bias on both convolutions. Default: True.
        ratio (int): Output channels per intrinsic channel. Default: 2.
        dw_size (int): Kernel of the cheap operation. Default: 3.
    """

    transposed = False

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Union[int, tuple],
                 stride: Union[int, tuple] = 1,
                 padding: Union[int, tuple] = 0,
                 dilation: Union[int, tuple] = 1,
                 groups: int = 1,
                 bias: Union[bool, str] = True,
                 ratio: int = 2,
                 dw_size: int = 3):
        if groups != 1:
            raise ValueError(f'GhostConv replaces dense convolutions only: '
                             f'groups must be 1, got groups={groups}')
        super().__init__(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            ratio=ratio,
            dw_size=dw_size,
            stride=stride,
            act=False,
            norm_cfg=None,
            padding=padding,
            dilation=dilation,
            bias=bool(bias))
        self.in_channels = in_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.output_padding = (0, 0)
        self.groups = groups

    def init_weights(self):
        # ConvModule would kaiming-init a plain conv; do it for both halves.
        kaiming_init(self.primary_conv[0], nonlinearity='relu')
        kaiming_init(self.cheap_operation[0], nonlinearity='relu')


@MODELS.register_module('GhostConv')
def ghost_conv(in_channels: int, out_channels: int,
               kernel_size: Union[int, tuple], *args, **kwargs) -> nn.Module:
    """Build a :class:`GhostConv2d`, or a plain conv for a 1x1 kernel."""
    if _pair(kernel_size) == (1, 1):
        return nn.Conv2d(in_channels, out_channels, kernel_size, *args,
                         **kwargs)
    return GhostConv2d(in_channels, out_channels, kernel_size, *args,
                       **kwargs)
