# The Faster R-CNN demo (faster-rcnn_ghostnet_fpn_demo.py) with GhostConv in
# the FPN: `python tools/demo.py --config` this file.
_base_ = './faster-rcnn_ghostnet_fpn_demo.py'

model = dict(neck=dict(conv_cfg=dict(type='GhostConv')))
