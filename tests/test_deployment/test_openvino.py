# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""OpenVINO: tools/deployment/export_openvino.py on the trained demo
RetinaNet (FP32 and NNCF INT8), the parity check failing on a corrupted IR
and on non-finite outputs, and tools/infer.py --runtime openvino against
the PyTorch path on the shipped images."""
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmghost.checkpoint import build_model
from mmghost.deployment import GroupedOutputs, check_inputs, wrap_for_onnx
from mmghost.utils import list_images
from tests.test_deployment.demo_checkpoint import (DEMO_IMAGES,
                                                   RETINANET_DEMO, run_tool,
                                                   trained_checkpoint)
from tests.utils import DATA_ROOT

# the optional extra (pip install -e .[openvino]); `make setup` installs it
ov = pytest.importorskip(
    'openvino', reason='openvino is not installed: pip install -e '
    '".[openvino]"')
pytest.importorskip(
    'nncf', reason='nncf is not installed: pip install -e ".[openvino]"')

from mmghost.deployment.openvino import (  # noqa: E402
    calibration_images, check_openvino, compile_ir, convert_to_openvino,
    kept_fp32)
from mmghost.deployment.parity import ParityError  # noqa: E402

SHAPE = (128, 128)
TOL = 1e-4
ROW = re.compile(r'^  (\w+_\d+)  +\([\d, ]+\)  +(\S+)$', re.M)
# compares trained floats: `make test-kernels` runs it on every kernel path
pytestmark = pytest.mark.trains


class _Upsample(GroupedOutputs):
    """The FPN's top-down step: a conv's map upsampled (nearest) to the size
    of the map before it, and added."""

    def __init__(self):
        super().__init__()
        self.lateral = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.down = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)

    def groups(self, inputs):
        lateral = self.lateral(inputs)
        top = F.interpolate(self.down(lateral), size=lateral.shape[2:])
        return [('up', [lateral + top])]


@pytest.fixture(scope='module', autouse=True)
def openvino_runs_an_fpn():
    """With oneDNN capped at SSE4.1 (``ONEDNN_MAX_CPU_ISA=SSE41``) OpenVINO
    2026.4's CPU plugin cannot run an FPN: a nearest Interpolate after a
    convolution fails ('bad combination') with 2+ threads and gives empty
    outputs with 1. That is the runtime's limit, not the export's: where an
    FPN step does not run right these tests skip, saying why."""
    module = _Upsample().eval()
    x = torch.randn(2, 3, 32, 32)
    inputs = [('probe', x), ('probe, other size', torch.randn(1, 3, 48, 40))]
    try:
        result = check_openvino(
            compile_ir(convert_to_openvino(module, x)), module, inputs)
        problem = None if result.ok else result.failures()[0]
    except (RuntimeError, ParityError) as e:
        problem = str(e).strip().splitlines()[-1]
    if problem:
        pytest.skip('OpenVINO does not run an FPN upsampling step (a '
                    'nearest Interpolate after a conv) on this CPU kernel '
                    'path (ONEDNN_MAX_CPU_ISA='
                    f"{os.environ.get('ONEDNN_MAX_CPU_ISA', 'native')}, "
                    f'{torch.get_num_threads()} threads): {problem}')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return trained_checkpoint(tmp_path_factory)


@pytest.fixture(scope='module')
def images():
    return list_images(DEMO_IMAGES)


@pytest.fixture(scope='module')
def fp32_export(checkpoint, tmp_path_factory):
    """The user's command: convert the trained demo RetinaNet, FP32."""
    out_dir = tmp_path_factory.mktemp('openvino_fp32')
    proc = run_tool('tools/deployment/export_openvino.py', RETINANET_DEMO,
                    checkpoint, '--out-dir', out_dir, '--images',
                    DEMO_IMAGES, '--shape', *SHAPE)
    return out_dir, proc.stdout


@pytest.fixture(scope='module')
def detector(checkpoint):
    return build_model(RETINANET_DEMO, checkpoint)


def ir_constants(xml_file):
    """``{layer name: (element type, offset, size)}`` of the IR's weights."""
    root = ET.parse(xml_file).getroot()
    return {
        layer.get('name'): (data.get('element_type'), int(data.get('offset')),
                            int(data.get('size')))
        for layer in root.iter('layer') if layer.get('type') == 'Const'
        for data in layer.iter('data') if data.get('offset') is not None
    }


def test_fp32_export_passes_the_check_on_every_output(fp32_export,
                                                      detector):
    out_dir, stdout = fp32_export
    levels = len(detector.bbox_head.prior_generator.strides)
    rows = ROW.findall(stdout)
    assert [name for name, _ in rows] == (
        [f'cls_score_{lvl}' for lvl in range(levels)] +
        [f'bbox_pred_{lvl}' for lvl in range(levels)]), stdout
    assert all(float(err) <= TOL for _, err in rows), stdout
    assert re.search(r'^max relative error \S+ <= 1e-04: OK$', stdout, re.M)
    # checked at batch sizes and image sizes the trace did not see
    checked = re.findall(r'^  \d images?, .+ \((\d+), 3, (\d+), (\d+)\)$',
                         stdout, re.M)
    assert len(checked) == 3 and len(set(checked)) == 3, stdout

    meta = json.loads((out_dir / 'export.json').read_text())
    assert meta['precision'] == 'fp32'
    assert meta['check']['ok'] and meta['check']['judged']
    assert meta['dataset_meta']['classes'] == list(
        detector.checkpoint_meta['dataset_meta']['classes'])
    assert (out_dir / 'config.py').is_file()
    # FP32 weights, not openvino.save_model's default FP16
    types = {t for t, _, _ in ir_constants(out_dir / 'model.xml').values()}
    assert 'f32' in types and 'f16' not in types, types
    model = ov.Core().read_model(str(out_dir / 'model.xml'))
    assert [i.get_any_name() for i in model.inputs] == ['inputs']
    shape = model.inputs[0].get_partial_shape()
    assert [shape[a].is_dynamic for a in range(4)] == [True, False, True, True]


def _corrupt(out_dir, tmp_path, layer_part, value):
    """A copy of the export with the weights of the constant whose name
    contains ``layer_part`` changed by ``value``."""
    copy_dir = tmp_path / 'corrupt'
    shutil.copytree(out_dir, copy_dir)
    consts = ir_constants(copy_dir / 'model.xml')
    [(element, offset, size)] = [
        v for name, v in consts.items() if layer_part in name]
    assert element == 'f32'
    data = bytearray((copy_dir / 'model.bin').read_bytes())
    weights = np.frombuffer(data, np.float32, size // 4, offset).copy()
    weights += value
    data[offset:offset + size] = weights.tobytes()
    (copy_dir / 'model.bin').write_bytes(bytes(data))
    return str(copy_dir / 'model.xml')


def test_a_corrupted_ir_fails_the_check_naming_the_output(
        fp32_export, detector, images, tmp_path):
    """One weight tensor of the box branch perturbed in the .bin: the box
    outputs fail, named with the input they failed on; the scores pass."""
    xml = _corrupt(fp32_export[0], tmp_path, 'retina_reg.weight', 0.05)
    module = wrap_for_onnx(detector)
    inputs = check_inputs(detector, images[:2], SHAPE)[:1]
    result = check_openvino(compile_ir(xml), module, inputs)
    assert not result.ok
    assert 'FAILED' in result.table()
    levels = len(detector.bbox_head.prior_generator.strides)
    failures = '\n'.join(result.failures())
    for lvl in range(levels):
        assert result.errors[f'cls_score_{lvl}'] <= TOL
        assert result.errors[f'bbox_pred_{lvl}'] > TOL
        assert re.search(
            rf'^output bbox_pred_{lvl} on input 2 images, export size '
            r'\(2, 3, 128, 128\): max relative error \S+ > 1e-04$', failures,
            re.M), failures
    assert 'cls_score' not in failures


def test_non_finite_outputs_always_fail(fp32_export, detector, images,
                                        tmp_path):
    """An infinite weight in the IR fails even an unjudged (INT8/FP16)
    check, named; so does a network that gives NaN in both runtimes."""
    xml = _corrupt(fp32_export[0], tmp_path, 'retina_cls.weight',
                   np.float32(np.inf))
    module = wrap_for_onnx(detector)
    inputs = check_inputs(detector, images[:1], SHAPE)[:1]
    with pytest.raises(
            ParityError,
            match=r'^output cls_score_0 on input 2 images, export size '
            r'\(2, 3, 128, 128\): OpenVINO returned .*(NaN|inf)'):
        check_openvino(compile_ir(xml), module, inputs, strict=False)

    sqrt = _Sqrt().eval()
    batch = inputs[0][1]
    assert (batch < 0).any()  # normalised images: sqrt gives NaN
    compiled = compile_ir(convert_to_openvino(sqrt, batch))
    with pytest.raises(ParityError, match=r'^output root_0 on input 2 '
                       r'images.*: OpenVINO returned \d+ NaN'):
        check_openvino(compiled, sqrt, [('2 images', batch)])


class _Sqrt(GroupedOutputs):

    def groups(self, inputs):
        return [('root', [torch.sqrt(inputs)])]


def test_int8_calibrates_on_the_shipped_slice(checkpoint, detector,
                                              tmp_path):
    out_dir = tmp_path / 'int8'
    proc = run_tool('tools/deployment/export_openvino.py', RETINANET_DEMO,
                    checkpoint, '--out-dir', out_dir, '--shape', *SHAPE,
                    '--int8', '--calib-count', 4)
    stdout = proc.stdout
    # the head's box conv, once per FPN level in the graph
    levels = len(detector.bbox_head.prior_generator.strides)
    assert re.search(
        rf'^INT8: NNCF calibration on 4 images at 128x128, {levels} '
        r'output convolutions kept in FP32 \(--keep-fp32 box\)$', stdout,
        re.M), stdout
    # the FP32 conversion is judged first, the INT8 IR reported
    assert re.search(r'^max relative error \S+ <= 1e-04: OK$', stdout, re.M)
    match = re.search(r'^max relative error (\S+) \(reported, not judged\)$',
                      stdout, re.M)
    assert match, stdout
    meta = json.loads((out_dir / 'export.json').read_text())
    assert meta['precision'] == 'int8' and not meta['check']['judged']
    assert meta['calibration']['images'] == [
        str(p) for p in calibration_images(f'{DATA_ROOT}images', 4)
    ]
    error = float(match.group(1))
    assert meta['check']['max_error'] == pytest.approx(error, rel=0.01)
    assert 0 < error < 1  # quantized, and still the same network

    model = ov.Core().read_model(str(out_dir / 'model.xml'))
    convs = {
        op.get_friendly_name(): op
        for op in model.get_ops() if op.get_type_name() == 'Convolution'
    }
    quantized = {name for name, op in convs.items() if _quantized(op)}
    # the kept convolutions are the head's box convs, not quantized; the
    # classification convs and most others are (NNCF leaves SE gates in
    # FP32 by itself)
    kept = meta['calibration']['kept_fp32']
    assert meta['calibration']['keep_fp32'] == 'box'
    assert len(kept) == levels
    assert all('bbox_head.retina_reg/' in name for name in kept)
    assert set(kept) <= set(convs)
    assert not quantized & set(kept)
    cls = {name for name in convs if 'bbox_head.retina_cls/' in name}
    assert len(cls) == levels and cls <= quantized
    assert len(quantized) > len(convs) / 2


def _quantized(conv) -> bool:
    """A convolution NNCF quantized: a FakeQuantize on its input, INT8
    weights (an int8 constant, converted and scaled)."""
    activation = conv.input_value(0).get_node()
    weight = conv.input_value(1).get_node()
    while weight.get_type_name() in ('Multiply', 'Subtract', 'Convert'):
        weight = weight.input_value(0).get_node()
    return (activation.get_type_name() == 'FakeQuantize'
            and weight.get_type_name() == 'Constant'
            and weight.get_output_element_type(0) == ov.Type.i8)


def test_keep_fp32_picks_the_output_convolutions(fp32_export, detector):
    out_dir, _ = fp32_export
    model = ov.Core().read_model(str(out_dir / 'model.xml'))
    levels = len(detector.bbox_head.prior_generator.strides)
    box = kept_fp32(model, 'box')
    outputs = kept_fp32(model, 'outputs')
    assert len(box) == levels and len(outputs) == 2 * levels
    assert set(box) < set(outputs)
    assert sum('bbox_head.retina_cls/' in name for name in outputs) == levels
    assert kept_fp32(model, 'none') == []
    with pytest.raises(ValueError, match=r"keep_fp32='cls': expected one "
                       r'of box, outputs, none'):
        kept_fp32(model, 'cls')


def test_calibration_images_from_a_coco_annotation_file():
    files = calibration_images(f'{DATA_ROOT}annotations/instances.json', 3)
    with open(f'{DATA_ROOT}annotations/instances.json') as f:
        names = [im['file_name'] for im in json.load(f)['images'][:3]]
    assert files == [f'{DATA_ROOT}images/{name}' for name in names]
    with pytest.raises(ValueError, match='calibration count 0: expected at '
                       'least 1'):
        calibration_images(f'{DATA_ROOT}images', 0)


def _predictions(out_dir):
    return {
        p.name: json.loads(p.read_text())
        for p in sorted((out_dir / 'preds').glob('*.json'))
    }


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area - inter)


def test_infer_openvino_gives_the_pytorch_predictions(
        fp32_export, checkpoint, images, tmp_path):
    """Same JSON structure, same pictures written, and the top boxes of the
    PyTorch path found again with the same class and score."""
    chosen = images[:2]
    outs = {}
    for runtime, model_file in (('pytorch', checkpoint),
                                ('openvino', fp32_export[0] / 'model.xml')):
        outs[runtime] = tmp_path / runtime
        run_tool('tools/infer.py', *chosen, RETINANET_DEMO, model_file,
                 '--runtime', runtime, '--out-dir', outs[runtime],
                 '--device', 'cpu')
    torch_preds = _predictions(outs['pytorch'])
    ov_preds = _predictions(outs['openvino'])
    assert list(ov_preds) == list(torch_preds) and len(torch_preds) == 2
    assert sorted(p.name for p in (outs['openvino'] / 'vis').iterdir()) == \
        sorted(p.name for p in (outs['pytorch'] / 'vis').iterdir())
    for name, expected in torch_preds.items():
        got = ov_preds[name]
        assert got.keys() == expected.keys() == {'labels', 'scores', 'bboxes'}
        assert len(expected['scores']) > 0
        assert abs(len(got['scores']) - len(expected['scores'])) <= 2
        for label, score, box in list(
                zip(expected['labels'], expected['scores'],
                    expected['bboxes']))[:10]:
            assert any(
                other_label == label and abs(other_score - score) < 1e-3
                and _iou(box, other_box) > 0.99
                for other_label, other_score, other_box in zip(
                    got['labels'], got['scores'], got['bboxes'])), (name,
                                                                   score, box)


def test_infer_openvino_refuses_a_checkpoint(checkpoint, tmp_path):
    proc = run_tool('tools/infer.py', DEMO_IMAGES, RETINANET_DEMO,
                    checkpoint, '--runtime', 'openvino', '--out-dir',
                    tmp_path, check=False)
    assert proc.returncode != 0
    assert f'{checkpoint}: expected the model.xml of an export directory' \
        in proc.stderr
