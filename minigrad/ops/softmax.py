"""Softmax and log-softmax along one axis, each one fused node.

Both subtract the row maximum first, so logits of +-1e4 do not overflow, and a row that
contains -inf (a causal mask) gives exactly zero probability there.
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.tensor import _raw


def _row_max(x: np.ndarray, axis: int) -> np.ndarray:
    # fmax skips NaN checks that max makes, about twice as fast; a row holding NaN ends as NaN either way
    m = np.fmax.reduce(x, axis=axis, keepdims=True)
    if not np.isfinite(m).all():  # a row of only -inf: shift by 0 instead of -inf (avoids inf - inf)
        m = np.where(np.isfinite(m), m, x.dtype.type(0))
    return m


def _normalize_last_axis(y: np.ndarray) -> None:
    """y /= y.sum(-1) in place, as a multiply by the reciprocal of each row's sum (einsum sums the
    rows without the temporaries of np.sum's pairwise reduction)."""
    total = np.einsum("...k->...", y)[..., None]
    y *= np.reciprocal(total, out=total)


def _softmax_backward(y: np.ndarray, grad: np.ndarray, axis: int) -> np.ndarray:
    # dx = y * (g - sum(g * y))     (Jacobian diag(y) - y y^T applied to g)
    gx = grad - np.sum(grad * y, axis=axis, keepdims=True)
    gx *= y
    return gx


class Softmax(Function):
    def forward(self, x, axis):
        y = x - _row_max(x, axis)
        np.exp(y, out=y)
        if axis in (-1, x.ndim - 1):
            _normalize_last_axis(y)
        else:
            y /= np.sum(y, axis=axis, keepdims=True)
        self.save_for_backward(y)
        self.axis = axis
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return _softmax_backward(y, grad, self.axis)


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


class MaskedSoftmax(Function):
    """softmax(where(mask, -inf, x * scale + bias)) along the last axis, in one node.

    The attention step ``softmax(scores.masked_fill(mask, -inf) / sqrt(d_k))`` as one pass over
    the scores instead of three (mask, scale, softmax), each of which would allocate a
    (b, H, T, T) array. Masked positions get probability exactly 0. ``bias`` (optional, e.g. an
    (H, T, T_keys) position bias: ALiBi, T5) is added to the scaled scores in the same pass.
    Backward, with s = x * scale + bias and y = softmax(s):
        ds = y * (g - sum(g * y));  dx = scale * ds;  dbias = ds summed over the axes bias was
        broadcast along (the engine's unbroadcast does the sum). Both are 0 where masked (y = 0).
    """

    def forward(self, x, bias=None, mask=None, scale=1.0):
        y = x * x.dtype.type(scale)
        if bias is not None:
            y += bias                                 # (H, T, T_keys) broadcasts over the batch
        np.copyto(y, -np.inf, where=mask)             # mask broadcasts against x's last two axes
        y -= _row_max(y, -1)
        np.exp(y, out=y)
        _normalize_last_axis(y)
        self.save_for_backward(y)
        self.scale, self.has_bias = scale, bias is not None
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        ds = _softmax_backward(y, grad, -1)
        if not self.has_bias:
            if self.scale != 1.0:
                ds *= ds.dtype.type(self.scale)
            return ds
        needs_x, needs_bias = self.needs_input_grad
        gx = None
        if needs_x and self.scale != 1.0:
            # ds is the bias's gradient too: scale a copy only when the bias needs it
            gx = ds * ds.dtype.type(self.scale) if needs_bias else np.multiply(ds, ds.dtype.type(self.scale), out=ds)
        elif needs_x:
            gx = ds
        return gx, (ds if needs_bias else None)


def softmax(x, axis: int = -1):
    """exp(x) / sum(exp(x)) along ``axis``."""
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis: int = -1):
    """x - log(sum(exp(x))) along ``axis``."""
    return LogSoftmax.apply(x, axis=axis)


def masked_softmax(x, mask, scale: float = 1.0, bias=None):
    """``softmax(masked_fill(x * scale + bias, mask, -inf), -1)`` fused; ``mask`` (bool, broadcastable
    to x, True = hidden) is typically a causal mask of shape (T, T_keys); ``bias`` (array or Tensor,
    broadcastable to x; None for none) typically a position bias of shape (H, T, T_keys)."""
    m = np.asarray(_raw(mask), dtype=bool)
    if bias is None:
        return MaskedSoftmax.apply(x, mask=m, scale=float(scale))
    return MaskedSoftmax.apply(x, bias, mask=m, scale=float(scale))
