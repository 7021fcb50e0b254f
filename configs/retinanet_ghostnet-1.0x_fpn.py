# The 1.0x route: GhostNet 1.0x, for which ImageNet weights are published
# (Huawei's ghostnet_1x.pth; timm's ghostnet_100 has the same keys, as .pth
# or .safetensors). Same detector and schedule as retinanet_ghostnet_fpn.py.
_base_ = './retinanet_ghostnet_fpn.py'

pretrained = 'checkpoints/ghostnet_1x.pth'

model = dict(
    backbone=dict(
        widen_factor=1.0,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[24, 40, 112, 160]))
