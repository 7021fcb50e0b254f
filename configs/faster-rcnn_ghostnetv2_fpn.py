# Faster R-CNN with a GhostNetV2 1.0x backbone and FPN, 1x schedule on COCO
# 2017. GhostNetV2 (Tang et al., NeurIPS 2022) adds DFC attention to
# GhostNet; ImageNet weights are published for 1.0x (Huawei's
# ck_ghostnetv2_10.pth.tar; timm's ghostnetv2_100 has the same keys), so this
# is the width used here. Same detector and schedule as
# faster-rcnn_ghostnet_fpn.py.
_base_ = './faster-rcnn_ghostnet_fpn.py'

# ImageNet weights of the backbone: ck_ghostnetv2_10.pth.tar (or timm's
# ghostnetv2_100.in1k), saved under this name.
pretrained = 'checkpoints/ghostnetv2_1.0x.pth'

model = dict(
    backbone=dict(
        type='GhostNetV2',
        widen_factor=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    # the backbone's out_channels at 1.0x (strides 4, 8, 16, 32)
    neck=dict(in_channels=[24, 40, 112, 160]))
