# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
import os
import os.path as osp

import pytest

from mmghost.utils import list_images
from tests.test_deployment.demo_checkpoint import DEMO_IMAGES


def test_a_folder_gives_its_images_sorted():
    names = sorted(n for n in os.listdir(DEMO_IMAGES) if n.endswith('.jpg'))
    assert len(names) == 16
    assert list_images(DEMO_IMAGES) == [
        osp.join(DEMO_IMAGES, n) for n in names
    ]


def test_files_and_folders_mix_in_order(tmp_path):
    first = osp.join(DEMO_IMAGES, sorted(os.listdir(DEMO_IMAGES))[0])
    (tmp_path / 'b.PNG').write_bytes(b'')
    (tmp_path / 'a.jpeg').write_bytes(b'')
    (tmp_path / 'notes.txt').write_text('')
    (tmp_path / 'sub.jpg').mkdir()  # a folder is not an image
    assert list_images([first, str(tmp_path)]) == [
        first, str(tmp_path / 'a.jpeg'), str(tmp_path / 'b.PNG')
    ]


def test_what_is_not_an_image_is_named(tmp_path):
    (tmp_path / 'notes.txt').write_text('')
    with pytest.raises(ValueError, match=f'^no images in {tmp_path}: '):
        list_images(str(tmp_path))
    with pytest.raises(ValueError,
                       match=r'notes\.txt is not an image: expected a file '
                       r'ending in \.jpg'):
        list_images(str(tmp_path / 'notes.txt'))
    with pytest.raises(FileNotFoundError, match='missing.jpg does not exist'):
        list_images([DEMO_IMAGES, str(tmp_path / 'missing.jpg')])
