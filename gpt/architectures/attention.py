"""Grouped-query attention (Ainslie et al. 2023), the attention of Llama 3, Qwen3 and Gemma 3.

Chapter 3's MultiHeadAttention gives every query head its own key and value head. Here
``n_kv_heads`` key/value heads are shared by ``n_heads / n_kv_heads`` query heads each (a
"group"): query head h uses key/value head h // group. With n_kv_heads = n_heads this is
multi-head attention again, with n_kv_heads = 1 multi-query attention. The KV cache then holds
n_kv_heads heads, not n_heads: Llama 3.2 1B caches 8 instead of 32.

What else differs from chapter 3's MultiHeadAttention:

* ``head_dim`` is given, not emb_dim // n_heads (Qwen3 0.6B: 16 heads of 128 on emb 1024), so the
  projections are (d -> H * hd) and the output projection (H * hd -> d); no biases anywhere.
* ``qk_norm``: an RMSNorm over head_dim on each query and key head, before RoPE (Qwen3, Gemma 3).
* RoPE always (the model passes its RotaryEmbedding: Gemma 3's local and global layers use
  different bases).
* ``sliding_window`` W: a query sees only itself and the W - 1 keys before it (Gemma 3's local
  layers); the KV cache of such a layer keeps only those.
* ``query_scale``: the scores are multiplied by it (default 1 / sqrt(head_dim); Gemma 3 uses
  query_pre_attn_scalar^-0.5).

The keys and values are never copied per query head: the queries of a group are stacked along
the token axis, (b, H, T, hd) -> (b, H_kv, group * T, hd), so one batched product per key/value
head computes the scores of its whole group.

Shapes: b = batch, T = new tokens, S = keys attended over, H = query heads, H_kv = key/value heads.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from minigrad import nn
from minigrad.nn import functional as F

from gpt.architectures.norms import RMSNorm


@functools.lru_cache(maxsize=64)
def attention_mask(query_start: int, num_tokens: int, key_start: int, num_keys: int,
                   window: int | None = None, groups: int = 1) -> np.ndarray:
    """(groups * T, S) bool, True where a query may NOT look: query i sits at position
    query_start + i, key j at key_start + j; key j is visible iff it is not in the future and
    (with a window W) less than W positions back. The (T, S) pattern is repeated ``groups``
    times down the rows, for the stacked queries of a group. Read-only, cached."""
    q = query_start + np.arange(num_tokens)[:, None]
    k = key_start + np.arange(num_keys)[None, :]
    hidden = k > q
    if window is not None:
        hidden |= q - k >= window
    if groups > 1:
        hidden = np.tile(hidden, (groups, 1))
    hidden.flags.writeable = False
    return hidden


class GroupedQueryAttention(nn.Module):
    """x (b, T, d_in) -> (b, T, d_in). Parameter names as the shared contract: ``W_query`` (H*hd, d),
    ``W_key``/``W_value`` (H_kv*hd, d), ``out_proj`` (d, H*hd), and ``q_norm``/``k_norm`` (hd,).

    ``keep_attention = True`` keeps a copy of the last softmax weights (b, H, T, S), before dropout,
    in ``last_attn_weights`` (a NumPy array; query head h's row is h's, whichever key/value head it
    shares) for looking inside; off by default, and then it costs nothing.
    """

    def __init__(self, d_in: int, num_heads: int, num_kv_heads: int, head_dim: int, *, qk_norm: bool = False,
                 norm_eps: float = 1e-6, norm_offset: float = 0.0, query_scale: float | None = None,
                 sliding_window: int | None = None, dropout: float = 0.0):
        super().__init__()
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads})")
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.group = num_heads // num_kv_heads
        self.sliding_window = sliding_window
        self.scale = float(query_scale) if query_scale is not None else 1.0 / math.sqrt(head_dim)
        self.W_query = nn.Linear(d_in, num_heads * head_dim, bias=False)
        self.W_key = nn.Linear(d_in, num_kv_heads * head_dim, bias=False)
        self.W_value = nn.Linear(d_in, num_kv_heads * head_dim, bias=False)
        self.out_proj = nn.Linear(num_heads * head_dim, d_in, bias=False)
        if qk_norm:
            self.q_norm = RMSNorm(head_dim, eps=norm_eps, offset=norm_offset)
            self.k_norm = RMSNorm(head_dim, eps=norm_eps, offset=norm_offset)
        else:
            self.q_norm = self.k_norm = None
        self.dropout = nn.Dropout(dropout)
        self.keep_attention = False
        self.last_attn_weights: np.ndarray | None = None

    def forward(self, x, rope, kv_cache=None, layer: int = 0, start_pos: int = 0, last_only: bool = False):
        """``last_only``: keys and values for every position, queries for the last one only
        -> (b, 1, d_in) (ignored while ``keep_attention`` is on: the look-inside page wants every row)."""
        b, T, _ = x.shape
        H, KV, hd = self.num_heads, self.num_kv_heads, self.head_dim
        q_start = start_pos
        if last_only and T > 1 and not self.keep_attention:
            q_start = start_pos + T - 1
        Tq = T - (q_start - start_pos)                                        # query rows
        queries = self.W_query(x[:, -Tq:] if Tq < T else x).reshape(b, Tq, H, hd)   # (b, Tq, H, hd)
        keys = self.W_key(x).reshape(b, T, KV, hd)                           # (b, T, H_kv, hd)
        values = self.W_value(x).reshape(b, T, KV, hd).transpose(1, 2)       # (b, H_kv, T, hd)
        if self.q_norm is not None:                                          # QK-norm, per head
            queries, keys = self.q_norm(queries), self.k_norm(keys)
        queries = rope(queries.transpose(1, 2), q_start)                     # (b, H, Tq, hd)
        keys = rope(keys.transpose(1, 2), start_pos)                         # (b, H_kv, T, hd)
        if kv_cache is not None:   # generation: attend over the cached past too
            keys, values = kv_cache.update(layer, keys, values)              # (b, H_kv, S, hd)
        S = keys.shape[2]
        mask = attention_mask(q_start, Tq, start_pos + T - S, S, self.sliding_window, self.group)
        if self.group > 1:         # the group's queries one under the other: (b, H_kv, group * Tq, hd)
            queries = queries.reshape(b, KV, self.group * Tq, hd)
        scores = queries @ keys.transpose(2, 3)                              # (b, H_kv, group * Tq, S)
        weights = F.masked_softmax(scores, mask, scale=self.scale)
        if self.keep_attention:    # a copy, before dropout: nothing later may write into it
            self.last_attn_weights = weights.data.reshape(b, H, T, S).copy()
        weights = self.dropout(weights)
        context = weights @ values                                           # (b, H_kv, group * Tq, hd)
        context = context.reshape(b, H, Tq, hd).transpose(1, 2).reshape(b, Tq, H * hd)
        return self.out_proj(context)                                        # (b, Tq, d_in)
