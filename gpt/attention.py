"""Chapter 3: self-attention, from the simplest form to the multi-head attention GPT-2 uses.

Read top to bottom, as the book builds it:

1. :func:`simple_self_attention`: no weights at all, scores are dot products of the inputs.
2. :class:`SelfAttentionV1`: trainable query/key/value matrices, scaled dot-product attention.
3. :class:`SelfAttentionV2`: the same with ``Linear`` layers.
4. :class:`CausalAttention`: a mask hides future tokens; dropout on the attention weights.
5. :class:`MultiHeadAttentionWrapper`: several causal heads side by side.
6. :class:`MultiHeadAttention`: the efficient form, all heads in one set of projections,
   split by reshape and transpose. This is the one the GPT model uses; beyond the book it
   can read and extend a KV cache during generation, rotate queries and keys (RoPE), add a
   position bias to the scores (ALiBi, T5) and run past ``context_length`` (see gpt/positions.py).

Shapes: b = batch, T = tokens, H = heads, hd = head_dim = d_out / H.
"""
from __future__ import annotations

import functools
import math

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F


def simple_self_attention(inputs):
    """Attention without trainable weights (section 3.3).

    inputs: (T, d). Returns (scores (T, T), weights (T, T), context (T, d)):
    scores = inputs inputs^T, weights = softmax of each row, context = weights inputs.
    """
    inputs = mg.as_tensor(inputs)
    scores = inputs @ inputs.T
    weights = F.softmax(scores, -1)
    return scores, weights, weights @ inputs


@functools.lru_cache(maxsize=8)
def causal_mask(context_length: int) -> np.ndarray:
    """(context_length, context_length) bool, True above the diagonal: positions a query may not see.

    Made once per length and shared (read-only) by every attention layer."""
    mask = np.triu(np.ones((context_length, context_length), dtype=bool), k=1)
    mask.flags.writeable = False
    return mask


class SelfAttentionV1(nn.Module):
    """Scaled dot-product attention with raw weight matrices (section 3.4). x: (T, d_in) -> (T, d_out)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        rng = mg.random.default_generator()
        # the book initialises these with torch.rand: uniform in [0, 1)
        self.W_query = nn.Parameter(rng.random((d_in, d_out), dtype=np.float32))
        self.W_key = nn.Parameter(rng.random((d_in, d_out), dtype=np.float32))
        self.W_value = nn.Parameter(rng.random((d_in, d_out), dtype=np.float32))

    def forward(self, x):
        keys = x @ self.W_key                      # (T, d_out)
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.T             # (T, T): omega_ij = q_i . k_j
        attn_weights = F.softmax(attn_scores / keys.shape[-1] ** 0.5, -1)
        return attn_weights @ values               # (T, d_out)


class SelfAttentionV2(nn.Module):
    """Self-attention with ``Linear`` projections (section 3.4.2). x: (T, d_in) -> (T, d_out)."""

    def __init__(self, d_in: int, d_out: int, qkv_bias: bool = False):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)

    def forward(self, x):
        keys, queries, values = self.W_key(x), self.W_query(x), self.W_value(x)
        attn_scores = queries @ keys.T
        attn_weights = F.softmax(attn_scores / keys.shape[-1] ** 0.5, -1)
        return attn_weights @ values


class CausalAttention(nn.Module):
    """Single-head causal attention with dropout (section 3.5). x: (b, T, d_in) -> (b, T, d_out)."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, qkv_bias: bool = False):
        super().__init__()
        self.d_out = d_out
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", causal_mask(context_length), persistent=False)

    def forward(self, x):
        b, num_tokens, d_in = x.shape
        keys, queries, values = self.W_key(x), self.W_query(x), self.W_value(x)
        attn_scores = queries @ keys.transpose(1, 2)                       # (b, T, T)
        attn_scores = attn_scores.masked_fill(self.mask[:num_tokens, :num_tokens], -np.inf)
        attn_weights = F.softmax(attn_scores / keys.shape[-1] ** 0.5, -1)
        attn_weights = self.dropout(attn_weights)
        return attn_weights @ values                                       # (b, T, d_out)


class MultiHeadAttentionWrapper(nn.Module):
    """``num_heads`` independent CausalAttention heads, outputs concatenated (section 3.6.1).
    x: (b, T, d_in) -> (b, T, d_out * num_heads)."""

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        self.heads = nn.ModuleList(
            [CausalAttention(d_in, d_out, context_length, dropout, qkv_bias) for _ in range(num_heads)]
        )

    def forward(self, x):
        return mg.concat([head(x) for head in self.heads], axis=-1)


class MultiHeadAttention(nn.Module):
    """Multi-head causal attention with all heads in shared projections (section 3.6.2).

    x: (b, T, d_in) -> (b, T, d_out). Each projection is (d_in -> d_out); its output is split into
    ``num_heads`` heads of ``head_dim = d_out // num_heads`` by a reshape and a transpose, attention
    runs on all heads at once, and ``out_proj`` (always with a bias) mixes the heads again.

    Beyond the book:
      * ``kv_cache``/``layer``: during generation, append this call's keys and values to a
        :class:`gpt.kv_cache.KVCache` and attend over everything cached so far.
      * ``rope``: a :class:`gpt.positions.RotaryEmbedding` that rotates queries and keys by position.
      * ``attn_bias``: (H, T, T_keys) added to the scaled scores before the softmax (ALiBi's or T5's
        position bias, see :mod:`gpt.positions`), inside the same fused pass.
      * more than ``context_length`` tokens (for the position schemes without a table): the causal
        mask then comes from a longer shared one.
      * ``keep_attention``: when set to True, each forward keeps a copy of its softmax weights
        (b, H, T, T_keys), before dropout, as a NumPy array in ``last_attn_weights`` (for the
        look-inside page, :mod:`gpt.serve`); off by default, and then it costs nothing.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float, num_heads: int,
                 qkv_bias: bool = False):
        super().__init__()
        if d_out % num_heads != 0:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", causal_mask(context_length), persistent=False)
        self.keep_attention = False
        self.last_attn_weights: np.ndarray | None = None

    def _heads(self, t, b: int, num_tokens: int):
        # (b, T, d_out) -> (b, T, H, hd) -> (b, H, T, hd)
        return t.reshape(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, kv_cache=None, layer: int = 0, rope=None, start_pos: int = 0, attn_bias=None):
        b, num_tokens, _ = x.shape
        queries = self._heads(self.W_query(x), b, num_tokens)
        keys = self._heads(self.W_key(x), b, num_tokens)
        values = self._heads(self.W_value(x), b, num_tokens)
        if rope is not None:
            queries = rope(queries, start_pos)
            keys = rope(keys, start_pos)
        if kv_cache is not None:  # generation only (no gradients): attend over the cached past too
            keys, values = kv_cache.update(layer, keys, values)
        num_keys = keys.shape[2]
        past = num_keys - num_tokens
        # query i sits at position past + i and may see keys 0 .. past + i
        if num_keys <= len(self.mask):
            mask = self.mask[past:past + num_tokens, :num_keys]
        else:   # past context_length (positions without a table): just the rows and keys needed
            mask = np.arange(num_keys)[None, :] > (past + np.arange(num_tokens))[:, None]   # (T, T_keys)
        attn_scores = queries @ keys.transpose(2, 3)                        # (b, H, T, T_keys)
        # softmax(attn_scores.masked_fill(mask, -inf) / sqrt(head_dim) + attn_bias) as one fused pass
        attn_weights = F.masked_softmax(attn_scores, mask, scale=1.0 / math.sqrt(self.head_dim), bias=attn_bias)
        if self.keep_attention:
            self.last_attn_weights = attn_weights.data.copy()
        attn_weights = self.dropout(attn_weights)
        context = (attn_weights @ values).transpose(1, 2)                   # (b, T, H, hd)
        context = context.reshape(b, num_tokens, self.d_out)
        return self.out_proj(context)
