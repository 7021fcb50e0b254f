# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""conv_cfg=dict(type='GhostConv') through mmcv's ConvModule."""
import math

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


@pytest.mark.parametrize('out, stride, dilation, bias', [(16, 1, 1, True),
                                                         (15, 2, 1, False),
                                                         (12, 1, 2, True)])
def test_equals_a_hand_built_primary_and_cheap_pair(out, stride, dilation,
                                                    bias):
    """The paper's Ghost module: a primary conv to ceil(out/2) channels,
    a depthwise 3x3 on its output, both concatenated and cut to out."""
    torch.manual_seed(0)
    cin, k = 8, 3
    half = math.ceil(out / 2)
    primary = nn.Conv2d(cin, half, k, stride, padding=dilation,
                        dilation=dilation, bias=bias)
    cheap = nn.Conv2d(half, half, 3, 1, 1, groups=half, bias=bias)
    ghost = build_conv_layer(
        dict(type='GhostConv'), cin, out, k, stride=stride, padding=dilation,
        dilation=dilation, bias=bias)
    # strict: these two convs are all the parameters there are
    weights = {'primary_conv.0.weight': primary.weight,
               'cheap_operation.0.weight': cheap.weight}
    if bias:
        weights.update({'primary_conv.0.bias': primary.bias,
                        'cheap_operation.0.bias': cheap.bias})
    ghost.load_state_dict(weights)
    x = torch.randn(2, cin, 19, 23)
    with torch.no_grad():
        y = primary(x)
        expected = torch.cat([y, cheap(y)], dim=1)[:, :out]
        torch.testing.assert_close(ghost(x), expected)


GHOSTCONV_CONFIGS = ['configs/retinanet_ghostnet_fpn_ghostconv.py',
                     'configs/faster-rcnn_ghostnet_fpn_ghostconv.py']


@pytest.mark.parametrize('config', GHOSTCONV_CONFIGS)
def test_placement_follows_the_config(config):
    """Where a config part sets conv_cfg=dict(type='GhostConv'), each of its
    k>1 ConvModule convs is a GhostConv2d and each 1x1 stays dense; the
    parts that do not set it hold no GhostConv2d."""
    from mmengine.config import Config

    from tests.utils import build_detector
    cfg = Config.fromfile(config)
    model = build_detector(cfg)
    parts = [name for name in ('neck', 'bbox_head', 'rpn_head', 'roi_head')
             if name in cfg.model]
    ghost_parts = [name for name in parts
                   if cfg.model[name].get('conv_cfg') == dict(
                       type='GhostConv')]
    assert 'neck' in ghost_parts
    for name in ['backbone'] + parts:
        part = getattr(model, name)
        convs = [m.conv for m in part.modules() if isinstance(m, ConvModule)]
        ghosts = [m for m in part.modules() if isinstance(m, GhostConv2d)]
        if name not in ghost_parts:
            assert not ghosts, name
            continue
        assert convs, name
        for conv in convs:
            assert isinstance(conv, GhostConv2d) == (
                conv.kernel_size != (1, 1)), (name, conv)
        assert len(ghosts) == sum(c.kernel_size != (1, 1) for c in convs)
    # the FPN's output convs, extra levels included, are Ghost modules
    assert all(isinstance(m.conv, GhostConv2d) for m in model.neck.fpn_convs)
    neck = cfg.model.neck
    levels = len(neck.in_channels) - neck.get('start_level', 0)
    assert len(model.neck.fpn_convs) == (
        neck.num_outs if neck.get('add_extra_convs') else levels)
    if 'bbox_head' in ghost_parts:  # RetinaNet's stacked convs
        head = model.bbox_head
        assert [type(m.conv) for m in (*head.cls_convs, *head.reg_convs)
                ] == [GhostConv2d] * (2 * cfg.model.bbox_head.stacked_convs)
