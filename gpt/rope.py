"""Rotary position embeddings (RoPE; beyond the book, an alternative to learned positions).

Instead of adding a position vector to the token embedding, RoPE rotates each query and key
inside attention: the pair (x_i, x_{i + hd/2}) of a vector at position p is rotated by the
angle p * theta_i, theta_i = base^(-2i/hd). A dot product of a rotated query and key then depends
only on their distance, which is what attention needs. This module uses the "half split" pairing
(GPT-NeoX, Llama).
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function


class _Rotate(Function):
    """out = [x1 cos - x2 sin, x2 cos + x1 sin] for x = [x1, x2] split in halves of the last axis.

    The rotation is orthogonal, so its backward is the rotation by the opposite angle:
    dx1 = g1 cos + g2 sin,  dx2 = g2 cos - g1 sin.
    """

    def forward(self, x, cos, sin):
        half = x.shape[-1] // 2
        x1, x2 = x[..., :half], x[..., half:]
        self.cos, self.sin = cos, sin
        out = np.empty_like(x)
        np.multiply(x1, cos, out=out[..., :half])
        out[..., :half] -= x2 * sin
        np.multiply(x2, cos, out=out[..., half:])
        out[..., half:] += x1 * sin
        return out

    def backward(self, grad):
        half = grad.shape[-1] // 2
        g1, g2 = grad[..., :half], grad[..., half:]
        gx = np.empty_like(grad)
        np.multiply(g1, self.cos, out=gx[..., :half])
        gx[..., :half] += g2 * self.sin
        np.multiply(g2, self.cos, out=gx[..., half:])
        gx[..., half:] -= g1 * self.sin
        return gx


class RotaryEmbedding:
    """Precomputed rotation angles for ``context_length`` positions of vectors of size ``head_dim``.

    ``rope(x, start_pos)`` rotates x: (b, H, T, head_dim) as if its tokens sat at positions
    start_pos .. start_pos + T - 1.
    """

    def __init__(self, head_dim: int, context_length: int, base: float = 10000.0):
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        inv_freq = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)   # (hd/2,)
        angles = np.outer(np.arange(context_length, dtype=np.float64), inv_freq)       # (ctx, hd/2)
        self.cos, self.sin = np.cos(angles), np.sin(angles)
        self.head_dim, self.context_length = head_dim, context_length
        self._tables: dict = {}

    def __call__(self, x, start_pos: int = 0):
        t = x.shape[-2]
        if start_pos + t > self.context_length:
            raise ValueError(f"positions up to {start_pos + t} exceed RoPE's context length {self.context_length}")
        tables = self._tables.get(x.dtype)
        if tables is None:   # computed in float64 once, then kept in each dtype asked for
            tables = self._tables[x.dtype] = (self.cos.astype(x.dtype), self.sin.astype(x.dtype))
        cos, sin = tables[0][start_pos:start_pos + t], tables[1][start_pos:start_pos + t]
        return _Rotate.apply(x, cos=cos, sin=sin)
