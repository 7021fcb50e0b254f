# The demo (`make demo`): GhostNet 1.1x RetinaNet trained from scratch on CPU
# on the shipped COCO slice (data/tiny-coco), evaluated with COCO mAP on the
# same images. No ImageNet weights can be downloaded here, so the backbone
# starts from its default init, and the neck and head are slimmed to 128
# channels to fit CPU minutes; it is a memorisation check that proves the
# pipeline learns, places boxes and scores them, not a COCO result.
_base_ = ['./retinanet_ghostnet_fpn.py', './_base_/tiny_coco_demo.py']

model = dict(
    backbone=dict(init_cfg=None, norm_eval=False),
    neck=dict(out_channels=128),
    bbox_head=dict(
        num_classes=1,  # len(demo_classes)
        in_channels=128,
        feat_channels=128,
        stacked_convs=2),
    test_cfg=dict(score_thr=0.01))

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
