"""GELU in GPT-2's tanh form, fused into one node.

    gelu(x) = 0.5 x (1 + tanh(u)),   u = sqrt(2/pi) (x + 0.044715 x^3)
"""
from __future__ import annotations

import math

import numpy as np

from minigrad.function import Function

_C = math.sqrt(2.0 / math.pi)
_A = 0.044715


class GELU(Function):
    def forward(self, x):
        t = np.asarray(x * x)  # asarray: for a 0-d x NumPy returns a scalar, which out= below cannot write
        t *= _A * _C
        t += _C
        t *= x            # t = u = C (x + A x^3)
        np.tanh(t, out=t)  # t = tanh(u)
        self.save_for_backward(x, t)
        y = t + 1
        y *= x
        y *= 0.5
        return y

    def backward(self, grad):
        # dy/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) C (1 + 3A x^2),   t = tanh(u)
        x, t = self.saved_tensors
        x2 = x * x
        x2 *= 3 * _A * _C
        x2 += _C           # du/dx = C (1 + 3A x^2)
        sech2 = np.asarray(t * t)
        np.subtract(1, sech2, out=sech2)   # 1 - t^2
        sech2 *= x2
        sech2 *= x
        sech2 += t
        sech2 += 1
        sech2 *= 0.5
        sech2 *= grad
        return sech2


def gelu(x):
    """GPT-2's GELU (tanh approximation), one graph node with a hand-written backward."""
    return GELU.apply(x)
