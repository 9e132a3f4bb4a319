"""``clip_grad_norm_``: rescale gradients so that their combined norm is at most ``max_norm``.

The book (appendix D) clips after the warmup with
``torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)``. The combined norm is the norm
of all gradients concatenated into one vector, computed here without making that vector: for the
2-norm, ``sqrt(sum over parameters of sum(g * g))``, each parameter's sum taken chunk by chunk and
accumulated in a Python float (float64), so 163M float32 values lose no precision to the summation.
"""
from __future__ import annotations

import math

import numpy as np

from minigrad.optim.optimizer import chunked
from minigrad.tensor import Tensor


def _sum_of_powers(g: np.ndarray, p: float) -> float:
    """``sum(|g| ** p)`` over all elements of ``g``, accumulated in float64."""
    total = 0.0
    if p == 2.0:
        for c, in chunked(g, scratch=0):
            flat = c.reshape(-1)
            total += float(np.dot(flat, flat))
    elif p == 1.0:
        for c, s in chunked(g):
            total += float(np.abs(c, out=s).sum())
    else:
        for c, s in chunked(g):
            np.abs(c, out=s)
            total += float(np.power(s, p, out=s).sum())
    return total


def _largest_abs(g: np.ndarray) -> float:
    """``max(|g|)`` over all elements of ``g`` (0 for an empty array); NaN if any element is NaN."""
    largest = 0.0
    for c, s in chunked(g):
        if c.size:
            m = float(np.abs(c, out=s).max())  # NaN if the chunk has a NaN
            if math.isnan(m):
                return m
            largest = max(largest, m)
    return largest


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale the gradients of ``parameters`` in place so that their combined norm is <= ``max_norm``.

    Args:
        parameters: a tensor or an iterable of tensors; those whose ``.grad`` is None are ignored.
        max_norm: the largest norm allowed.
        norm_type: the p of the p-norm (``2.0``, ``1.0``, ``math.inf`` for the largest absolute value, ...).
        error_if_nonfinite: raise if the combined norm is NaN or infinite.

    Returns:
        The combined norm of the gradients *before* clipping, as a Python float.

    As in PyTorch, every gradient is multiplied by ``max_norm / (total_norm + 1e-6)`` when that factor
    is below 1. If the norm is NaN or infinite (and ``error_if_nonfinite`` is False) the gradients are
    left as they are and the non-finite norm is returned, so the caller can skip the step (PyTorch
    would multiply them by NaN or 0 instead).
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not max_norm >= 0.0:
        raise ValueError(f"max_norm must be a number >= 0, got {max_norm}")
    if not norm_type > 0.0:
        raise ValueError(f"norm_type must be > 0 (e.g. 2.0 or math.inf), got {norm_type}")
    grads = [p.grad for p in parameters if p.grad is not None]
    for g in grads:
        if not isinstance(g, np.ndarray):
            raise TypeError(f".grad must be a NumPy array, got {type(g).__name__}")
    if not grads:
        return 0.0

    if math.isinf(norm_type):
        total = max(_largest_abs(g) for g in grads)
    else:
        total = sum(_sum_of_powers(g, norm_type) for g in grads) ** (1.0 / norm_type)

    if not math.isfinite(total):
        if error_if_nonfinite:
            raise FloatingPointError(f"the {norm_type}-norm of the gradients is {total}; they contain "
                                     "NaN or Inf (try minigrad.detect_anomaly() to find where)")
        return total
    scale = max_norm / (total + 1e-6)
    if scale < 1.0:
        for g in grads:
            np.multiply(g, scale, out=g)  # a Python float keeps float32 gradients float32
    return total
