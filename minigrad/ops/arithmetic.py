"""Element-wise arithmetic with NumPy broadcasting.

Each backward returns the gradient at the broadcast (output) shape; the engine sums it back down to
each input's shape (see ``minigrad.tensor.unbroadcast``).
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.ops.unary import astype
from minigrad.tensor import DEFAULT_DTYPE, _raw


class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad  # d(a+b)/da = d(a+b)/db = 1


class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        return grad, (-grad if self.needs_input_grad[1] else None)  # d(a-b)/db = -1


class Mul(Function):
    def forward(self, a, b):
        # keep only what backward will read: b for da, a for db
        self.save_for_backward(a if self.needs_input_grad[1] else None, b if self.needs_input_grad[0] else None)
        return a * b

    def backward(self, grad):
        a, b = self.saved_tensors
        ga = grad * b if self.needs_input_grad[0] else None  # d(ab)/da = b
        gb = grad * a if self.needs_input_grad[1] else None  # d(ab)/db = a
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        self.save_for_backward(a if self.needs_input_grad[1] else None, b)
        return a / b

    def backward(self, grad):
        a, b = self.saved_tensors
        ga = grad / b if self.needs_input_grad[0] else None  # d(a/b)/da = 1/b
        gb = -grad * a / (b * b) if self.needs_input_grad[1] else None  # d(a/b)/db = -a/b^2
        return ga, gb


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, grad):
        return -grad


class Pow(Function):
    """``x ** p`` for a constant (non-differentiable) exponent ``p``."""

    def forward(self, x, exponent: float):
        self.save_for_backward(x)
        self.exponent = exponent
        return x ** exponent

    def backward(self, grad):
        (x,) = self.saved_tensors
        p = self.exponent
        if p == 0:
            return np.zeros_like(grad)  # x^0 = 1 is constant (avoid 0 * 0^-1 = NaN at x = 0)
        return grad * (p * x ** (p - 1))  # d(x^p)/dx = p x^(p-1)


def add(a, b):
    """a + b (broadcasting)."""
    return Add.apply(a, b)


def sub(a, b):
    """a - b (broadcasting)."""
    return Sub.apply(a, b)


def mul(a, b):
    """a * b (broadcasting)."""
    return Mul.apply(a, b)


def div(a, b):
    """a / b (broadcasting). Dividing integers gives float32 (as in PyTorch), not NumPy's float64."""
    if not any(np.asarray(_raw(v)).dtype.kind in "fc" for v in (a, b)):
        a = astype(a, DEFAULT_DTYPE)
    return Div.apply(a, b)


def neg(a):
    return Neg.apply(a)


def pow(x, exponent):
    """x ** exponent for a scalar exponent (a Python or NumPy number, not a tensor)."""
    if hasattr(exponent, "requires_grad") or np.ndim(exponent) != 0:
        raise TypeError("pow supports a scalar (constant) exponent only; use exp(b * log(a)) for a tensor one")
    return Pow.apply(x, exponent=float(exponent) if not float(exponent).is_integer() else int(exponent))
