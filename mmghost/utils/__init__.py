# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
from .data_check import check_data, missing_data

__all__ = ['check_data', 'missing_data']
