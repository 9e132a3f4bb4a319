"""Root-mean-square normalisation over the last axis (Llama, Qwen, Gemma), fused into one node."""
from __future__ import annotations

import numpy as np

from minigrad.function import Function


class RMSNorm(Function):
    """y = x * r * (offset + w),  r = 1 / sqrt(mean(x^2) + eps)  (no mean subtracted, no bias).

    x: (..., D); w: (D,). ``offset`` is 0 for Llama/Qwen and 1 for Gemma, whose checkpoints store
    w - 1 (the norm starts as the identity when w = 0). Computed in x's dtype (float32 stays
    float32, as Hugging Face computes it for float32 models). With xhat = x r, v = offset + w:
      dx = r * (g v - xhat * mean(g v * xhat)),   dw = sum over rows of g * xhat.
    """

    def forward(self, x, weight=None, eps=1e-6, offset=0.0):
        d = x.shape[-1]
        ms = np.einsum("...d,...d->...", x, x)[..., None]   # sum of squares, no x^2 temporary
        ms *= x.dtype.type(1.0 / d)
        ms += x.dtype.type(eps)
        r = np.reciprocal(np.sqrt(ms, out=ms), out=ms)       # (..., 1)
        xhat = x * r
        scale = None
        if weight is not None:
            scale = weight + weight.dtype.type(offset) if offset else weight
        if any(self.needs_input_grad):
            self.save_for_backward(xhat, r, scale)
            return xhat * scale if scale is not None else xhat
        if scale is not None:              # no backward: scale in place when the dtypes agree
            if scale.dtype == xhat.dtype:
                np.multiply(xhat, scale, out=xhat)
            else:
                xhat = xhat * scale
        return xhat

    def backward(self, grad):
        xhat, r, scale = self.saved_tensors
        d = xhat.shape[-1]
        gxhat = grad * scale if scale is not None else grad.copy()
        gx = None
        if self.needs_input_grad[0]:
            mean_gx = np.einsum("...d,...d->...", gxhat, xhat)[..., None]
            mean_gx *= xhat.dtype.type(1.0 / d)
            gx = gxhat
            gx -= xhat * mean_gx
            gx *= r
        if len(self.needs_input_grad) == 1:
            return gx
        gw = None
        if self.needs_input_grad[1]:
            gw = np.einsum("nd,nd->d", grad.reshape(-1, d), xhat.reshape(-1, d))
        return gx, gw


def rms_norm(x, weight=None, eps: float = 1e-6, offset: float = 0.0):
    """``x / sqrt(mean(x^2, -1) + eps) * (offset + weight)`` over the last axis, one graph node.
    offset=1 is Gemma's ``(1 + w)``; weight None: no scale at all."""
    if weight is None:
        return RMSNorm.apply(x, eps=eps, offset=offset)
    return RMSNorm.apply(x, weight, eps=eps, offset=offset)
