# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""ONNX export: tools/deployment/export_onnx.py on a trained demo RetinaNet,
the backbone alone, and Faster R-CNN up to its RPN; onnxruntime against
PyTorch on the shipped images at sizes and batches the export never saw."""
import importlib.util
import math
import re
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from mmghost.checkpoint import build_model
from mmghost.deployment import (BackboneForOnnx, GroupedOutputs, check_inputs,
                                check_onnx, export_onnx, preprocess_images,
                                wrap_for_onnx)
from mmghost.utils import list_images
from tests.test_deployment.demo_checkpoint import (DEMO_IMAGES,
                                                   RETINANET_DEMO, run_tool,
                                                   trained_checkpoint)
from tests.utils import build_detector, tiny_coco_batch

# the optional extra (pip install -e .[onnx]); `make test` installs it
ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')
onnx = pytest.importorskip('onnx')

FASTER_RCNN_DEMO = 'configs/faster-rcnn_ghostnet_fpn_demo.py'
TOL = 1e-4


def rel_error(got, expected: torch.Tensor) -> float:
    expected = expected.numpy()
    assert got.shape == expected.shape
    return float(abs(got - expected).max() / abs(expected).max())


def graph_dims(value_info):
    return [d.dim_param or d.dim_value
            for d in value_info.type.tensor_type.shape.dim]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return trained_checkpoint(tmp_path_factory)


@pytest.fixture(scope='module')
def images():
    return list_images(DEMO_IMAGES)


@pytest.fixture(scope='module')
def retinanet_onnx(checkpoint, tmp_path_factory):
    """The user's command: export the trained demo RetinaNet and check it."""
    out = tmp_path_factory.mktemp('onnx') / 'retinanet.onnx'
    proc = run_tool('tools/deployment/export_onnx.py', RETINANET_DEMO,
                    checkpoint, '--out', out, '--images', DEMO_IMAGES,
                    '--shape', 320, 320)
    return str(out), proc.stdout


def test_export_tool_checks_every_retinanet_output(retinanet_onnx):
    _, stdout = retinanet_onnx
    cfg = Config.fromfile(RETINANET_DEMO)
    levels = len(cfg.model.bbox_head.anchor_generator.strides)
    rows = re.findall(r'^  (\w+_\d+)  +\([\d, ]+\)  +(\S+)$', stdout, re.M)
    assert [name for name, _ in rows] == (
        [f'cls_score_{lvl}' for lvl in range(levels)] +
        [f'bbox_pred_{lvl}' for lvl in range(levels)]), stdout
    assert all(float(err) <= TOL for _, err in rows), stdout
    assert re.search(r'^max relative error \S+ <= 1e-04: OK$', stdout, re.M)
    # the check ran other batch sizes and image sizes than the export's
    checked = re.findall(r'^  \d images?, .+ \((\d+), 3, (\d+), (\d+)\)$',
                         stdout, re.M)
    assert len(checked) == 3, stdout
    export, others = checked[0], checked[1:]
    assert export == ('2', '320', '320')
    assert {b for b, _, _ in others} - {'2'}
    assert {h for _, h, _ in others} - {'320'}
    assert {w for _, _, w in others} - {'320'}


def test_retinanet_onnx_runs_any_batch_and_size(retinanet_onnx, checkpoint):
    """onnxruntime on a real image at a batch and size the export never saw,
    against the PyTorch detector's own backbone, neck and head."""
    out, _ = retinanet_onnx
    graph = onnx.load(out).graph
    assert [i.name for i in graph.input] == ['inputs']
    assert graph_dims(graph.input[0]) == ['batch', 3, 'height', 'width']

    detector = build_model(RETINANET_DEMO, checkpoint)
    # a shipped image through the COCO config's own pipeline (the demo's
    # repeats its dataset), at 192 x 256 once padded
    batch = tiny_coco_batch(
        Config.fromfile('configs/retinanet_ghostnet_fpn.py'),
        num_images=1,
        scale=(288, 192))
    with torch.no_grad():
        inputs = detector.data_preprocessor(batch, False)['inputs']
        cls_scores, bbox_preds = detector.bbox_head(
            detector.extract_feat(inputs))
    n, _, height, width = inputs.shape
    assert n == 1 and (height, width) != (320, 320)

    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {'inputs': inputs.numpy()})))
    head = detector.bbox_head
    strides = head.prior_generator.strides
    assert len(names) == 2 * len(strides)
    for lvl, (stride_w, stride_h) in enumerate(strides):
        size = (math.ceil(height / stride_h), math.ceil(width / stride_w))
        cls_score, bbox_pred = got[f'cls_score_{lvl}'], got[f'bbox_pred_{lvl}']
        assert cls_score.shape == (
            1, head.num_base_priors * head.cls_out_channels, *size)
        assert bbox_pred.shape == (1, head.num_base_priors * 4, *size)
        assert rel_error(cls_score, cls_scores[lvl]) <= TOL
        assert rel_error(bbox_pred, bbox_preds[lvl]) <= TOL


def test_check_catches_a_model_that_differs(retinanet_onnx, checkpoint,
                                            images):
    """The check is not vacuous: change one PyTorch weight after export and
    exactly the outputs it feeds fail."""
    out, _ = retinanet_onnx
    detector = build_model(RETINANET_DEMO, checkpoint)
    module = wrap_for_onnx(detector)
    batch = preprocess_images(detector, images[:2], (160, 160))
    inputs = [('2 images', batch)]
    assert check_onnx(out, module, inputs).ok

    with torch.no_grad():
        detector.bbox_head.retina_cls.bias += 0.5
    result = check_onnx(out, module, inputs)
    assert not result.ok
    assert 'FAILED' in result.table()
    levels = len(detector.bbox_head.prior_generator.strides)
    for lvl in range(levels):
        assert result.errors[f'cls_score_{lvl}'] > TOL
        assert result.errors[f'bbox_pred_{lvl}'] <= TOL


def test_backbone_alone(checkpoint, images, tmp_path):
    detector = build_model(RETINANET_DEMO, checkpoint)
    backbone = detector.backbone
    module = wrap_for_onnx(detector, part='backbone')
    inputs = check_inputs(detector, images, (256, 256))
    out = str(tmp_path / 'backbone.onnx')

    names = export_onnx(module, inputs[0][1], out)
    assert names == [f'feat_{i}' for i in range(len(backbone.out_indices))]
    assert graph_dims(onnx.load(out).graph.input[0]) == [
        'batch', 3, 'height', 'width'
    ]
    result = check_onnx(out, module, inputs)
    assert result.ok, result.table()
    assert list(result.errors) == names

    # channels and strides as the backbone declares them, on the input the
    # export did not see
    label, batch = inputs[-1]
    n, _, height, width = batch.shape
    assert batch.shape[-2:] != inputs[0][1].shape[-2:], label
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    feats = session.run(None, {'inputs': batch.numpy()})
    assert [f.shape for f in feats] == [
        (n, c, math.ceil(height / s), math.ceil(width / s))
        for c, s in zip(backbone.out_channels, backbone.out_strides)
    ]


def test_channel_padded_export_equals_the_unpadded_detector(
        checkpoint, images, tmp_path):
    """--pad-channels: checked by the tool against the padded model, and
    here against the detector as trained (not padded, not deployed)."""
    out = tmp_path / 'padded.onnx'
    proc = run_tool('tools/deployment/export_onnx.py', RETINANET_DEMO,
                    checkpoint, '--out', out, '--images', DEMO_IMAGES,
                    '--shape', 256, 256, '--pad-channels', 8)
    assert re.search(r'^max relative error \S+ <= 1e-04: OK$', proc.stdout,
                     re.M), proc.stdout

    detector = build_model(RETINANET_DEMO, checkpoint)
    result = check_onnx(
        str(out), wrap_for_onnx(detector),
        check_inputs(detector, images, (256, 256)))
    assert result.ok, result.table()
    # the file holds the padded backbone: its conv weights are wider
    weights = {
        t.name: list(t.dims)
        for t in onnx.load(str(out)).graph.initializer
    }
    backbone_convs = [
        dims for name, dims in weights.items()
        if 'backbone' in name and len(dims) == 4]
    assert backbone_convs and all(dims[0] % 8 == 0 for dims in backbone_convs)
    assert any(m.out_channels % 8 for m in detector.backbone.modules()
               if isinstance(m, torch.nn.Conv2d))


def test_a_bad_pad_channels_is_named(checkpoint, tmp_path):
    out = tmp_path / 'x.onnx'
    proc = run_tool('tools/deployment/export_onnx.py', RETINANET_DEMO,
                    checkpoint, '--out', out, '--images', DEMO_IMAGES,
                    '--pad-channels', 0, check=False)
    assert proc.returncode != 0
    assert '--pad-channels 0: multiple must be an int >= 1' in proc.stderr
    assert not out.exists()


def test_pad_channels_refuses_other_backbones():
    spec = importlib.util.spec_from_file_location(
        'export_onnx', 'tools/deployment/export_onnx.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    from mmdet.registry import MODELS
    detector = SimpleNamespace(backbone=MODELS.build(dict(type='MobileNetV2')))
    with pytest.raises(SystemExit, match='--pad-channels 8: the backbone is '
                       'a MobileNetV2; only GhostNet'):
        tool.pad_backbone(detector, 8)


def test_a_checkpoint_of_another_model_is_refused(checkpoint):
    """The demo's 128-channel head in the 256-channel COCO RetinaNet: a
    partial load would be exported and pass the check against itself."""
    with pytest.raises(ValueError,
                       match=r'(?s)does not fit the model of .*retinanet_'
                       r'ghostnet_fpn\.py: .*size mismatch for bbox_head'):
        build_model('configs/retinanet_ghostnet_fpn.py', checkpoint)


class _FixesHeight(GroupedOutputs):
    """Turns the height into a Python int, as a careless reshape does."""

    def groups(self, inputs):
        height = int(inputs.shape[2])
        flat = inputs.reshape(inputs.shape[0], 3, height * inputs.shape[3])
        return [('flat', [flat])]


def test_export_refuses_a_fixed_axis(tmp_path):
    """torch writes the traced size into the file where the network makes
    an axis a Python int; export_onnx must not pass that off as dynamic."""
    with pytest.raises(RuntimeError, match=r'the export fixed height=64 '):
        export_onnx(_FixesHeight(), torch.randn(2, 3, 64, 64),
                    str(tmp_path / 'fixed.onnx'))


def test_faster_rcnn_export_stops_at_the_rpn(images, tmp_path):
    """A freshly initialised Faster R-CNN from the demo config (the graph,
    not the weights, is under test): features and RPN raw outputs only."""
    fresh = build_detector(Config.fromfile(FASTER_RCNN_DEMO))
    checkpoint = str(tmp_path / 'faster_rcnn.pth')
    torch.save({'state_dict': fresh.state_dict(), 'meta': {}}, checkpoint)
    detector = build_model(FASTER_RCNN_DEMO, checkpoint)
    module = wrap_for_onnx(detector)
    assert 'stops before proposal decoding, NMS and RoIAlign' in (
        module.description)
    inputs = check_inputs(detector, images, (256, 256))
    out = str(tmp_path / 'faster_rcnn.onnx')

    names = export_onnx(module, inputs[0][1], out)
    levels = range(len(detector.rpn_head.prior_generator.strides))
    assert names == ([f'feat_{lvl}' for lvl in levels] +
                     [f'rpn_cls_score_{lvl}' for lvl in levels] +
                     [f'rpn_bbox_pred_{lvl}' for lvl in levels])
    ops = {node.op_type for node in onnx.load(out).graph.node}
    assert not ops & {'NonMaxSuppression', 'RoiAlign', 'TopK'}, ops
    result = check_onnx(out, module, inputs)
    assert result.ok, result.table()
    rpn = detector.rpn_head
    for lvl in levels:
        assert result.shapes[f'rpn_cls_score_{lvl}'][1] == (
            rpn.num_base_priors * rpn.cls_out_channels)
        assert result.shapes[f'rpn_bbox_pred_{lvl}'][1] == (
            rpn.num_base_priors * 4)
        assert result.shapes[f'feat_{lvl}'][1] == (
            detector.neck.out_channels)


def test_ghostnetv2_backbone_export(tmp_path):
    """GhostNetV2's DFC attention (pooling, then nearest upsampling back to
    the map's size) exports with dynamic height and width and matches
    PyTorch at sizes the export never saw, odd ones included. Stages 0-2
    (DFC from blocks.2 on) keep the export to seconds."""
    from mmdet.registry import MODELS
    torch.manual_seed(0)
    backbone = MODELS.build(dict(type='GhostNetV2', out_indices=(1, 2)))
    assert any(hasattr(m, 'short_conv') for m in backbone.blocks[2].modules())
    backbone.eval()
    for m in backbone.modules():  # non-trivial statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    module = BackboneForOnnx(backbone).eval()
    out = str(tmp_path / 'ghostnetv2.onnx')
    names = export_onnx(module, torch.randn(2, 3, 64, 64), out)
    assert names == [f'feat_{i}' for i in range(len(backbone.out_indices))]
    inputs = [('1 image, 96x128', torch.randn(1, 3, 96, 128)),
              ('3 images, 65x97', torch.randn(3, 3, 65, 97))]
    result = check_onnx(out, module, inputs)
    assert result.ok, result.table()
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    feats = session.run(None, {'inputs': inputs[1][1].numpy()})
    assert [f.shape for f in feats] == [
        (3, c, math.ceil(65 / s), math.ceil(97 / s))
        for c, s in zip(backbone.out_channels, backbone.out_strides)
    ]
