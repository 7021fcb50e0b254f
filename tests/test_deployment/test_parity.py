# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""An exported network against PyTorch: a NaN or an infinity on either side
fails the check, naming the output and the input; the export check sees
each whole picture, whatever the shape asked for."""
import math
import os
import os.path as osp
import re

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmghost.deployment import (GroupedOutputs, check_onnx, export_onnx,
                                preprocess_images)
from mmghost.deployment.parity import ParityError, compare_outputs
from tests.test_deployment.demo_checkpoint import (DEMO_IMAGES,
                                                   RETINANET_DEMO, run_tool,
                                                   trained_checkpoint)
from tests.utils import build_detector

LABEL = '2 images (2, 3, 64, 64)'


def test_relative_error_of_each_output():
    expected = [np.array([1.0, -2.0, 4.0]), torch.ones(2, 2)]
    got = [np.array([1.0, -2.0, 4.002], dtype=np.float32), torch.ones(2, 2)]
    errors = compare_outputs(['a', 'b'], got, expected, LABEL)
    assert errors == {'a': pytest.approx(0.002 / 4, rel=1e-4), 'b': 0.0}


@pytest.mark.parametrize('value, what', [(math.nan, '1 NaN'),
                                         (math.inf, '1 inf'),
                                         (-math.inf, '1 inf')])
@pytest.mark.parametrize('side', ['runtime', 'PyTorch'])
def test_a_non_finite_value_fails_naming_output_and_input(value, what, side):
    good = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    bad = good.copy()
    bad[1, 2] = value
    got, expected = [good, bad], [good, good]
    if side == 'PyTorch':
        got, expected = [good, good], [good, bad]
    with pytest.raises(
            ParityError,
            match=rf'^output b on input {re.escape(LABEL)}: {side} returned '
            rf'{what} value\(s\) among 6; a non-finite output fails'):
        compare_outputs(['a', 'b'], got, expected, LABEL, runtime='runtime')


def test_nan_in_both_fails_too():
    """The same NaN on both sides is no agreement."""
    nan = np.full((2, 2), np.nan, dtype=np.float32)
    with pytest.raises(ParityError, match='^output a on input x: runtime'):
        compare_outputs(['a'], [nan], [nan.copy()], 'x', runtime='runtime')


def test_counts_and_shapes_must_agree():
    one = np.zeros((1, 4))
    with pytest.raises(ParityError, match=r'on input x: 2 output names, '
                       r'ort returned 1 outputs, PyTorch 2'):
        compare_outputs(['a', 'b'], [one], [one, one], 'x', runtime='ort')
    with pytest.raises(ParityError, match=r'output a on input x: ort shape '
                       r'\(1, 4\), PyTorch \(4, 1\)'):
        compare_outputs(['a'], [one], [one.T], 'x', runtime='ort')


class _RootAndDouble(GroupedOutputs):
    """sqrt is NaN for negative pixels, in PyTorch and in onnxruntime."""

    def groups(self, inputs):
        return [('double', [inputs * 2]), ('root', [inputs.sqrt()])]


def test_check_onnx_fails_on_nan(tmp_path):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    module = _RootAndDouble().eval()
    out = str(tmp_path / 'root.onnx')
    export_onnx(module, torch.rand(2, 3, 32, 32), out)
    positive = torch.rand(1, 3, 40, 48)
    assert check_onnx(out, module, [('positive', positive)]).ok
    negative = positive - 2
    with pytest.raises(
            ParityError,
            match=r'^output root_0 on input negative \(1, 3, 40, 48\): '
            r'onnxruntime returned 5760 NaN value\(s\) among 5760'):
        check_onnx(out, module, [('positive', positive),
                                 ('negative', negative)])


def test_export_tool_fails_on_nan_weights(tmp_path_factory, tmp_path):
    """The user's command on a detector whose head makes NaN: no table
    that says OK, one sentence and exit status 1."""
    pytest.importorskip('onnxruntime')
    pytest.importorskip('onnxscript')
    checkpoint = torch.load(trained_checkpoint(tmp_path_factory),
                            map_location='cpu', weights_only=False)
    checkpoint['state_dict']['bbox_head.retina_cls.bias'][0] = math.nan
    broken = str(tmp_path / 'nan_head.pth')
    torch.save(checkpoint, broken)
    proc = run_tool('tools/deployment/export_onnx.py', RETINANET_DEMO,
                    broken, '--out', tmp_path / 'nan.onnx', '--images',
                    DEMO_IMAGES, '--shape', 128, 128, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'Traceback' not in proc.stderr
    assert ': OK' not in proc.stdout
    assert re.fullmatch(
        r'check FAILED: output cls_score_0 on input 2 images, export size '
        r'\(2, 3, 128, 128\): onnxruntime returned \d+ NaN value\(s\) among '
        r'\d+; a non-finite output fails the check',
        proc.stderr.strip().splitlines()[-1]), proc.stderr


# -- what the check feeds the export: whole pictures, fitted and padded -----
@pytest.fixture(scope='module')
def demo_model():
    cfg = Config.fromfile(RETINANET_DEMO)
    model = build_detector(cfg).eval()
    model.cfg = cfg
    return model


def image_of(orientation: str) -> str:
    for name in sorted(os.listdir(DEMO_IMAGES)):
        h, w = mmcv.imread(osp.join(DEMO_IMAGES, name)).shape[:2]
        if (w > h) == (orientation == 'landscape') and w != h:
            return osp.join(DEMO_IMAGES, name)
    raise AssertionError(f'no {orientation} image in {DEMO_IMAGES}')


@pytest.mark.parametrize('orientation, shape', [('landscape', (320, 192)),
                                                ('portrait', (192, 320)),
                                                ('landscape', (160, 160))])
def test_whole_picture_fitted_into_the_shape(demo_model, orientation, shape):
    path = image_of(orientation)
    image = mmcv.imread(path)  # BGR, as LoadImageFromFile reads it
    h, w = image.shape[:2]
    factor = min(shape[0] / h, shape[1] / w)
    size_h, size_w = int(h * factor + 0.5), int(w * factor + 0.5)
    assert size_h <= shape[0] and size_w <= shape[1]
    # the long side of the picture meets the shape's side it faces
    assert (size_w == shape[1]) if w * shape[0] > h * shape[1] else (
        size_h == shape[0])

    batch = preprocess_images(demo_model, [path], shape, pad_to_shape=True)
    assert batch.shape == (1, 3, *shape)
    pre = demo_model.data_preprocessor
    resized = mmcv.imresize(image, (size_w, size_h))  # bilinear, as Resize
    rgb = torch.from_numpy(resized[..., ::-1].copy()).permute(2, 0, 1)
    expected = (rgb.float() - pre.mean) / pre.std
    torch.testing.assert_close(
        batch[0, :, :size_h, :size_w], expected, atol=1e-5, rtol=0)
    # the rest is padding
    assert (batch[0, :, size_h:, :] == pre.pad_value).all()
    assert (batch[0, :, :, size_w:] == pre.pad_value).all()
