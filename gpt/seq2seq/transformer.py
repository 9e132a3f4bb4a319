"""The original encoder-decoder Transformer (Vaswani et al. 2017, "Attention is all you need"):
chapter 1's figure of the model GPT comes from, with the RNN gone.

    source ids -> embedding * sqrt(d) + sinusoidal positions -> n_layers x EncoderLayer -> memory
    target ids -> embedding * sqrt(d) + sinusoidal positions -> n_layers x DecoderLayer(memory)
               -> logits = x E^T (the output head shares the embedding matrix E)

    EncoderLayer:  self-attention over the source (padding hidden), feed-forward
    DecoderLayer:  causal self-attention, cross-attention to the memory (padding hidden), feed-forward

Each sub-layer sits in a shortcut connection. ``norm_first=False`` (the default) is the paper's
post-LayerNorm, ``x = norm(x + dropout(sublayer(x)))``; ``norm_first=True`` is the pre-LayerNorm of
GPT-2 (and chapter 4), ``x = x + dropout(sublayer(norm(x)))``, with a final norm after each stack.

What it reuses from the GPT: ``MultiHeadAttention`` (its projections, head split and fused masked
softmax), chapter 4's ``LayerNorm`` and the causal mask. What differs from the GPT: an encoder and
cross-attention, positions from fixed sinusoids instead of a learned table (so any length has one),
ReLU in the feed-forward (GPT-2: GELU), post-LN by default, one embedding shared by the source, the
target and the output head (the paper's choice; here the two sides share one vocabulary), and
embeddings initialised N(0, 1/d) so that after the sqrt(d) scaling they have unit size, like the
positions.

Shapes: b = batch, S = source length, T = target length, d = d_model, H = heads.
"""
from __future__ import annotations

import functools
import math

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F
from minigrad.nn.recurrent import lengths_to_mask

from gpt.attention import MultiHeadAttention, causal_mask
from gpt.model import LayerNorm


@functools.lru_cache(maxsize=16)
def sinusoidal_positions(length: int, d_model: int) -> np.ndarray:
    """(length, d_model) float32: PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(same)."""
    pos = np.arange(length)[:, None]
    freq = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)   # 1 / 10000^(2i/d)
    pe = np.zeros((length, d_model))
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq[: d_model // 2])
    pe = pe.astype(np.float32)
    pe.flags.writeable = False
    return pe


class Attention(MultiHeadAttention):
    """Chapter 3's MultiHeadAttention with its queries from ``x`` and its keys and values from
    ``memory`` (cross-attention) or from ``x`` itself, and any mask instead of only the causal one.

    forward(x (b, T, d), memory=None (b, S, d), mask (..., T, S) bool, True = hidden) -> (b, T, d)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0):
        super().__init__(d_model, d_model, context_length=1, dropout=dropout, num_heads=num_heads, qkv_bias=True)

    def forward(self, x, memory=None, mask=None):
        source = x if memory is None else memory
        b, t, _ = x.shape
        s = source.shape[1]
        queries = self._heads(self.W_query(x), b, t)                        # (b, H, T, hd)
        keys = self._heads(self.W_key(source), b, s)                        # (b, H, S, hd)
        values = self._heads(self.W_value(source), b, s)
        scores = queries @ keys.transpose(2, 3)                             # (b, H, T, S)
        weights = F.masked_softmax(scores, np.zeros((1, 1), bool) if mask is None else mask,
                                   scale=1.0 / math.sqrt(self.head_dim))
        context = (self.dropout(weights) @ values).transpose(1, 2).reshape(b, t, self.d_out)
        return self.out_proj(context)


def _feed_forward(d_model: int, d_ff: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))


class EncoderLayer(nn.Module):
    """Self-attention over the source, then feed-forward. x (b, S, d), pad (b, 1, 1, S) -> (b, S, d)."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, drop_rate: float = 0.0, norm_first: bool = False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = Attention(d_model, num_heads, drop_rate)
        self.ff = _feed_forward(d_model, d_ff)
        self.norm1, self.norm2 = LayerNorm(d_model), LayerNorm(d_model)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x, pad):
        if self.norm_first:
            x = x + self.dropout(self.self_attn(self.norm1(x), mask=pad))
            return x + self.dropout(self.ff(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.self_attn(x, mask=pad)))
        return self.norm2(x + self.dropout(self.ff(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the encoder's memory, feed-forward.
    x (b, T, d), memory (b, S, d), pad (b, 1, 1, S) -> (b, T, d)."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int, drop_rate: float = 0.0, norm_first: bool = False):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = Attention(d_model, num_heads, drop_rate)
        self.cross_attn = Attention(d_model, num_heads, drop_rate)
        self.ff = _feed_forward(d_model, d_ff)
        self.norm1, self.norm2, self.norm3 = LayerNorm(d_model), LayerNorm(d_model), LayerNorm(d_model)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x, memory, pad):
        causal = causal_mask(x.shape[1])
        if self.norm_first:
            x = x + self.dropout(self.self_attn(self.norm1(x), mask=causal))
            x = x + self.dropout(self.cross_attn(self.norm2(x), memory, mask=pad))
            return x + self.dropout(self.ff(self.norm3(x)))
        x = self.norm1(x + self.dropout(self.self_attn(x, mask=causal)))
        x = self.norm2(x + self.dropout(self.cross_attn(x, memory, mask=pad)))
        return self.norm3(x + self.dropout(self.ff(x)))


class EncoderDecoderTransformer(nn.Module):
    """The encoder-decoder Transformer; see the module docstring.

    ``model(src, src_lengths, tgt_in)`` -> logits (b, T, V), teacher-forced; ``start``/``step``
    decode one token at a time (``gpt.seq2seq.decode``), rerunning the decoder over the prefix
    (no cache: the targets here are short).
    """

    def __init__(self, vocab_size: int, d_model: int = 64, num_heads: int = 4, n_layers: int = 2, d_ff: int = 256,
                 drop_rate: float = 0.0, norm_first: bool = False):
        super().__init__()
        self.d_model, self.norm_first = d_model, norm_first
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.embedding.weight.data *= np.float32(d_model ** -0.5)
        self.drop = nn.Dropout(drop_rate)
        self.encoder_layers = nn.ModuleList(
            [EncoderLayer(d_model, num_heads, d_ff, drop_rate, norm_first) for _ in range(n_layers)])
        self.decoder_layers = nn.ModuleList(
            [DecoderLayer(d_model, num_heads, d_ff, drop_rate, norm_first) for _ in range(n_layers)])
        if norm_first:
            self.encoder_norm, self.decoder_norm = LayerNorm(d_model), LayerNorm(d_model)

    def _embed(self, ids):
        x = self.embedding(ids) * math.sqrt(self.d_model)                   # (b, T, d)
        return self.drop(x + sinusoidal_positions(ids.shape[1], self.d_model))

    def encode(self, src, src_lengths):
        """-> memory (b, S, d), pad (b, 1, 1, S) bool (True at padding)."""
        src = np.asarray(src)
        pad = ~lengths_to_mask(src_lengths, src.shape[1])[:, None, None, :]
        x = self._embed(src)
        for layer in self.encoder_layers:
            x = layer(x, pad)
        return (self.encoder_norm(x) if self.norm_first else x), pad

    def decode(self, tgt_in, memory, pad):
        """tgt_in (b, T) -> logits (b, T, V)."""
        x = self._embed(np.asarray(tgt_in))
        for layer in self.decoder_layers:
            x = layer(x, memory, pad)
        if self.norm_first:
            x = self.decoder_norm(x)
        return F.linear(x, self.embedding.weight)                           # shared output head

    def forward(self, src, src_lengths, tgt_in):
        memory, pad = self.encode(src, src_lengths)
        return self.decode(tgt_in, memory, pad)

    def start(self, src, src_lengths) -> dict:
        memory, pad = self.encode(src, src_lengths)
        return {"memory": memory.data, "pad": pad, "prefix": np.zeros((len(src_lengths), 0), dtype=np.int64)}

    def step(self, state: dict, prev_ids):
        prefix = np.concatenate([state["prefix"], np.asarray(prev_ids)[:, None]], axis=1)
        logits = self.decode(prefix, mg.Tensor(state["memory"]), state["pad"])
        log_probs = F.log_softmax(logits[:, -1], -1).data
        return log_probs, {**state, "prefix": prefix}
