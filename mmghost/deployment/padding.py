# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Channel padding of a deployed GhostNet: every width a multiple of ``m``.

GhostNet's widths are multiples of 4 and its Ghost modules halve them, so a
1.1x network is full of 14-, 22- and 26-channel tensors. Runtimes that lay
activations out in blocks of 8 channels (onnxruntime's NCHWc on AVX2, 16 on
AVX-512) take a slow path for such convolutions and cannot concatenate them
in place. Padding inserts zero channels so that every intermediate width
is a multiple of ``m``; the zero channels have zero weights and biases, so
they stay zero (ReLU, depthwise convs), are ignored by every consumer (zero
weight columns) and are dropped at the stage outputs. The function is the
same; the state dict is not (see :func:`pad_channels`).

Each tensor's layout is where its real channels sit in the padded tensor.
A Ghost module's output keeps its halves apart: ``[a, 0.., b, 0..]``, so
nothing is moved at run time. :class:`ChannelPadded` runs the padded
backbone and keeps the real channels of each output.
"""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn as nn

from mmghost.models.layers import GhostModule

__all__ = ['ChannelPadded', 'pad_channels']


class _Layout:
    """Real channel ``j`` sits at ``positions[j]`` of ``width`` channels."""

    def __init__(self, positions: torch.Tensor, width: int):
        self.positions = positions
        self.width = width

    @classmethod
    def plain(cls, channels: int, multiple: int) -> '_Layout':
        return cls(torch.arange(channels), _round_up(channels, multiple))

    def __eq__(self, other) -> bool:
        return (self.width == other.width
                and torch.equal(self.positions, other.positions))

    def is_prefix(self) -> bool:
        """True when the real channels come first, in order."""
        return torch.equal(self.positions, torch.arange(len(self.positions)))


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _padded_conv(conv: nn.Conv2d, out: _Layout,
                 inp: Optional[_Layout]) -> nn.Conv2d:
    """``conv`` with zero rows/columns where ``out``/``inp`` have padding.

    ``inp=None`` keeps the input channels (the stem's image). A depthwise
    ``conv`` (GhostNet's grouped convs all are) keeps one kernel per
    channel: ``out`` is then its input's layout too.
    """
    depthwise = conv.groups > 1
    in_channels = (out.width if depthwise else
                   inp.width if inp is not None else conv.in_channels)
    padded = nn.Conv2d(
        in_channels,
        out.width,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        groups=out.width if depthwise else 1,
        bias=True).to(conv.weight)
    rows = out.positions
    with torch.no_grad():
        padded.weight.zero_()
        padded.bias.zero_()
        if depthwise or inp is None:
            padded.weight[rows] = conv.weight
        else:
            padded.weight[rows[:, None], inp.positions[None, :]] = conv.weight
        if conv.bias is not None:
            padded.bias[rows] = conv.bias
    return padded


def _halves(module: GhostModule, multiple: int) -> Tuple[_Layout, _Layout]:
    """A padded Ghost module's half layout and output ``[a, 0.., b, 0..]``."""
    half = _Layout.plain(module.primary_conv[0].out_channels, multiple)
    positions = torch.cat([half.positions, half.width + half.positions])
    return half, _Layout(positions[:module.out_channels], 2 * half.width)


def _pad_ghost_module(module: GhostModule, inp: _Layout,
                      multiple: int) -> _Layout:
    """Pad both halves of a deployed Ghost module; its output layout.

    GhostNet's Ghost modules have ratio 2: the cheap operation maps each
    intrinsic channel to one ghost channel.
    """
    half, out = _halves(module, multiple)
    module.primary_conv[0] = _padded_conv(module.primary_conv[0], half, inp)
    module.cheap_operation[0] = _padded_conv(module.cheap_operation[0], half,
                                             half)
    # the padded module concatenates both padded halves and slices nothing
    module.out_channels = out.width
    return out


def _pad_bottleneck(block: nn.Module, inp: _Layout, multiple: int) -> _Layout:
    mid = _pad_ghost_module(block.ghost1, inp, multiple)
    if block.conv_dw is not None:
        block.conv_dw = _padded_conv(block.conv_dw, mid, mid)
    if block.se is not None:
        reduced = _Layout.plain(block.se.conv_reduce.out_channels, multiple)
        block.se.conv_reduce = _padded_conv(block.se.conv_reduce, reduced,
                                            mid)
        block.se.conv_expand = _padded_conv(block.se.conv_expand, mid,
                                            reduced)
    out = _pad_ghost_module(block.ghost2, mid, multiple)
    if len(block.shortcut):
        block.shortcut[0] = _padded_conv(block.shortcut[0], inp, inp)
        block.shortcut[2] = _padded_conv(block.shortcut[2], out, inp)
    elif not out == inp:
        raise NotImplementedError(
            'identity shortcut between different channel layouts')
    return out


def _is_bottleneck(block: nn.Module) -> bool:
    # the alternative: the final 1x1 ConvBnAct
    return hasattr(block, 'ghost1')


class ChannelPadded(nn.Module):
    """A channel-padded backbone, returning only the real channels.

    Args:
        backbone (GhostNet): The padded backbone.
        taps (list): Per output of ``backbone``, where its real channels
            are: a count (they lead, in order) or their positions.
    """

    def __init__(self, backbone: nn.Module,
                 taps: List[Union[int, torch.Tensor]]):
        super().__init__()
        self.backbone = backbone
        self.taps = taps

    @property
    def out_channels(self) -> Tuple[int, ...]:
        return self.backbone.out_channels

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for out, tap in zip(self.backbone(x), self.taps):
            if isinstance(tap, int):
                outs.append(out[:, :tap])
            else:
                outs.append(out.index_select(1, tap.to(out.device)))
        return tuple(outs)


def pad_channels(backbone: nn.Module, multiple: int = 8) -> ChannelPadded:
    """Pad a GhostNet's every intermediate width to a multiple, in place.

    The backbone is switched to deploy mode first (norms must be folded
    for the zero channels to stay zero). The returned module's outputs
    equal the unpadded network's; what changes is the module structure, so
    the padded model's state dict no longer matches the release or a deploy
    checkpoint: pad after loading, for inference and export only
    (``detector.backbone = pad_channels(detector.backbone)``).

    Args:
        backbone (GhostNet): The network, changed in place.
        multiple (int): Channel block of the target runtime: 8 for AVX2,
            16 for AVX-512. Default: 8.

    Returns:
        ChannelPadded: ``backbone``, keeping the real channels of its
        outputs.
    """
    if isinstance(multiple, bool) or not isinstance(multiple,
                                                    int) or multiple < 1:
        raise ValueError('multiple must be an int >= 1, but got '
                         f'multiple={multiple!r}')
    if isinstance(backbone, ChannelPadded):
        raise RuntimeError('the backbone is already channel-padded')
    blocks = [block for stage in backbone.blocks for block in stage
              if _is_bottleneck(block)]
    for block in blocks:  # before anything changes
        if type(block.ghost1) is not GhostModule:
            raise NotImplementedError(
                f'{type(backbone).__name__}: its bottlenecks expand with '
                f'{type(block.ghost1).__name__}; channel padding covers '
                'GhostNet (v1) only')
    backbone.switch_to_deploy()
    # The stem feeds the first block's identity shortcut, if it has one:
    # then it must produce that block's output layout.
    first = blocks[0]
    stem = _Layout.plain(backbone.conv_stem.out_channels, multiple)
    if not len(first.shortcut):
        stem = _halves(first.ghost2, multiple)[1]
    backbone.conv_stem = _padded_conv(backbone.conv_stem, stem, None)

    layout, taps = stem, []
    for stage in range(len(backbone.stage_ends)):
        for i in backbone.stage_blocks(stage):
            for block in backbone.blocks[i]:
                if _is_bottleneck(block):
                    layout = _pad_bottleneck(block, layout, multiple)
                else:  # the final 1x1 ConvBnAct
                    out = _Layout.plain(block.conv.out_channels, multiple)
                    block.conv = _padded_conv(block.conv, out, layout)
                    layout = out
        # an output: its real channels, by a slice where they lead
        if stage in backbone.out_indices:
            taps.append(
                len(layout.positions)
                if layout.is_prefix() else layout.positions)
    return ChannelPadded(backbone, taps)
