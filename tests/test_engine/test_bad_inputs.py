# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Bad inputs either work or stop with a message naming the file or value
(issue #5). Broken datasets are written under tmp_path from copies of the
shipped tiny-coco images; data/ is never touched."""
import argparse
import copy
import json
import os.path as osp
import re

import cv2
import pytest
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmghost  # noqa: F401
from mmdet.registry import DATASETS, MODELS
from mmghost.utils import check_data
from tests.test_engine.helpers import (DATA, DEMO, demo_options, log_text,
                                       run, snapshot, train_cmd)

pytestmark = pytest.mark.trains

PERSON = [{'id': 1, 'name': 'person', 'supercategory': 'person'}]


def tiny_coco():
    with open(osp.join(DATA, 'annotations', 'instances.json')) as f:
        return json.load(f)


def person_anns(coco, image, scale=(1.0, 1.0), start_id=1):
    """The image's person boxes, scaled by (sx, sy)."""
    anns = []
    sx, sy = scale
    for a in coco['annotations']:
        if a['image_id'] == image['id'] and a['category_id'] == 1:
            x, y, w, h = a['bbox']
            anns.append(dict(id=start_id + len(anns), image_id=image['id'],
                             category_id=1, iscrowd=0,
                             bbox=[x * sx, y * sy, w * sx, h * sy],
                             area=w * h * sx * sy))
    return anns


def write_dataset(root, images, annotations, categories=PERSON):
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'annotations').mkdir(exist_ok=True)
    ann_file = root / 'annotations' / 'instances.json'
    ann_file.write_text(
        json.dumps(dict(images=images, annotations=annotations,
                        categories=categories)))
    return ann_file


@pytest.fixture
def odd_dataset(tmp_path):
    """Unusual images that are valid COCO: grayscale, RGBA, 333x517, one
    without objects and one with only a crowd box."""
    coco = tiny_coco()
    with_person = [
        img for img in coco['images']
        if any(a['image_id'] == img['id'] and a['category_id'] == 1
               for a in coco['annotations'])
    ]
    root = tmp_path / 'odd'
    (root / 'images').mkdir(parents=True)
    images, anns = [], []

    def add(src, name, pixels, boxes_scale=None, crowd=False):
        image = dict(id=len(images) + 1, file_name=name,
                     height=pixels.shape[0], width=pixels.shape[1])
        assert cv2.imwrite(str(root / 'images' / name), pixels)
        if boxes_scale is not None:
            new = person_anns(coco, src, boxes_scale, start_id=len(anns) + 1)
            for a in new:
                a['image_id'] = image['id']
            if crowd:  # one crowd region around all of them
                xs = [a['bbox'][0] for a in new]
                ys = [a['bbox'][1] for a in new]
                x2 = [a['bbox'][0] + a['bbox'][2] for a in new]
                y2 = [a['bbox'][1] + a['bbox'][3] for a in new]
                box = [min(xs), min(ys), max(x2) - min(xs), max(y2) - min(ys)]
                new = [dict(new[0], bbox=box, area=box[2] * box[3],
                            iscrowd=1)]
            anns.extend(new)
        images.append(image)

    def read(img):
        return cv2.imread(osp.join(DATA, 'images', img['file_name']))

    src = with_person[0]
    add(src, 'gray.jpg', cv2.cvtColor(read(src), cv2.COLOR_BGR2GRAY),
        (1.0, 1.0))
    src = with_person[1]
    bgra = cv2.cvtColor(read(src), cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = 128
    add(src, 'rgba.png', bgra, (1.0, 1.0))
    src = with_person[2]
    add(src, 'odd_333x517.jpg', cv2.resize(read(src), (333, 517)),
        (333 / src['width'], 517 / src['height']))
    add(None, 'no_objects.jpg', read(with_person[3]))
    src = with_person[4]
    add(src, 'crowd_only.jpg', read(src), (1.0, 1.0), crowd=True)
    write_dataset(root, images, anns)
    return root


def demo_cfg(data_root, *extra):
    """The demo config as tools/train.py sees it with these options."""
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = demo_options(times=1, epochs=1, data_root=f'{data_root}/')
    args = parser.parse_args(['--cfg-options', *options, *extra])
    cfg = Config.fromfile(DEMO)
    cfg.merge_from_dict(args.cfg_options)
    return cfg


def test_odd_images_load_as_three_channels(odd_dataset):
    init_default_scope('mmdet')
    cfg = demo_cfg(odd_dataset)
    check_data(cfg, ('train_dataloader', 'val_dataloader'), DEMO)  # passes
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset.dataset)
    ds_cfg.filter_cfg = dict(filter_empty_gt=False)
    dataset = DATASETS.build(ds_cfg)
    samples = {
        osp.basename(s['data_samples'].img_path): s
        for s in (dataset[i] for i in range(len(dataset)))
    }
    assert len(samples) == 5
    for name, sample in samples.items():
        assert sample['inputs'].shape[0] == 3, name
    assert samples['odd_333x517.jpg']['data_samples'].ori_shape == (517, 333)
    crowd = samples['crowd_only.jpg']['data_samples']
    assert len(crowd.gt_instances) == 0 and len(crowd.ignored_instances) == 1
    empty = samples['no_objects.jpg']['data_samples']
    assert len(empty.gt_instances) == 0 and len(empty.ignored_instances) == 0
    assert len(samples['gray.jpg']['data_samples'].gt_instances) > 0


def test_odd_images_train_and_evaluate(odd_dataset, tmp_path):
    work_dir = tmp_path / 'work'
    options = demo_options(times=1, epochs=1,
                           data_root=str(odd_dataset) + '/') + [
        'train_dataloader.batch_size=2',
        'train_dataloader.dataset.dataset.filter_cfg.filter_empty_gt=False']
    proc = run(train_cmd(work_dir, options=options))
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = log_text(work_dir)
    # all 5 images in batches of 2, the empty and crowd-only ones included
    assert re.search(r'Epoch\(train\)\s+\[1\]\[3/3\].*loss: \d', log)
    assert re.search(r'Epoch\(val\)\s+\[1\]\[\d/\d\]\s+coco/.*coco/bbox_mAP',
                     log)
    assert (work_dir / 'epoch_1.pth').is_file()


# -- broken annotation files -------------------------------------------------
def broken_cases(root):
    """name -> (annotation file text, what the message must say)."""
    coco = tiny_coco()
    image = next(img for img in coco['images']
                 if person_anns(coco, img))
    good = dict(images=[image], annotations=person_anns(coco, image),
                categories=PERSON)
    gone = dict(good, images=[image, dict(image, id=7, file_name='gone.jpg')])
    stray = dict(good, annotations=good['annotations'] + [
        dict(good['annotations'][0], id=99, category_id=999)])
    return {
        'not_json': ('{"images": [ this is not json',
                     r'is not JSON \(Expecting value: line 1 column 14'),
        'a_list': ('[1, 2]', r'holds a JSON list, not a COCO object'),
        'no_images': (json.dumps({k: v for k, v in good.items()
                                  if k != 'images'}),
                      r'has no "images" list \(its keys: annotations, '
                      r'categories\), so it is not a COCO detection file'),
        'missing_image': (json.dumps(gone),
                          r'1 of the 2 images listed in .* are not in '
                          rf'{re.escape(str(root / "images"))}/?: gone\.jpg'),
        'unknown_category': (json.dumps(stray),
                             r'1 annotations whose category_id is not the id '
                             r'of one of its categories: annotation 99 '
                             r'\(category_id=999\)'),
    }, image


@pytest.mark.parametrize('case', [
    'not_json', 'a_list', 'no_images', 'missing_image', 'unknown_category'
])
def test_broken_annotations_stop_with_the_file_and_value(tmp_path, case):
    root = tmp_path / 'broken'
    cases, image = broken_cases(root)
    text, message = cases[case]
    write_dataset(root, [], [])
    cv2.imwrite(str(root / 'images' / image['file_name']),
                cv2.imread(osp.join(DATA, 'images', image['file_name'])))
    ann = root / 'annotations' / f'{case}.json'
    ann.write_text(text)
    cfg = demo_cfg(root, 'train_dataloader.dataset.dataset.ann_file='
                   f'annotations/{ann.name}')
    with pytest.raises(SystemExit) as err:
        check_data(cfg, ('train_dataloader', 'val_dataloader'), DEMO)
    text = str(err.value)
    assert text.startswith(f'Bad dataset for {DEMO}: ')
    assert str(ann) in text
    assert re.search(message, text), text


def test_train_tool_stops_on_broken_annotations(tmp_path):
    root = tmp_path / 'broken'
    write_dataset(root, [], [])
    ann = root / 'annotations' / 'instances.json'
    ann.write_text('not json at all')
    proc = run(train_cmd(tmp_path / 'work',
                         options=demo_options(data_root=str(root) + '/')))
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f'Bad dataset for {DEMO}: annotation file {ann} is not JSON '
        '(Expecting value: line 1 column 1 (char 0)).')
    assert not (tmp_path / 'work').exists()


# -- wrong weights and wrong arguments ---------------------------------------
def build_backbone(**kwargs):
    init_default_scope('mmdet')
    cfg = copy.deepcopy(Config.fromfile(DEMO).model.backbone)
    cfg.update(dict(dict(init_cfg=None), **kwargs))
    return MODELS.build(cfg)


def test_wrong_width_checkpoint_fails_run_and_keeps_work_dir(tmp_path):
    """A 1.0x checkpoint for the 1.1x demo stops the run before any step,
    in a work dir holding an earlier run whose files must survive."""
    ckpt = tmp_path / 'ghostnet_1.0x.pth'
    torch.save(build_backbone(widen_factor=1.0).state_dict(), str(ckpt))
    work_dir = tmp_path / 'work'
    (work_dir / '20240101_000000' / 'vis_data').mkdir(parents=True)
    (work_dir / '20240101_000000' / '20240101_000000.log').write_text('old')
    (work_dir / '20240101_000000' / 'vis_data' / 'scalars.json').write_text(
        '{"loss": 1.0}\n')
    torch.save({'meta': {'epoch': 4, 'iter': 20}, 'state_dict': {}},
               str(work_dir / 'epoch_4.pth'))
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_4.pth'))
    before = snapshot(work_dir)

    proc = run(train_cmd(work_dir, options=demo_options() + [
        'model.backbone.init_cfg._delete_=True',  # the demo's is None
        'model.backbone.init_cfg.type=Pretrained',
        f'model.backbone.init_cfg.checkpoint={ckpt}']))
    assert proc.returncode != 0
    assert re.search(
        rf'ValueError: checkpoint {re.escape(str(ckpt))} does not fit '
        r'GhostNet\(widen_factor=1\.1\): .*shape mismatches', proc.stderr)
    after = snapshot(work_dir)
    for path, content in before.items():
        assert after.get(path) == content, f'{path} changed'
    assert not (work_dir / 'epoch_1.pth').exists()


def test_other_network_checkpoint_names_file_and_keys(tmp_path):
    init_default_scope('mmdet')
    ckpt = tmp_path / 'mobilenet_v2.pth'
    torch.save(MODELS.build(dict(type='MobileNetV2')).state_dict(), str(ckpt))
    backbone = build_backbone(
        init_cfg=dict(type='Pretrained', checkpoint=str(ckpt)))
    with pytest.raises(
            ValueError,
            match=rf'checkpoint {re.escape(str(ckpt))} does not fit '
            r'GhostNet\(widen_factor=1\.1\): \d+ missing keys: conv_stem'):
        backbone.init_weights()


def test_unknown_backbone_argument_is_named():
    init_default_scope('mmdet')
    cfg = copy.deepcopy(Config.fromfile(DEMO).model)
    cfg.backbone.widht_factor = 1.0  # a typo of widen_factor
    with pytest.raises(
            TypeError,
            match=r"GhostNet\.__init__\(\) got an unexpected keyword "
            r"argument 'widht_factor'"):
        MODELS.build(cfg)


# -- the evaluator's own annotation file --------------------------------------
def test_train_tool_names_a_missing_evaluator_ann_file(tmp_path):
    """CocoMetric opens val_evaluator.ann_file itself: missing, it is one
    sentence naming the key and the file, before anything is built."""
    missing = tmp_path / 'annotations' / 'instances_val.json'
    proc = run(train_cmd(tmp_path / 'work', options=demo_options() + [
        f'val_evaluator.ann_file={missing}']))
    assert proc.returncode != 0
    assert 'Traceback' not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith(
        f'Annotation file not found for {DEMO}: val_evaluator.ann_file='
        f'{missing} does not exist (relative to ')
    assert not (tmp_path / 'work').exists()


@pytest.mark.parametrize('loader', ['val_dataloader', 'test_dataloader'])
def test_evaluator_ann_file_is_checked(tmp_path, loader):
    key = loader.replace('_dataloader', '_evaluator')
    missing = str(tmp_path / 'gt.json')
    cfg = demo_cfg(DATA.rstrip('/'), f'{key}.ann_file={missing}')
    with pytest.raises(SystemExit, match=rf'{key}\.ann_file={missing} does '
                       r'not exist'):
        check_data(cfg, (loader, ), DEMO)
    # a list of metrics is named by position; a broken file is named too
    (tmp_path / 'gt.json').write_text('[]')
    cfg[key] = [dict(type='CocoMetric', ann_file=missing)]
    with pytest.raises(SystemExit, match=rf'^Bad dataset for .*: '
                       rf'{key}\[0\]\.ann_file: annotation file {missing} '
                       r'holds a JSON list'):
        check_data(cfg, (loader, ), DEMO)
