# The demo (retinanet_ghostnet_fpn_demo.py) with GhostConv in the FPN and
# the head: `python tools/demo.py --config` this file.
_base_ = './retinanet_ghostnet_fpn_demo.py'

model = dict(
    neck=dict(conv_cfg=dict(type='GhostConv')),
    bbox_head=dict(conv_cfg=dict(type='GhostConv')))
