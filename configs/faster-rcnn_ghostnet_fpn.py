# Faster R-CNN with a GhostNet 1.1x backbone and FPN, 1x schedule on COCO
# 2017: the paper's detection setup (Han et al., CVPR 2020, Table 8:
# 26.9 mAP). Everything but the backbone is MMDetection's own
# Faster-RCNN-R50-FPN 1x: SGD lr 0.02 for 16 images per batch, linear
# warm-up, steps at epochs 8 and 11, 1333x800, CocoMetric bbox. On fewer GPUs
# pass --auto-scale-lr to keep the learning rate right.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    './_base_/tta.py',  # DetTTAModel + multi-scale flip
]

custom_imports = dict(imports=['mmghost'], allow_failed_imports=False)

# ImageNet weights of the backbone. No public GhostNet 1.1x checkpoint
# exists: put yours here, or use faster-rcnn_ghostnet-1.0x_fpn.py with the
# published 1.0x weights (see README).
pretrained = 'checkpoints/ghostnet_1.1x_imagenet.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='GhostNet',
        widen_factor=1.1,
        # the paper's FPN taps: the last block of each stride 4/8/16/32
        # (stage 5, the 1x1 conv to 1056 made for the classifier, is not
        # run)
        out_indices=(1, 2, 3, 4),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    # the backbone's out_channels at 1.1x (strides 4, 8, 16, 32)
    neck=dict(in_channels=[28, 44, 124, 176]))
