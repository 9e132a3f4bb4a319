"""Layer normalisation over the last axis, fused into one node."""
from __future__ import annotations

import numpy as np

from minigrad.function import Function


class LayerNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance (divide by n).

    x: (..., D); weight, bias: (D,). With xhat the normalised input and g the upstream gradient:
      dx = rstd * (g w - mean(g w) - xhat * mean(g w * xhat)),  dw = sum(g * xhat),  db = sum(g).
    """

    def forward(self, x, weight=None, bias=None, eps=1e-5):
        d = x.shape[-1]
        # row sums as one BLAS product (...,); BLAS sums in x's dtype, like np.mean on float32, but
        # not pairwise: for d in the thousands the difference is a few float32 ulps
        mean = x @ np.ones(d, dtype=x.dtype)
        mean /= d
        xhat = x - mean[..., None]
        var = np.einsum("...d,...d->...", xhat, xhat)[..., None]   # sum of squares, no x^2 temporary
        var *= x.dtype.type(1.0 / d)
        var += x.dtype.type(eps)
        rstd = np.reciprocal(np.sqrt(var, out=var), out=var)       # (..., 1)
        xhat *= rstd
        if any(self.needs_input_grad):
            self.save_for_backward(xhat, rstd, weight)
            y = xhat * weight if weight is not None else xhat.copy()
        else:                                   # no backward: scale in place (same dtype as above)
            y = xhat
            if weight is not None:
                y = np.multiply(xhat, weight, out=xhat if weight.dtype == xhat.dtype else None)
        if bias is not None:
            y += bias
        return y

    def backward(self, grad):
        xhat, rstd, weight = self.saved_tensors
        d = xhat.shape[-1]
        gxhat = grad * weight if weight is not None else grad.copy()
        gx = None
        if self.needs_input_grad[0]:
            mean_g = np.mean(gxhat, axis=-1, keepdims=True)
            mean_gx = np.einsum("...d,...d->...", gxhat, xhat)[..., None] / xhat.dtype.type(d)
            gx = gxhat
            gx -= mean_g
            gx -= xhat * mean_gx
            gx *= rstd
        grads = [gx]
        g2 = grad.reshape(-1, d)
        if len(self.needs_input_grad) > 1:
            grads.append(np.einsum("nd,nd->d", g2, xhat.reshape(-1, d)) if self.needs_input_grad[1] else None)
        if len(self.needs_input_grad) > 2:
            grads.append(g2.sum(axis=0) if self.needs_input_grad[2] else None)
        return tuple(grads)


def layer_norm(x, weight=None, bias=None, eps: float = 1e-5):
    """Normalise the last axis to zero mean and unit (biased) variance, then scale and shift."""
    if weight is None and bias is not None:
        raise ValueError("layer_norm: a bias without a weight is not supported")
    args = [a for a in (x, weight, bias) if a is not None]
    return LayerNorm.apply(*args, eps=eps)
