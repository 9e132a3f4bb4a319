"""The basic layers: Linear, Embedding, LayerNorm, Dropout and activations.

Parameters are initialised from minigrad's default generator (``minigrad.manual_seed``), with
PyTorch's default schemes so that a model built here trains like the book's.
"""
from __future__ import annotations

import math

import numpy as np

from minigrad import ops
from minigrad import random as _random
from minigrad.nn.init import uninitialised
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter


def _uniform(shape, bound: float) -> np.ndarray:
    empty = uninitialised(shape)                                      # inside nn.skip_init()
    if empty is not None:
        return empty
    u = _random.default_generator().random(shape, dtype=np.float32)  # [0, 1), drawn in float32
    u *= 2 * bound
    u -= bound
    return u


class Linear(Module):
    """y = x W^T + b.   x: (..., in_features) -> y: (..., out_features).

    ``weight`` has shape (out_features, in_features), as in PyTorch, so the book's state dicts
    load unchanged; the product uses W^T as a view that BLAS reads directly (no transposed copy).
    Initialised U(-1/sqrt(in), 1/sqrt(in)), PyTorch's default.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features) if in_features else 0.0
        self.weight = Parameter(_uniform((out_features, in_features), bound))
        if bias:
            self.bias = Parameter(_uniform((out_features,), bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A lookup table: ids (...) -> rows of ``weight`` (num_embeddings, embedding_dim), N(0, 1) init."""

    def __init__(self, num_embeddings: int, embedding_dim: int):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        shape = (num_embeddings, embedding_dim)
        w = uninitialised(shape)                                      # inside nn.skip_init()
        if w is None:
            w = _random.default_generator().standard_normal(shape, dtype=np.float32)
        self.weight = Parameter(w)

    def forward(self, ids):
        return ops.embedding(ids, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalise the last axis (biased variance, ``eps`` inside the square root), then scale
    by ``weight`` and shift by ``bias``. x: (..., D) -> (..., D)."""

    def __init__(self, normalized_shape: int, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True):
        super().__init__()
        if not isinstance(normalized_shape, (int, np.integer)):  # PyTorch's (D,) spelling
            if len(normalized_shape) != 1:
                raise ValueError(
                    f"LayerNorm normalises the last axis only; got normalized_shape={tuple(normalized_shape)}, "
                    f"pass the size of the last axis"
                )
            (normalized_shape,) = normalized_shape
        self.normalized_shape, self.eps = int(normalized_shape), eps
        if elementwise_affine:
            self.weight = Parameter(np.ones(normalized_shape, dtype=np.float32))
            self.bias = Parameter(np.zeros(normalized_shape, dtype=np.float32)) if bias else None
        else:
            self.weight = self.bias = None

    def forward(self, x):
        return ops.layer_norm(x, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"({self.normalized_shape},), eps={self.eps}"


class Dropout(Module):
    """Inverted dropout with its own random generator (seeded from ``minigrad.manual_seed``), so
    its masks can be reproduced and its state saved in a checkpoint (``self.rng``)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p
        self.rng = _random.new_generator()

    def forward(self, x):
        return ops.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GELU(Module):
    """GPT-2's GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

    def forward(self, x):
        return ops.gelu(x)


class ReLU(Module):
    def forward(self, x):
        return ops.relu(x)


class Sigmoid(Module):
    def forward(self, x):
        return ops.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return ops.tanh(x)


class Identity(Module):
    def forward(self, x):
        return x
