"""Inverted dropout: zero each element with probability p, scale the survivors by 1/(1-p)."""
from __future__ import annotations

import math

import numpy as np

from minigrad.function import Function
from minigrad import random as _random


# bit generators whose raw outputs are 64 random bits each
_FULL_64_BIT = (np.random.PCG64, np.random.PCG64DXSM, np.random.Philox, np.random.SFC64)


def keep_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> np.ndarray:
    """Bernoulli(1 - p) draws of ``shape`` (True = keep): an element is kept when its 32 random bits,
    read as an integer u, satisfy u >= p * 2^32, which happens with probability 1 - p (to 2^-32).

    With NumPy's default PCG64 (and other 64-bit generators) the bits are the raw outputs split in
    halves: about twice as fast as ``rng.random(shape, dtype=float32) >= p``, which spends a
    64-bit draw per float32.
    """
    n = math.prod(shape)
    if isinstance(rng.bit_generator, _FULL_64_BIT):
        bits = rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]
    else:  # e.g. MT19937, whose raw outputs hold only 32 random bits each
        bits = rng.integers(0, 2**32, size=n, dtype=np.uint32)
    threshold = np.uint32(min(round(p * 2.0**32), 2**32 - 1))
    return (bits >= threshold).reshape(shape)


class Dropout(Function):
    """y = x * mask / (1 - p), mask ~ Bernoulli(1 - p).   Backward: dx = g * mask / (1 - p)."""

    def forward(self, x, p, rng):
        keep = keep_mask(rng, x.shape, p)
        self.save_for_backward(keep)
        self.scale = x.dtype.type(1.0 / (1.0 - p))
        y = x * keep
        y *= self.scale
        return y

    def backward(self, grad):
        (keep,) = self.saved_tensors
        gx = grad * keep
        gx *= self.scale
        return gx


def dropout(x, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None):
    """Inverted dropout; the identity (the same tensor) when not training or when p == 0."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, p=p, rng=rng if rng is not None else _random.default_generator())
