# Baseline row of the paper's COCO table: Faster R-CNN with MMDetection's
# MobileNetV2 1.0x and FPN, same 1x schedule as faster-rcnn_ghostnet_fpn.py
# (paper: 27.5 mAP). ImageNet weights: MMDetection's published MobileNetV2.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    './_base_/tta.py',  # DetTTAModel + multi-scale flip
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        widen_factor=1.0,
        out_indices=(1, 2, 4, 7),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
    # MobileNetV2 1.0x out_indices (1, 2, 4, 7): strides 4, 8, 16, 32
    neck=dict(in_channels=[24, 32, 96, 1280]))
