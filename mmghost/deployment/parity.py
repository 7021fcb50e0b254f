# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""An exported network's outputs against PyTorch's, one input at a time.

Every runtime check (onnxruntime, OpenVINO) compares the same way: per
output, ``max |runtime - torch| / max |torch|``. A NaN or an infinity on
either side fails outright: it is no error to measure (``max(0.0, nan)`` is
``0.0`` in Python, so a maximum taken over NaN errors would pass).
"""
from typing import Dict, Sequence

import numpy as np

__all__ = ['ParityError', 'compare_outputs']


class ParityError(ValueError):
    """The outputs cannot be compared, or one side is not finite."""


def _as_array(value) -> np.ndarray:
    if hasattr(value, 'detach'):  # a torch.Tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _non_finite(array: np.ndarray) -> str:
    nan = int(np.isnan(array).sum())
    inf = int(np.isinf(array).sum())
    return ' and '.join(
        f'{count} {what}' for count, what in ((nan, 'NaN'), (inf, 'inf'))
        if count)


def compare_outputs(names: Sequence[str],
                    got: Sequence,
                    expected: Sequence,
                    input_label: str,
                    runtime: str = 'the export') -> Dict[str, float]:
    """``max |got - expected| / max |expected|`` of each output, by name.

    Args:
        names: The output names, in order.
        got: The runtime's outputs (arrays or tensors), in that order.
        expected: PyTorch's outputs, in that order.
        input_label: The input they were computed on, for messages
            (``'2 images, export size (2, 3, 320, 320)'``).
        runtime: Who produced ``got``, for messages (``'onnxruntime'``).

    Returns:
        dict: output name -> relative error, always finite.

    Raises:
        ParityError: naming the output and the input, when the numbers of
            outputs or an output's shapes differ, or when an output holds a
            NaN or an infinity in ``got`` or in ``expected``.
    """
    names = list(names)
    if not len(names) == len(got) == len(expected):
        raise ParityError(
            f'on input {input_label}: {len(names)} output names, {runtime} '
            f'returned {len(got)} outputs, PyTorch {len(expected)}')
    errors = {}
    for name, ours, ref in zip(names, got, expected):
        ours, ref = _as_array(ours), _as_array(ref)
        if ours.shape != ref.shape:
            raise ParityError(
                f'output {name} on input {input_label}: {runtime} shape '
                f'{tuple(ours.shape)}, PyTorch {tuple(ref.shape)}')
        for side, array in ((runtime, ours), ('PyTorch', ref)):
            bad = _non_finite(array)
            if bad:
                raise ParityError(
                    f'output {name} on input {input_label}: {side} returned '
                    f'{bad} value(s) among {array.size}; a non-finite '
                    'output fails the check')
        ours = ours.astype(np.float64)
        ref = ref.astype(np.float64)
        scale = max(float(np.abs(ref).max(initial=0.0)), 1e-12)
        errors[name] = float(np.abs(ours - ref).max(initial=0.0)) / scale
    return errors
