"""A key/value cache for generation (beyond the book).

Without a cache, generating token t+1 runs the model over all t previous tokens again. But the keys
and values of those tokens do not change when a token is appended (attention is causal), so each
layer can keep them and the next step only needs to process the one new token.

Per layer, one (b, H_kv, capacity, hd) array for keys and one for values, filled left to right, so
appending costs a copy of the new slice, not of the whole history. ``H_kv`` is the number of
key/value heads: GPT-2's ``n_heads``, but only ``n_kv_heads`` for grouped-query attention (Llama 3.2
1B: 8 instead of 32, a quarter of the memory). The capacity starts small and doubles when needed,
up to ``max_len``, so a model with a 131,072-token context does not reserve gigabytes for a short
chat. A sliding-window layer (window W: a query sees itself and the W - 1 keys before it) keeps
only the last W - 1 positions between forward passes, so its memory stays bounded however long
the text grows; the attention then places its keys by position (see ``key_start``).
"""
from __future__ import annotations

import numpy as np

import minigrad as mg

INITIAL_CAPACITY = 256


class KVCache:
    """Keys and values of every layer for the tokens processed so far.

    Args:
        n_layers, batch_size, n_heads, head_dim: the model's shape (n_heads: key/value heads).
        max_len: how many positions fit (the model's context length, or a longer window for models
            whose positions have no table).
        windows: None, or one entry per layer: None for a full-attention layer, W for a layer with
            a sliding window of W (it keeps only its last W - 1 positions).
    """

    def __init__(self, n_layers: int, batch_size: int, n_heads: int, head_dim: int, max_len: int,
                 dtype=np.float32, windows=None):
        self.windows = list(windows) if windows is not None else [None] * n_layers
        if len(self.windows) != n_layers:
            raise ValueError(f"windows has {len(self.windows)} entries for {n_layers} layers")
        self.batch_size, self.n_heads, self.head_dim, self.dtype = batch_size, n_heads, head_dim, np.dtype(dtype)
        self.max_len = max_len
        self.keys, self.values = [], []
        for w in self.windows:
            cap = min(max_len, INITIAL_CAPACITY if w is None else max(2 * w, 16))
            self.keys.append(self._empty(cap))
            self.values.append(self._empty(cap))
        self._first = [0] * n_layers   # buffer index of each layer's oldest kept position
        self._kept = [0] * n_layers    # positions each layer holds (= length for a full layer)
        self.length = 0        # positions filled, identical in every layer once a forward pass ends
        self._pending = 0      # tokens added by the forward pass in progress

    def _empty(self, capacity: int) -> np.ndarray:
        return np.empty((self.batch_size, self.n_heads, capacity, self.head_dim), dtype=self.dtype)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache's arrays right now."""
        return sum(a.nbytes for a in self.keys) + sum(a.nbytes for a in self.values)

    def key_start(self, layer: int) -> int:
        """Position of the oldest key ``layer`` holds (0 for full layers; later for sliding ones)."""
        return self.length - self._kept[layer]

    def update(self, layer: int, keys, values):
        """Append this step's keys/values (b, H, T_new, hd) for ``layer``; return the ones it attends
        over as Tensors (b, H, kept + T_new, hd) (views into the cache, no copy): every position so
        far for a full layer, the last W - 1 before these plus these for a sliding one. The first
        returned key sits at position ``length - kept`` (:meth:`key_start`)."""
        k, v = keys.data, values.data
        start, new = self.length, k.shape[2]
        if start + new > self.max_len:
            raise ValueError(
                f"the KV cache holds {self.max_len} positions; {start} are used and {new} more do not fit"
            )
        first, kept = self._first[layer], self._kept[layer]
        buf_k, buf_v = self.keys[layer], self.values[layer]
        if first + kept + new > buf_k.shape[2]:
            need = kept + new
            if need > buf_k.shape[2]:      # grow: double (at most max_len; a window needs W - 1 + new)
                cap = max(need, 2 * buf_k.shape[2])
                if self.windows[layer] is None:
                    cap = min(cap, self.max_len)
                new_k, new_v = self._empty(cap), self._empty(cap)
            else:                          # room enough once the kept positions move to the front
                new_k, new_v = buf_k, buf_v
            new_k[:, :, :kept] = buf_k[:, :, first:first + kept]   # NumPy copes with the overlap
            new_v[:, :, :kept] = buf_v[:, :, first:first + kept]
            self.keys[layer], self.values[layer] = buf_k, buf_v = new_k, new_v
            self._first[layer] = first = 0
        buf_k[:, :, first + kept:first + kept + new] = k
        buf_v[:, :, first + kept:first + kept + new] = v
        self._pending = new
        end = first + kept + new
        return mg.Tensor(buf_k[:, :, first:end]), mg.Tensor(buf_v[:, :, first:end])

    def advance(self) -> None:
        """Mark the tokens of the finished forward pass as cached (called by the model); sliding
        layers drop what falls out of their window."""
        for layer, w in enumerate(self.windows):
            total = self._kept[layer] + self._pending
            keep = total if w is None else min(total, w - 1)
            self._first[layer] += total - keep
            self._kept[layer] = keep
        self.length += self._pending
        self._pending = 0

    def reset(self) -> None:
        self.length = 0
        self._pending = 0
        self._first = [0] * len(self.windows)
        self._kept = [0] * len(self.windows)

    def truncate(self, length: int) -> None:
        """Forget every position from ``length`` on, so that the next tokens are written from there
        (a chat that keeps the start of a conversation and rewrites the rest). A sliding-window layer
        that has already let go of a key position ``length`` still needs cannot go back: ValueError
        (:meth:`reset` and read the text again instead)."""
        if not 0 <= length <= self.length:
            raise ValueError(f"cannot cut the cache to {length} positions; it holds {self.length}")
        for kept, w in zip(self._kept, self.windows):
            if w is not None and self.length - kept > max(0, length - (w - 1)):
                raise ValueError(f"a sliding-window layer no longer holds the keys position {length} attends to; "
                                 "reset the cache instead")
        cut = self.length - length
        self._kept = [kept - cut for kept in self._kept]
        self.length = length
        self._pending = 0
