# faster-rcnn_ghostnet_fpn.py with Ghost modules in the FPN: its 3x3 output
# convs become Ghost modules through conv_cfg=dict(type='GhostConv'); the 1x1
# laterals stay dense. The RPN head takes no conv_cfg (mmdet's RPNHead builds
# a plain conv) and the RoI head's shared FCs have no k>1 conv, so they are
# unchanged.
_base_ = './faster-rcnn_ghostnet_fpn.py'

model = dict(neck=dict(conv_cfg=dict(type='GhostConv')))
