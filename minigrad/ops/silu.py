"""SiLU (swish) and the SwiGLU product ``silu(a) * b`` of the gated feed-forwards, each one node.

    silu(x) = x * sigmoid(x)

Gated feed-forwards (Llama, Qwen) compute ``down(silu(gate x) * up x)``; fusing the activation
with the product saves a graph node and an (N, hidden) array in forward and in backward.
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) in x's dtype; exp overflows to inf for very negative x, giving exactly 0."""
    s = np.empty_like(x)          # an array even for 0-d x (a ufunc would return a scalar)
    np.negative(x, out=s)
    with np.errstate(over="ignore"):
        np.exp(s, out=s)
    s += 1
    return np.reciprocal(s, out=s)


class SiLU(Function):
    def forward(self, x):
        s = _sigmoid(x)
        y = x * s
        if any(self.needs_input_grad):
            self.save_for_backward(x, s)
        return y

    def backward(self, grad):
        # y = x s:  dy/dx = s + x s (1 - s) = s (1 + x (1 - s))
        x, s = self.saved_tensors
        g = np.asarray(1 - s)
        g *= x
        g += 1
        g *= s
        g *= grad
        return g


class SwiGLU(Function):
    """y = silu(a) * b = a s b with s = sigmoid(a).
      da = g b s (1 + a (1 - s)),   db = g a s."""

    def forward(self, a, b):
        s = _sigmoid(a)
        if not any(self.needs_input_grad):
            s *= a
            s *= b
            return s
        silu_a = np.multiply(a, s, out=np.empty_like(a))
        self.save_for_backward(a, b, s, silu_a)
        return silu_a * b

    def backward(self, grad):
        a, b, s, silu_a = self.saved_tensors
        ga = gb = None
        if self.needs_input_grad[1]:
            gb = grad * silu_a
        if self.needs_input_grad[0]:
            ga = np.asarray(1 - s)
            ga *= a
            ga += 1
            ga *= s
            ga *= b
            ga *= grad
        return ga, gb


def silu(x):
    """x * sigmoid(x) (also called swish), one graph node."""
    return SiLU.apply(x)


def swiglu(a, b):
    """silu(a) * b, one graph node: the gate of SwiGLU feed-forwards (a = gate x, b = up x)."""
    return SwiGLU.apply(a, b)
