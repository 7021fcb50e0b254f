# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""tools/infer.py on the shipped images with a demo checkpoint that
tools/train.py wrote: drawn images and JSON predictions, as DetInferencer
writes them."""
import json
import os
import os.path as osp

import cv2
import mmcv
import numpy as np
import pytest
import torch

from tests.test_deployment.demo_checkpoint import (DEMO_IMAGES,
                                                   RETINANET_DEMO, run_tool,
                                                   trained_checkpoint)

pytestmark = pytest.mark.trains

# every prediction the model makes is kept (test_cfg.score_thr=0), so that
# the barely trained demo has boxes to draw and to write
KEEP_ALL = ('--cfg-options', 'model.test_cfg.score_thr=0.0')
MAX_PER_IMG = 100  # RetinaNet's test_cfg.max_per_img


def changed_fraction(drawn: np.ndarray, original: np.ndarray) -> float:
    """Share of pixels that drawing changed (JPEG re-encoding moves a pixel
    by a few levels; a line or a label, by far more)."""
    assert drawn.shape == original.shape
    diff = np.abs(drawn.astype(np.int16) - original.astype(np.int16))
    return float((diff.max(axis=-1) > 64).mean())


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return trained_checkpoint(tmp_path_factory)


@pytest.fixture(scope='module')
def inferred(checkpoint, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp('infer')
    proc = run_tool('tools/infer.py', DEMO_IMAGES, RETINANET_DEMO, checkpoint,
                    '--out-dir', out_dir, '--score-thr', 0.0, *KEEP_ALL)
    return str(out_dir), proc


def demo_images():
    return sorted(os.listdir(DEMO_IMAGES))


def test_writes_a_json_of_the_predictions_per_image(inferred, checkpoint):
    out_dir, _ = inferred
    names = demo_images()
    assert len(names) == 16
    assert sorted(os.listdir(osp.join(out_dir, 'preds'))) == [
        osp.splitext(n)[0] + '.json' for n in names
    ]
    classes = torch.load(
        checkpoint, weights_only=False)['meta']['dataset_meta']['classes']
    for name in names:
        with open(osp.join(out_dir, 'preds',
                           osp.splitext(name)[0] + '.json')) as f:
            pred = json.load(f)
        assert set(pred) == {'labels', 'scores', 'bboxes'}
        count = len(pred['scores'])
        assert 0 < count <= MAX_PER_IMG
        assert len(pred['labels']) == len(pred['bboxes']) == count
        assert set(pred['labels']) <= set(range(len(classes)))
        scores = np.array(pred['scores'])
        assert ((0 <= scores) & (scores <= 1)).all()
        assert (np.diff(scores) <= 0).all(), 'not highest score first'
        # boxes in the pixels of the original image
        height, width = mmcv.imread(osp.join(DEMO_IMAGES, name)).shape[:2]
        boxes = np.array(pred['bboxes'])
        assert boxes.shape == (count, 4)
        assert (boxes[:, 0] <= boxes[:, 2]).all()
        assert (boxes[:, 1] <= boxes[:, 3]).all()
        assert (boxes >= -1).all()
        assert (boxes[:, [0, 2]] <= width + 1).all()
        assert (boxes[:, [1, 3]] <= height + 1).all()


def test_draws_the_boxes_on_every_image(inferred):
    out_dir, proc = inferred
    names = demo_images()
    assert sorted(os.listdir(osp.join(out_dir, 'vis'))) == names
    for name in names:
        drawn = mmcv.imread(osp.join(out_dir, 'vis', name))
        original = mmcv.imread(osp.join(DEMO_IMAGES, name))
        assert changed_fraction(drawn, original) > 0.01, name
    assert f'16 images: drawn images (score >= 0.0) in {out_dir}/vis' in (
        proc.stdout)


def test_score_threshold_only_filters_what_is_drawn(inferred, checkpoint,
                                                    tmp_path):
    """A threshold above every score: nothing drawn, the image unchanged;
    one image file as input, and no JSON with --no-save-pred."""
    out_dir, _ = inferred
    name = demo_images()[0]
    pred_file = osp.join(out_dir, 'preds', osp.splitext(name)[0] + '.json')
    with open(pred_file) as f:
        top_score = max(json.load(f)['scores'])
    run_tool('tools/infer.py', osp.join(DEMO_IMAGES, name), RETINANET_DEMO,
             checkpoint, '--out-dir', tmp_path, '--score-thr',
             top_score + 1e-3, '--no-save-pred', *KEEP_ALL)
    assert sorted(os.listdir(tmp_path)) == ['vis']
    assert os.listdir(tmp_path / 'vis') == [name]
    drawn = mmcv.imread(str(tmp_path / 'vis' / name))
    original = mmcv.imread(osp.join(DEMO_IMAGES, name))
    # the original's own pixels, only re-encoded: no resample, no shift
    assert_same_pixels(drawn, as_written(original))


def as_written(image: np.ndarray) -> np.ndarray:
    """``image`` after mmcv.imwrite to .jpg (OpenCV, quality 95) and back."""
    ok, encoded = cv2.imencode('.jpg', image)
    assert ok
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)


def assert_same_pixels(got: np.ndarray, expected: np.ndarray):
    assert got.shape == expected.shape
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1, f'{(diff > 1).mean():.4%} of values differ'


def test_same_pixels_catches_a_resample():
    """A picture scaled to 0.8x and back, written like the drawn ones,
    changes too few pixels by much to fail a changed-fraction bar; the
    comparison above rejects it."""
    original = mmcv.imread(osp.join(DEMO_IMAGES, demo_images()[0]))
    h, w = original.shape[:2]
    resampled = cv2.resize(
        cv2.resize(original, (round(w * 0.8), round(h * 0.8))), (w, h))
    assert changed_fraction(as_written(resampled), original) < 0.001
    with pytest.raises(AssertionError, match='of values differ'):
        assert_same_pixels(as_written(resampled), as_written(original))


def test_no_images_is_one_clear_sentence(tmp_path):
    (tmp_path / 'notes.txt').write_text('not an image')
    proc = run_tool('tools/infer.py', tmp_path, RETINANET_DEMO,
                    tmp_path / 'missing.pth', '--out-dir', tmp_path / 'out',
                    check=False)
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(f'no images in {tmp_path}: it holds no file '
                              'ending in .jpg, .jpeg, .png')
    assert not (tmp_path / 'out').exists()
