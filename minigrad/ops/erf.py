"""The error function erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, in NumPy, and as an op.

NumPy has no erf (SciPy has, and minigrad does not depend on SciPy), and ``math.erf`` on one
element at a time is far too slow for activations. :func:`erf_array` evaluates W. J. Cody's
rational Chebyshev approximations ("Rational Chebyshev approximations for the error function",
Math. Comp. 23 (1969); the coefficients of his Fortran CALERF), which are accurate to about one
unit in the last place of a float64 on three ranges of y = |x|:

    y <= 0.46875:     erf(y)  = y P1(y^2) / Q1(y^2)
    0.46875 < y <= 4: erfc(y) = exp(-y^2) P2(y) / Q2(y)
    y > 4:            erfc(y) = exp(-y^2) / y * (1/sqrt(pi) + R(1/y^2) / y^2),  R = P3 / Q3

and erf(-x) = -erf(x). A float32 input is evaluated in float32 (the rational functions are
well-conditioned, so the error stays a few float32 ulps) and stays float32.
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function

# Cody's coefficients, lowest index first as in CALERF: A/B for erf on [0, 0.46875], C/D for erfc on
# (0.46875, 4], P/Q for erfc beyond 4.
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02, 3.20937758913846947e03,
      1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03, 2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01, 2.98635138197400131e02,
      8.81952221241769090e02, 1.71204761263407058e03, 2.05107837782607147e03, 1.23033935479799725e03,
      2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02, 1.62138957456669019e03,
      3.29079923573345963e03, 4.36261909014324716e03, 3.43936767414372164e03, 1.23033935480374942e03)
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2,
      6.58749161529837803e-4, 1.63153871373020978e-2)
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1, 6.05183413124413191e-2,
      2.33520497626869185e-3)
_INV_SQRT_PI = 5.6418958354775628695e-1
_SMALL, _LARGE = 0.46875, 4.0


def _erf_small(y):
    """erf(y) for 0 <= y <= 0.46875."""
    z = y * y
    num = _A[4] * z
    den = z.copy()
    for a, b in zip(_A[:3], _B[:3]):
        num += a
        num *= z
        den += b
        den *= z
    num += _A[3]
    den += _B[3]
    num *= y
    return np.divide(num, den, out=num)


def _exp_minus_square(y):
    """exp(-y^2) without losing the low bits of y^2: y = h + (y - h) with h = y rounded down to 1/16,
    so that y^2 = h^2 + (y - h)(y + h) and h^2 is exact (Cody's device)."""
    if y.dtype == np.float32:            # the rounding of y^2 is far below float32's resolution
        return np.exp(-(y * y))
    h = np.floor(y * 16) / 16
    rest = (y - h) * (y + h)
    h *= h
    out = np.exp(-h, out=h)
    out *= np.exp(-rest, out=rest)
    return out


def _erfc_middle(y):
    """erfc(y) for 0.46875 < y <= 4."""
    num = _C[8] * y
    den = y.copy()
    for c, d in zip(_C[:7], _D[:7]):
        num += c
        num *= y
        den += d
        den *= y
    num += _C[7]
    den += _D[7]
    num /= den
    num *= _exp_minus_square(y)
    return num


def _erfc_large(y):
    """erfc(y) for y > 4 (0 below the smallest float, from y ~ 27 in float64 and ~ 10 in float32)."""
    y = np.minimum(y, 30)                # erfc(30) underflows to 0 already; inf would give inf - inf
    z = 1 / (y * y)
    num = _P[5] * z
    den = z.copy()
    for p, q in zip(_P[:4], _Q[:4]):
        num += p
        num *= z
        den += q
        den *= z
    num += _P[4]
    den += _Q[4]
    num /= den
    num *= z
    np.subtract(y.dtype.type(_INV_SQRT_PI), num, out=num)
    num /= y
    with np.errstate(under="ignore"):
        num *= _exp_minus_square(y)
    return num


def erf_array(x: np.ndarray) -> np.ndarray:
    """erf of every element of a float array (float32 in, float32 out; anything else as float64).

    Both common branches are evaluated on the whole array (clipped to their ranges) and merged with
    a mask: cheaper than gathering and scattering each branch's elements. The tail beyond 4 only
    matters in float64 (in float32 erf(4) already rounds to 1) and is gathered when present.
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    shape, x = x.shape, x.reshape(-1)    # 1-d: NumPy turns 0-d results into scalars, which out= rejects
    y = np.abs(x)
    beyond_small = y > _SMALL
    if not beyond_small.any():
        out = _erf_small(y)
    else:
        out = _erfc_middle(np.clip(y, _SMALL, _LARGE))
        np.subtract(1, out, out=out)
        small = y <= _SMALL              # (NaN is neither small nor large: it stays NaN)
        if small.any():
            np.copyto(out, _erf_small(np.minimum(y, _SMALL)), where=small)
        large = y > _LARGE
        if x.dtype == np.float64 and large.any():
            out[large] = 1 - _erfc_large(y[large])
    np.copysign(out, x, out=out)         # erf is odd
    return out.reshape(shape)


class Erf(Function):
    def forward(self, x):
        if any(self.needs_input_grad):
            self.save_for_backward(x)
        return erf_array(x)

    def backward(self, grad):
        # d/dx erf(x) = 2/sqrt(pi) exp(-x^2)
        (x,) = self.saved_tensors
        g = np.exp(-(x * x))
        g *= x.dtype.type(2 * _INV_SQRT_PI)
        g *= grad
        return g


def erf(x):
    """The error function, element-wise (Cody's rational approximations, float64-accurate)."""
    return Erf.apply(x)
