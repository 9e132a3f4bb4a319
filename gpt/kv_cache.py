"""A key/value cache for generation (beyond the book).

Without a cache, generating token t+1 runs the model over all t previous tokens again. But the keys
and values of those tokens do not change when a token is appended (attention is causal), so each
layer can keep them and the next step only needs to process the one new token.

The cache is preallocated: one (b, H, max_len, hd) array per layer for keys and one for values,
filled left to right, so appending costs a copy of the new slice, not of the whole history.
"""
from __future__ import annotations

import numpy as np

import minigrad as mg


class KVCache:
    """Keys and values of every layer for the tokens processed so far.

    Args:
        n_layers, batch_size, n_heads, head_dim: the model's shape.
        max_len: how many positions fit (the model's context length, or a longer window for models
            whose positions have no table).
    """

    def __init__(self, n_layers: int, batch_size: int, n_heads: int, head_dim: int, max_len: int,
                 dtype=np.float32):
        shape = (batch_size, n_heads, max_len, head_dim)
        self.keys = [np.empty(shape, dtype=dtype) for _ in range(n_layers)]
        self.values = [np.empty(shape, dtype=dtype) for _ in range(n_layers)]
        self.max_len = max_len
        self.length = 0        # positions filled, identical in every layer once a forward pass ends
        self._pending = 0      # tokens added by the forward pass in progress

    def update(self, layer: int, keys, values):
        """Append this step's keys/values (b, H, T_new, hd) for ``layer``; return all of them so far
        as Tensors (b, H, length + T_new, hd) (views into the cache, no copy)."""
        k, v = keys.data, values.data
        start, new = self.length, k.shape[2]
        if start + new > self.max_len:
            raise ValueError(
                f"the KV cache holds {self.max_len} positions; {start} are used and {new} more do not fit"
            )
        self.keys[layer][:, :, start:start + new] = k
        self.values[layer][:, :, start:start + new] = v
        self._pending = new
        end = start + new
        return mg.Tensor(self.keys[layer][:, :, :end]), mg.Tensor(self.values[layer][:, :, :end])

    def advance(self) -> None:
        """Mark the tokens of the finished forward pass as cached (called by the model)."""
        self.length += self._pending
        self._pending = 0

    def reset(self) -> None:
        self.length = 0
        self._pending = 0

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on (a chat that keeps the start of a conversation
        and rewrites the rest); the next tokens are written from there."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot cut the cache to {length} positions; it holds {self.length}")
        self.length = length
        self._pending = 0
