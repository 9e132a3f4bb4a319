"""GELU, fused into one node: GPT-2's tanh form, and the exact erf form BERT uses.

    gelu(x) = 0.5 x (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)

Computed as the equal x * sigmoid(2u), because 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)): one
exp instead of a tanh, a pass fewer without a graph (and two fewer in backward), and no
cancellation in 1 + tanh(u) for negative x.
"""
from __future__ import annotations

import math

import numpy as np

from minigrad.function import Function
from minigrad.ops.erf import erf_array

_C = math.sqrt(2.0 / math.pi)
_A = 0.044715


class GELU(Function):
    def forward(self, x):
        s = np.asarray(x * x)  # asarray: for a 0-d x NumPy returns a scalar, which out= cannot write
        s *= -2 * _A * _C
        s -= 2 * _C
        s *= x                 # s = -2u
        with np.errstate(over="ignore"):  # exp(-2u) = inf for x below about -9: then gelu(x) = -0
            np.exp(s, out=s)
        s += 1                 # s = 1 + exp(-2u) = 1 / sigmoid(2u)
        if not any(self.needs_input_grad):
            return np.divide(x, s, out=s)   # no backward: the buffer becomes the output
        y = x / s
        np.reciprocal(s, out=s)             # s = sigmoid(2u), for backward
        self.save_for_backward(x, s)
        return y

    def backward(self, grad):
        # y = x s with s = sigmoid(2u):  dy/dx = s + x * 2 s (1 - s) du/dx = s (1 + a (1 - s)),
        # where a = 2 x du/dx = 2 x C (1 + 3A x^2)
        x, s = self.saved_tensors
        a = x * x
        a *= 6 * _A * _C
        a += 2 * _C
        a *= x
        g = np.asarray(1 - s)
        g *= a
        g += 1
        g *= s
        g *= grad
        return g


def gelu(x):
    """GPT-2's GELU (tanh approximation), one graph node with a hand-written backward."""
    return GELU.apply(x)


_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# float32 only: erfc(y) = exp(-y^2) R(y) for y >= 0, with R = P / Q of degree 4 fitted here (Loeb's
# iteratively reweighted linear least squares against math.erfc(y) * exp(y^2) on [0, 4]): relative
# error 2.3e-8, about 3e-7 once evaluated in float32. One branch for every x, all coefficients
# positive (no cancellation), about half the passes of Cody's float64 branches.
_P32 = (0.999999984387835, 0.8671157945283521, 0.36491591328407097, 0.06178625875080884, 1.1736046153615288e-05)
_Q32 = (1.0, 1.9954936713991678, 1.616608149223748, 0.6425817824056649, 0.10995113595750543)


def _horner(coefficients, z):
    out = np.full_like(z, coefficients[-1])
    for c in coefficients[-2::-1]:
        out *= z
        out += c
    return out


_CHUNK = 65536   # elements per pass: a dozen passes over 256 KB stay in the L2 cache (1.6x faster)


def _normal_cdf_float32(x):
    """Phi(x) = erfc(-x / sqrt 2) / 2 for float32 x, accurate in relative terms on both sides (no 1 + erf
    cancellation for x << 0): Phi(-|x|) = exp(-y^2) R(y) / 2 with y = |x| / sqrt 2, Phi(x) = 1 - Phi(-x)."""
    shape, x = x.shape, x.reshape(-1)       # 1-d: NumPy turns 0-d results into scalars, which out= rejects
    if x.size <= _CHUNK:
        return _normal_cdf_chunk(x).reshape(shape)
    out = np.empty_like(x)
    for start in range(0, x.size, _CHUNK):
        out[start:start + _CHUNK] = _normal_cdf_chunk(x[start:start + _CHUNK])
    return out.reshape(shape)


def _normal_cdf_chunk(x):
    y = np.abs(x)
    y *= np.float32(_INV_SQRT2)
    z = np.minimum(y, np.float32(4.0))      # beyond 4, erfc < 2e-8: R's slow change hardly matters there
    tail = _horner(_P32, z)
    tail /= _horner(_Q32, z)
    y *= y
    np.negative(y, out=y)
    tail *= np.exp(y, out=y)                # erfc(|x| / sqrt 2)
    tail *= np.float32(0.5)                 # t = Phi(-|x|)
    # Phi(x) = t + [x > 0] (1 - 2t): exactly t where x <= 0; arithmetic is far faster than a masked write
    flip = np.multiply(tail, np.float32(-2), out=z)
    flip += np.float32(1)
    flip *= (x > 0)
    tail += flip
    return tail


class GELUErf(Function):
    """The exact GELU, gelu(x) = x Phi(x) with the standard normal CDF Phi(x) = (1 + erf(x / sqrt 2)) / 2,
    as BERT's ``hidden_act: "gelu"`` (and PyTorch's ``gelu(approximate="none")``) computes it.
    float64 evaluates Cody's erf (``minigrad.ops.erf``); float32 a one-branch erfc fitted for float32."""

    def forward(self, x):
        if x.dtype == np.float32:
            phi = _normal_cdf_float32(np.asarray(x))
        else:
            phi = erf_array(x * x.dtype.type(_INV_SQRT2))
            phi += 1
            phi *= 0.5                                # phi = Phi(x)
        if not any(self.needs_input_grad):
            return np.multiply(x, phi, out=phi)
        self.save_for_backward(x, phi)
        return x * phi

    def backward(self, grad):
        # d/dx x Phi(x) = Phi(x) + x Phi'(x),  Phi'(x) = exp(-x^2 / 2) / sqrt(2 pi)
        x, phi = self.saved_tensors
        g = np.asarray(x * x)
        g *= -0.5
        np.exp(g, out=g)
        g *= x.dtype.type(_INV_SQRT_2PI)
        g *= x
        g += phi
        g *= grad
        return g


def gelu_erf(x):
    """The exact GELU, x (1 + erf(x / sqrt 2)) / 2 (BERT's), one graph node with a hand-written backward."""
    return GELUErf.apply(x)
