# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""GhostNet's concat-free bottleneck, swapped in by ``switch_to_deploy()``.

A Ghost module concatenates its two halves; in a bottleneck the wide
output of the expanding ``ghost1`` is only ever read by per-channel ops
(depthwise conv, SE scaling) and by the 1x1 projection of ``ghost2``. On
CPU in channels-last layout a channel concat is a strided copy that cost a
third of GhostNet's time; :class:`SplitGhostBottleneck` runs the two halves
separately instead and writes the projection as the sum of two 1x1 convs
over the (narrow) projected width. It has the bottleneck's parameters under
the same names, so a deploy checkpoint loads into it unchanged.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmghost.models.backbones.ghostnet import GhostBottleneck
from mmghost.models.layers import GhostModule

__all__ = ['SplitGhostBottleneck', 'split_bottlenecks']


def _like(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A weight slice in the memory format of the activations ``x``."""
    fmt = (torch.channels_last if x.is_contiguous(
        memory_format=torch.channels_last) and not x.is_contiguous() else
           torch.contiguous_format)
    return weight.contiguous(memory_format=fmt)


class SplitGhostBottleneck(GhostBottleneck):
    """A deployed :class:`GhostBottleneck` that never concatenates its
    expansion on maps of at least ``split_min_pixels`` pixels.

    On smaller maps the extra ops cost more than the copy they save, and it
    runs the bottleneck's own forward.

    Args:
        block (GhostBottleneck): A bottleneck in deploy mode (norms folded)
            whose ``ghost1`` is a plain :class:`GhostModule`. Its modules
            are taken over, not copied.
        split_min_pixels (int): Smallest ``H * W`` of the input that takes
            the split path. Default: 100 * 100.
    """

    def __init__(self,
                 block: GhostBottleneck,
                 split_min_pixels: int = 100 * 100):
        nn.Module.__init__(self)
        self.training = block.training
        self.stride = block.stride
        # the bottleneck's modules, in its order (same state dict)
        self.ghost1 = block.ghost1
        self.conv_dw = block.conv_dw
        self.bn_dw = block.bn_dw
        self.se = block.se
        self.ghost2 = block.ghost2
        self.shortcut = block.shortcut
        self.split_min_pixels = split_min_pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] * x.shape[-1] < self.split_min_pixels:
            return super().forward(x)
        shortcut = x

        # Point-wise expansion, as two halves
        a = self.ghost1.primary_conv(x)
        b = self.ghost1.cheap_operation(a)
        na, nb = a.shape[1], self.ghost1.out_channels - a.shape[1]
        if b.shape[1] != nb:
            b = b[:, :nb]

        # Depth-wise convolution, per half
        if self.conv_dw is not None:
            w, bias = self.conv_dw.weight, self.conv_dw.bias
            stride, padding = self.conv_dw.stride, self.conv_dw.padding
            a = F.conv2d(a, _like(w[:na], x), bias[:na], stride, padding, 1,
                         na)
            b = F.conv2d(b, _like(w[na:], x), bias[na:], stride, padding, 1,
                         nb)

        # Squeeze-and-excitation, one gate for both halves
        if self.se is not None:
            scale = self.se.gate(
                torch.cat([
                    F.adaptive_avg_pool2d(a, 1),
                    F.adaptive_avg_pool2d(b, 1)
                ], 1))
            a, b = a * scale[:, :na], b * scale[:, na:]

        # Point-wise linear projection: 1x1 conv as a sum over the halves
        proj = self.ghost2.primary_conv[0]
        y = F.conv2d(a, _like(proj.weight[:, :na], x), proj.bias) + F.conv2d(
            b, _like(proj.weight[:, na:], x))
        x = self.ghost2.cheap(y)

        # Shortcut
        return x + self.shortcut(shortcut)


def split_bottlenecks(backbone: nn.Module) -> int:
    """Swap a deployed backbone's plain Ghost bottlenecks for
    :class:`SplitGhostBottleneck`, in place; the number swapped.

    Bottlenecks whose ``ghost1`` is not a plain :class:`GhostModule`
    (GhostNetV2's DFC attention) and those already swapped stay as they
    are, so calling it again swaps nothing.
    """
    if not backbone.deploy:
        raise ValueError('split_bottlenecks needs a deployed backbone '
                         '(switch_to_deploy() first): it reads folded '
                         'conv biases')
    swapped = 0
    for stage in backbone.blocks:
        for j, block in enumerate(stage):
            if (type(block) is GhostBottleneck
                    and type(block.ghost1) is GhostModule):
                stage[j] = SplitGhostBottleneck(block)
                swapped += 1
    return swapped
