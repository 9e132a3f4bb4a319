"""Element-wise functions of one tensor. Each saves the cheaper of its input or output."""
from __future__ import annotations

import numpy as np

from minigrad.function import Function


class Exp(Function):
    def forward(self, x):
        y = np.exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * y  # d(e^x)/dx = e^x


class Log(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return np.log(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad / x  # d(ln x)/dx = 1/x


class Sqrt(Function):
    def forward(self, x):
        y = np.sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad / (2 * y)  # d(sqrt x)/dx = 1 / (2 sqrt x)


class Tanh(Function):
    def forward(self, x):
        y = np.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * (1 - y * y)  # d(tanh x)/dx = 1 - tanh^2 x


class Sigmoid(Function):
    def forward(self, x):
        # 1 / (1 + e^-x), written so that neither branch overflows: e^-|x| is always <= 1
        z = np.exp(-np.abs(x))
        y = np.where(x >= 0, 1 / (1 + z), z / (1 + z))
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * y * (1 - y)  # d(sigma)/dx = sigma (1 - sigma)


class ReLU(Function):
    def forward(self, x):
        y = np.maximum(x, 0)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * (y > 0)  # d(max(x,0))/dx = 1 where x > 0, else 0


class Abs(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return np.abs(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * np.sign(x)  # d|x|/dx = sign(x)


class AsType(Function):
    """Change dtype; the gradient is cast back to the input's dtype."""

    def forward(self, x, dtype):
        self.in_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return grad.astype(self.in_dtype)


def exp(x):
    return Exp.apply(x)


def log(x):
    return Log.apply(x)


def sqrt(x):
    return Sqrt.apply(x)


def tanh(x):
    return Tanh.apply(x)


def sigmoid(x):
    return Sigmoid.apply(x)


def relu(x):
    return ReLU.apply(x)


def abs(x):  # noqa: A001 - mirrors numpy/torch
    return Abs.apply(x)


def astype(x, dtype):
    return AsType.apply(x, dtype=np.dtype(dtype))
