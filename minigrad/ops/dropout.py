"""Inverted dropout: zero each element with probability p, scale the survivors by 1/(1-p)."""
from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad import random as _random


class Dropout(Function):
    """y = x * mask / (1 - p), mask ~ Bernoulli(1 - p).   Backward: dx = g * mask / (1 - p)."""

    def forward(self, x, p, rng):
        self.keep = rng.random(x.shape, dtype=np.float32) >= np.float32(p)
        self.scale = x.dtype.type(1.0 / (1.0 - p))
        y = x * self.keep
        y *= self.scale
        return y

    def backward(self, grad):
        gx = grad * self.keep
        gx *= self.scale
        return gx

    def release(self):
        super().release()
        self.keep = None


def dropout(x, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None):
    """Inverted dropout; the identity (the same tensor) when not training or when p == 0."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, p=p, rng=rng if rng is not None else _random.default_generator())
