# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
from .data_check import check_data, missing_data
from .inputs import IMG_EXTENSIONS, config_images_dir, list_images
from .optional import require

__all__ = [
    'check_data', 'missing_data', 'list_images', 'config_images_dir',
    'IMG_EXTENSIONS', 'require'
]
