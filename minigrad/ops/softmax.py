"""Softmax and log-softmax along one axis, each one fused node.

Both subtract the row maximum first, so logits of +-1e4 do not overflow, and a row that
contains -inf (a causal mask) gives exactly zero probability there.
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function


def _row_max(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    if not np.isfinite(m).all():  # a row of only -inf: shift by 0 instead of -inf (avoids inf - inf)
        m = np.where(np.isfinite(m), m, x.dtype.type(0))
    return m


class Softmax(Function):
    def forward(self, x, axis):
        y = x - _row_max(x, axis)
        np.exp(y, out=y)
        y /= np.sum(y, axis=axis, keepdims=True)
        self.save_for_backward(y)
        self.axis = axis
        return y

    def backward(self, grad):
        # dx = y * (g - sum(g * y))     (Jacobian diag(y) - y y^T applied to g)
        (y,) = self.saved_tensors
        gx = grad - np.sum(grad * y, axis=self.axis, keepdims=True)
        gx *= y
        return gx


class LogSoftmax(Function):
    def forward(self, x, axis):
        shifted = x - _row_max(x, axis)
        log_norm = np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))
        shifted -= log_norm
        self.save_for_backward(shifted)
        self.axis = axis
        return shifted

    def backward(self, grad):
        # dx = g - softmax(x) * sum(g)
        (y,) = self.saved_tensors
        gx = np.exp(y)
        gx *= np.sum(grad, axis=self.axis, keepdims=True)
        np.subtract(grad, gx, out=gx)
        return gx


def softmax(x, axis: int = -1):
    """exp(x) / sum(exp(x)) along ``axis``."""
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis: int = -1):
    """x - log(sum(exp(x))) along ``axis``."""
    return LogSoftmax.apply(x, axis=axis)
