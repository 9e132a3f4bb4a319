"""Reductions over an axis, a tuple of axes, or everything (``axis=None``)."""
from __future__ import annotations

import builtins

import numpy as np

from minigrad.function import Function
from minigrad.ops.unary import astype
from minigrad.tensor import DEFAULT_DTYPE, _raw


def _axes(axis, ndim: int) -> tuple[int, ...]:
    """Normalise ``axis`` (None, int or tuple, possibly negative) to a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (int, np.integer)):
        axis = (int(axis),)
    out = []
    for a in axis:
        if not -ndim <= a < builtins.max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % ndim if ndim else 0)
    return tuple(sorted(set(out)))


def _expand(grad: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Re-insert the reduced axes as size-1 axes so ``grad`` broadcasts against the input."""
    return grad if keepdims else np.expand_dims(grad, axes)


class Sum(Function):
    def forward(self, x, axes, keepdims):
        self.shape, self.axes, self.keepdims = x.shape, axes, keepdims
        return np.sum(x, axis=axes, keepdims=keepdims)

    def backward(self, grad):
        # d(sum x)/dx_i = 1: every input element receives the gradient of its sum
        return np.broadcast_to(_expand(grad, self.axes, self.keepdims), self.shape)


class Mean(Function):
    def forward(self, x, axes, keepdims):
        self.shape, self.axes, self.keepdims = x.shape, axes, keepdims
        self.count = int(np.prod([x.shape[a] for a in axes]))
        return np.mean(x, axis=axes, keepdims=keepdims)

    def backward(self, grad):
        # d(mean x)/dx_i = 1/n
        g = _expand(grad, self.axes, self.keepdims) / grad.dtype.type(self.count)
        return np.broadcast_to(g, self.shape)


class Max(Function):
    """Maximum; on ties the gradient is split evenly among the maximal elements."""

    def forward(self, x, axes, keepdims):
        y = np.max(x, axis=axes, keepdims=True)
        is_max = x == y
        self.save_for_backward(is_max, is_max.sum(axis=axes, keepdims=True).astype(x.dtype))
        self.axes, self.keepdims = axes, keepdims
        return y if keepdims else np.squeeze(y, axis=axes)

    def backward(self, grad):
        # d(max x)/dx_i = [x_i is a maximum] / (number of maxima)
        is_max, count = self.saved_tensors
        return is_max * (_expand(grad, self.axes, self.keepdims) / count)


class Var(Function):
    """Variance with ``ddof`` degrees of freedom removed from the divisor (n - ddof)."""

    def forward(self, x, axes, keepdims, ddof):
        n = int(np.prod([x.shape[a] for a in axes]))
        centered = x - np.mean(x, axis=axes, keepdims=True)
        self.save_for_backward(centered)
        self.axes, self.keepdims, self.divisor = axes, keepdims, x.dtype.type(n - ddof)
        return np.sum(centered * centered, axis=axes, keepdims=keepdims) / self.divisor

    def backward(self, grad):
        # d var/dx_i = 2 (x_i - mean) / (n - ddof)   (the mean's own dependence sums to zero)
        (centered,) = self.saved_tensors
        g = _expand(grad, self.axes, self.keepdims) * (2 / self.divisor)
        return centered * g


def sum(x, axis=None, keepdims=False):  # noqa: A001 - mirrors numpy/torch
    return Sum.apply(x, axes=_axes(axis, np.ndim(_raw(x))), keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    if np.asarray(_raw(x)).dtype.kind not in "fc":  # mean of integers: float32, not float64
        x = astype(x, DEFAULT_DTYPE)
    return Mean.apply(x, axes=_axes(axis, np.ndim(_raw(x))), keepdims=keepdims)


def max(x, axis=None, keepdims=False):  # noqa: A001 - mirrors numpy/torch
    return Max.apply(x, axes=_axes(axis, np.ndim(_raw(x))), keepdims=keepdims)


def var(x, axis=None, keepdims=False, ddof=None, unbiased=None):
    """Variance. Like PyTorch, the default divides by n - 1 (``unbiased=True``); pass
    ``unbiased=False`` or ``ddof=0`` for the biased variance that layer norm uses."""
    if ddof is None:
        ddof = 1 if unbiased is None or unbiased else 0
    return Var.apply(x, axes=_axes(axis, np.ndim(_raw(x))), keepdims=keepdims, ddof=ddof)
