# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The export tools' shared arguments refuse a bad value with one line."""
import argparse

import pytest
import torch

from mmghost.deployment.cli import add_model_arguments, load_for_export
from tests.test_deployment.demo_checkpoint import RETINANET_DEMO


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint of the demo config's own (untrained) weights."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    model = MODELS.build(Config.fromfile(RETINANET_DEMO).model)
    path = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(dataset_meta=dict(classes=('person', )))),
               path)
    return path


def test_defaults():
    args = parse(RETINANET_DEMO, 'model.pth')
    assert (args.part, args.shape, args.images) == ('detector', [320, 320],
                                                   None)


def test_missing_checkpoint_names_it(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(SystemExit, match=f'checkpoint {missing} does not '
                       'exist'):
        load_for_export(parse(RETINANET_DEMO, missing))


def test_small_shape_names_the_value(checkpoint):
    with pytest.raises(SystemExit, match='--shape 16 320: both sides must '
                       'be at least 32'):
        load_for_export(parse(RETINANET_DEMO, checkpoint, '--shape', 16,
                              320))


def test_images_that_are_not_there_say_so(checkpoint, tmp_path):
    with pytest.raises(SystemExit, match='does not exist'):
        load_for_export(parse(RETINANET_DEMO, checkpoint, '--images',
                              tmp_path / 'none.jpg'))


def test_loads_the_model_and_check_inputs(checkpoint):
    job = load_for_export(parse(RETINANET_DEMO, checkpoint, '--shape', 64,
                                96, '--part', 'backbone'))
    assert len(job.images) == 3 and job.shape == (64, 96)
    assert job.example.shape[-2:] == (64, 96)
    assert type(job.module).__name__ == 'BackboneForOnnx'
    assert job.checked_on.startswith('3 real images (')
