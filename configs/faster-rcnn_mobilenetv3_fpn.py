# Baseline row of the paper's COCO table: Faster R-CNN with MobileNetV3 1.0x
# (large) and FPN, same detector, data and 1x schedule as
# faster-rcnn_ghostnet_fpn.py (paper: 26.9 mAP). The FPN reads the stage
# ends at strides 4, 8, 16 and 32, as for GhostNet.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    './_base_/tta.py',  # DetTTAModel + multi-scale flip
]

custom_imports = dict(imports=['mmghost'], allow_failed_imports=False)

# ImageNet weights of the backbone: torchvision's mobilenet_v3_large
# checkpoint as published (download.pytorch.org/models/
# mobilenet_v3_large-8738ca79.pth); its classifier is dropped on loading.
pretrained = 'checkpoints/mobilenet_v3_large-8738ca79.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV3',
        arch='large',
        widen_factor=1.0,
        out_indices=(1, 2, 3, 4),
        frozen_stages=-1,
        # eps and momentum of the released weights
        norm_cfg=dict(type='BN', eps=0.001, momentum=0.01,
                      requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    # the backbone's out_channels at 1.0x (strides 4, 8, 16, 32)
    neck=dict(in_channels=[24, 40, 112, 160]))
