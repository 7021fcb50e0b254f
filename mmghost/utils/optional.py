# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""Optional dependencies, imported only where they are needed."""
import importlib
from types import ModuleType

__all__ = ['require']


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or say how to install it.

    Args:
        module (str): The module to import, e.g. ``'onnxruntime'``.
        extra (str): The pip extra of mmghost that installs it, e.g.
            ``'onnx'``.
        purpose (str): What needs it, starting the error message, e.g.
            ``'ONNX export'``.

    Raises:
        ImportError: ``{purpose} needs {module}: pip install -e ".[{extra}]"
            ...``, from the original error.
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f'{purpose} needs {module}: pip install -e ".[{extra}]" '
            '(from the mmghost checkout) installs the tested versions'
        ) from e
