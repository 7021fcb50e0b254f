# The Faster R-CNN twin of retinanet_ghostnet_fpn_demo.py: GhostNet 1.1x
# Faster R-CNN trained from scratch on CPU on the shipped COCO slice with the
# same data, scale and schedule, evaluated on the images it trained on.
_base_ = ['./faster-rcnn_ghostnet_fpn.py', './_base_/tiny_coco_demo.py']

model = dict(
    backbone=dict(init_cfg=None, norm_eval=False),
    neck=dict(out_channels=128),
    rpn_head=dict(in_channels=128, feat_channels=128),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=128),
        bbox_head=dict(
            in_channels=128, fc_out_channels=256,
            num_classes=1)),  # len(demo_classes)
    test_cfg=dict(rcnn=dict(score_thr=0.01)))

train_dataloader = {{_base_.demo_train_dataloader}}
val_dataloader = {{_base_.demo_val_dataloader}}
test_dataloader = val_dataloader
val_evaluator = {{_base_.demo_val_evaluator}}
test_evaluator = val_evaluator
train_cfg = {{_base_.demo_train_cfg}}
optim_wrapper = {{_base_.demo_optim_wrapper}}
param_scheduler = {{_base_.demo_param_scheduler}}
default_hooks = {{_base_.demo_default_hooks}}
log_processor = dict(window_size=5)
