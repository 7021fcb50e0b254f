# Copyright (c) mmghost contributors. Licensed under the Apache License 2.0.
"""An exported network's outputs against PyTorch's, one input at a time.

:func:`check_runtime` runs any runtime (onnxruntime, OpenVINO) on real
inputs and gathers the errors in a :class:`RuntimeCheck`.

Every runtime check (onnxruntime, OpenVINO) compares the same way: per
output, ``max |runtime - torch| / max |torch|``. A NaN or an infinity on
either side fails outright: it is no error to measure (``max(0.0, nan)`` is
``0.0`` in Python, so a maximum taken over NaN errors would pass).
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

__all__ = ['ParityError', 'RuntimeCheck', 'check_runtime', 'compare_outputs']


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


@dataclass
class RuntimeCheck:
    """A runtime's outputs against PyTorch on real inputs.

    ``errors[name]`` is the largest, over the checked inputs, of
    ``max |runtime - torch| / max |torch|`` for that output (see
    ``parity.compare_outputs``), ``worst_input[name]`` the input it came
    from. With ``strict=False`` (INT8, FP16) the errors are reported, not
    judged.
    """
    tol: float
    strict: bool = True
    inputs: List[Tuple[str, Tuple[int, ...]]] = field(default_factory=list)
    errors: Dict[str, float] = field(default_factory=dict)
    worst_input: Dict[str, str] = field(default_factory=dict)
    shapes: Dict[str, Tuple[int, ...]] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.errors.values())

    @property
    def ok(self) -> bool:
        return not self.strict or self.max_error <= self.tol

    def failures(self) -> List[str]:
        """One sentence per failing output, naming it and the input."""
        if not self.strict:
            return []
        return [
            f'output {name} on input {self.worst_input[name]}: max '
            f'relative error {err:.2e} > {self.tol:.0e}'
            for name, err in self.errors.items() if err > self.tol
        ]

    def table(self) -> str:
        lines = ['checked inputs:']
        lines += [f'  {label:<28} {tuple(shape)}'
                  for label, shape in self.inputs]
        width = max(len(n) for n in self.errors)
        lines.append(f"  {'output'.ljust(width)}  {'shape (first input)':<22}"
                     '  max rel err')
        lines += [
            f'  {name.ljust(width)}  {str(self.shapes[name]):<22}  {err:.2e}'
            for name, err in self.errors.items()
        ]
        if not self.strict:
            lines.append(f'max relative error {self.max_error:.2e} '
                         '(reported, not judged)')
            return '\n'.join(lines)
        verdict = 'OK' if self.ok else 'FAILED'
        lines.append(f'max relative error {self.max_error:.2e} '
                     f"{'<=' if self.ok else '>'} {self.tol:.0e}: {verdict}")
        lines += [f'  {failure}' for failure in self.failures()]
        return '\n'.join(lines)


def check_runtime(run: Callable[[torch.Tensor], Sequence],
                  names: Sequence[str],
                  module: nn.Module,
                  inputs: Sequence[Tuple[str, torch.Tensor]],
                  tol: float,
                  strict: bool = True,
                  runtime: str = 'the export') -> RuntimeCheck:
    """``run`` (a runtime's outputs, in the order of ``names``, from a
    contiguous float32 CPU batch) against ``module`` in PyTorch on each
    ``(label, batch)`` of ``inputs``.

    :class:`ParityError` names the output and the input where the two
    disagree in number of outputs or shape, or where either holds a NaN or
    an infinity, whatever ``strict`` says.
    """
    result = RuntimeCheck(tol=tol, strict=strict)
    module = module.eval()
    for label, batch in inputs:
        batch = batch.detach().cpu().float().contiguous()
        input_label = f'{label} {tuple(batch.shape)}'
        with torch.no_grad():
            expected = module(batch)
        errors = compare_outputs(
            names, run(batch), expected, input_label=input_label,
            runtime=runtime)
        result.inputs.append((label, tuple(batch.shape)))
        for name, torch_out in zip(names, expected):
            if errors[name] > result.errors.get(name, -1.0):
                result.errors[name] = errors[name]
                result.worst_input[name] = input_label
            result.shapes.setdefault(name, tuple(torch_out.shape))
    return result
