# retinanet_ghostnet_fpn.py with Ghost modules in the neck and head too:
# conv_cfg=dict(type='GhostConv') turns every k>1 convolution built through
# ConvModule into a Ghost module (primary conv with the original kernel and
# stride to half the channels + depthwise 3x3 cheap operation): the FPN's
# 3x3 output and extra convs and the head's stacked convs. The 1x1 laterals
# and the plain retina_cls/retina_reg convs stay dense.
_base_ = './retinanet_ghostnet_fpn.py'

model = dict(
    neck=dict(conv_cfg=dict(type='GhostConv')),
    bbox_head=dict(conv_cfg=dict(type='GhostConv')))
