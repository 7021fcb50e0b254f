# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Model complexity in the paper's convention and in mmengine's.

The GhostNet paper counts FLOPs as the multiply-adds of convolutions and
fully connected layers. mmengine's ``FlopAnalyzer`` counts those too
(``by_operator()['conv']``, ``['linear']``/``['addmm']``/``['matmul']``) and
its ``total()`` adds batch-norm, pooling, upsampling and the like. Both are
reported; paper figures are compared with the first.
"""
from typing import Dict, Optional

import torch
import torch.nn as nn
from mmdet.models.utils import make_divisible
from mmengine.analysis import FlopAnalyzer

__all__ = [
    'complexity', 'ImageNetClassifier', 'TensorMode', 'PAPER_OPS',
    'CLASSIFIER_HEADS'
]

# FlopAnalyzer operator names that make up the paper's count.
PAPER_OPS = ('conv', 'linear', 'addmm', 'matmul', 'bmm', 'einsum')


def complexity(model: nn.Module, inputs) -> Dict[str, float]:
    """``conv_linear`` and ``total`` multiply-adds and ``params`` (counts).

    ``inputs`` is what ``model`` is called with (a tensor or a tuple).
    """
    was_training = model.training
    model.eval()
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    by_op = analyzer.by_operator()
    result = dict(
        conv_linear=float(sum(by_op.get(op, 0) for op in PAPER_OPS)),
        total=float(analyzer.total()),
        params=float(sum(p.numel() for p in model.parameters())))
    model.train(was_training)
    return result


# The classifier each backbone was released with, by registered type (see
# ImageNetClassifier's ``head``).
CLASSIFIER_HEADS = dict(
    GhostNet='conv', GhostNetV2='conv', MobileNetV2='fc',
    MobileNetV3='linear')


class ImageNetClassifier(nn.Module):
    """A backbone's last feature map plus the classifier it was released
    with, to count whole classification networks as the paper's table does.

    After global average pooling, ``head`` is

    - ``'conv'`` (GhostNet/GhostNetV2): 1x1 ``conv_head`` to 1280, ReLU, FC
      to 1000;
    - ``'fc'`` (mmdet's MobileNetV2, whose last stage already is the 1x1
      conv to 1280): FC to 1000;
    - ``'linear'`` (torchvision's MobileNetV3): FC to 1280 (scaled by the
      backbone's ``widen_factor`` with divisor 8, as torchvision's
      ``last_channel``), hard-swish, dropout, FC to 1000;
    - None: the backbone's entry in ``CLASSIFIER_HEADS``; for others,
      ``'fc'`` if ``channels == head_channels``, else ``'conv'``.
    """

    def __init__(self, backbone: nn.Module, channels: int,
                 head_channels: int = 1280, num_classes: int = 1000,
                 head: Optional[str] = None):
        super().__init__()
        self.backbone = backbone
        if head is None:
            head = CLASSIFIER_HEADS.get(
                type(backbone).__name__,
                'fc' if channels == head_channels else 'conv')
        if head not in ('conv', 'fc', 'linear'):
            raise ValueError("head must be 'conv', 'fc', 'linear' or None, "
                             f'but got head={head!r}')
        if head == 'conv':
            self.conv_head = nn.Sequential(
                nn.Conv2d(channels, head_channels, 1), nn.ReLU(inplace=True))
        else:
            self.conv_head = nn.Identity()
        if head == 'linear':
            hidden = make_divisible(
                head_channels * getattr(backbone, 'widen_factor', 1.0), 8)
            self.classifier = nn.Sequential(
                nn.Linear(channels, hidden), nn.Hardswish(inplace=True),
                nn.Dropout(p=0.2, inplace=True),
                nn.Linear(hidden, num_classes))
        else:
            self.classifier = nn.Linear(
                channels if head == 'fc' else head_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.backbone(x)[-1]
        x = self.conv_head(x.mean((2, 3), keepdim=True))
        return self.classifier(x.flatten(1))


class TensorMode(nn.Module):
    """A detector's ``tensor``-mode forward on images of one size.

    Two-stage detectors need image metas even in tensor mode (their RPN
    proposes boxes); this supplies them, so counting and timing a detector
    needs no dataset.
    """

    def __init__(self, detector: nn.Module, shape):
        super().__init__()
        from mmdet.structures import DetDataSample
        h, w = shape
        self.detector = detector
        self.samples = [
            DetDataSample(
                metainfo=dict(
                    img_shape=(h, w),
                    ori_shape=(h, w),
                    pad_shape=(h, w),
                    batch_input_shape=(h, w),
                    scale_factor=(1.0, 1.0)))
        ]

    def forward(self, x: torch.Tensor):
        return self.detector(x, self.samples * x.shape[0], mode='tensor')
