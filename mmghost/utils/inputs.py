# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""The image files a user points a tool at: a folder, files, or a mix."""
import os
import os.path as osp
from typing import List, Sequence, Union

from mmdet.apis.det_inferencer import IMG_EXTENSIONS
from mmengine.config import Config

__all__ = ['list_images', 'config_images_dir', 'IMG_EXTENSIONS']


def list_images(paths: Union[str, Sequence[str]]) -> List[str]:
    """The image files named by ``paths``, folders expanded (not recursed).

    A folder contributes its files with an image extension
    (``IMG_EXTENSIONS``, as ``DetInferencer`` reads them), sorted by name.
    A path that does not exist, a file that is not an image, or a selection
    with no image at all raise ``FileNotFoundError``/``ValueError`` that
    name the path.
    """
    if isinstance(paths, str):
        paths = [paths]
    images = []
    for path in paths:
        if osp.isdir(path):
            found = sorted(
                osp.join(path, name) for name in os.listdir(path)
                if name.lower().endswith(IMG_EXTENSIONS)
                and osp.isfile(osp.join(path, name)))
            if not found:
                raise ValueError(
                    f'no images in {path}: it holds no file ending in '
                    + ', '.join(IMG_EXTENSIONS))
            images += found
        elif osp.isfile(path):
            if not path.lower().endswith(IMG_EXTENSIONS):
                raise ValueError(
                    f'{path} is not an image: expected a file ending in '
                    + ', '.join(IMG_EXTENSIONS))
            images.append(path)
        else:
            raise FileNotFoundError(f'{path} does not exist')
    if not images:
        raise ValueError('no images given')
    return images


def config_images_dir(cfg: Config) -> str:
    """The image folder of the config's test set."""
    dataset = cfg.test_dataloader.dataset
    while 'dataset' in dataset:  # RepeatDataset and friends
        dataset = dataset.dataset
    prefix = dataset.get('data_prefix', {}).get('img', '')
    return osp.join(dataset.get('data_root', '') or '', prefix)
