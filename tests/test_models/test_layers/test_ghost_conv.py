# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""conv_cfg=dict(type='GhostConv') through mmcv's ConvModule."""
import pytest
import torch
import torch.nn as nn
from mmcv.cnn import ConvModule, build_conv_layer
from mmengine.registry import DefaultScope

import mmghost  # noqa: F401
from mmghost.models.layers import GhostConv2d


@pytest.mark.parametrize('scope', [None, 'mmdet', 'mmengine'])
def test_resolves_in_any_scope(scope):
    if scope is None:
        conv = build_conv_layer(dict(type='GhostConv'), 8, 16, 3, padding=1)
    else:
        with DefaultScope.overwrite_default_scope(scope):
            conv = build_conv_layer(
                dict(type='GhostConv'), 8, 16, 3, padding=1)
    assert isinstance(conv, GhostConv2d)


@pytest.mark.parametrize('k, stride, padding, dilation, out', [
    (3, 1, 1, 1, 16), (3, 2, 1, 1, 16), (5, 1, 2, 1, 12), (3, 1, 2, 2, 16),
    (3, 1, 1, 1, 15)])
def test_shapes_match_dense_conv(k, stride, padding, dilation, out):
    dense = nn.Conv2d(8, out, k, stride, padding, dilation)
    ghost = build_conv_layer(
        dict(type='GhostConv'), 8, out, k, stride=stride, padding=padding,
        dilation=dilation)
    x = torch.randn(2, 8, 17, 23)
    assert ghost(x).shape == dense(x).shape
    # the primary conv keeps kernel, stride, padding, dilation; half width
    primary = ghost.primary_conv[0]
    assert primary.kernel_size == (k, k) and primary.stride == (stride, ) * 2
    assert primary.out_channels == (out + 1) // 2
    assert ghost.cheap_operation[0].groups == primary.out_channels


def test_one_by_one_stays_dense():
    conv = build_conv_layer(dict(type='GhostConv'), 8, 16, 1)
    assert type(conv) is nn.Conv2d


def test_inside_conv_module():
    module = ConvModule(
        8, 16, 3, padding=1, conv_cfg=dict(type='GhostConv'),
        norm_cfg=dict(type='BN'), act_cfg=dict(type='ReLU'))
    assert isinstance(module.conv, GhostConv2d)
    # ConvModule's attribute export saw a conv-like layer
    assert (module.in_channels, module.out_channels) == (8, 16)
    assert module.kernel_size == (3, 3) and module.groups == 1
    # no bias before a norm, as for a dense conv
    assert module.conv.primary_conv[0].bias is None
    out = module(torch.randn(2, 8, 9, 9))
    out.sum().backward()
    assert all(p.grad is not None for p in module.parameters())


def test_groups_rejected():
    with pytest.raises(ValueError, match='groups must be 1, got groups=4'):
        build_conv_layer(dict(type='GhostConv'), 8, 16, 3, groups=4)
