"""Llama 3 (Meta, 2024), written as a diff against chapter 4's GPT (gpt/model.py).

    ids (b, T) -> token embedding                      (no position embedding: RoPE inside attention)
              -> n_layers x TransformerBlock
              -> final RMSNorm -> out_head -> logits (b, T, vocab_size)

    x = x + attention(norm1(x))                        grouped-query attention, RoPE on q and k
    x = x + feed_forward(norm2(x))                     SwiGLU

What differs from GPT-2, and nothing else:

1. RMSNorm instead of LayerNorm (``norms.py``): no mean subtracted, no shift.
2. SwiGLU feed-forward instead of Linear-GELU-Linear (``feed_forward.py``): fc3(silu(fc1 x) * fc2 x).
3. Grouped-query attention (``attention.py``): n_kv_heads key/value heads shared by groups of
   query heads; the KV cache holds only those.
4. Rotary position embeddings on queries and keys instead of a learned position table, with base
   ``rope_theta`` = 500,000 and Llama 3's frequency scaling for long contexts (gpt/positions.py).
5. No biases in any Linear; no dropout (drop_rate 0, as published).
6. Llama 3.2 1B and 3B tie the output head to the token embedding (GPT-2 does too; the book's
   GPTModel does not by default).

Weights start as Hugging Face initialises them (normal, std 0.02), the norms at 1.
"""
from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad import random as _random

from gpt.architectures.attention import GroupedQueryAttention
from gpt.architectures.config import DecoderConfig
from gpt.architectures.feed_forward import SwiGLU
from gpt.architectures.norms import RMSNorm
from gpt.kv_cache import KVCache
from gpt.positions import RotaryEmbedding

#: RoPE tables are computed for this many positions at first and extended when needed, so that a
#: 131,072-token context costs nothing until it is used
ROPE_INITIAL_POSITIONS = 4096


def as_decoder_config(cfg, arches: tuple[str, ...]) -> DecoderConfig:
    cfg = cfg if isinstance(cfg, DecoderConfig) else DecoderConfig.from_dict(dict(cfg))
    if cfg.arch not in arches:
        raise ValueError(f"this model class builds arch {' or '.join(arches)}, not {cfg.arch!r}; "
                         "use gpt.architectures.build_model(cfg)")
    return cfg


def init_weights(model: nn.Module, std: float = 0.02) -> None:
    """Every matrix (embeddings, projections, experts) ~ N(0, std^2), as Hugging Face initialises
    these families; vectors (the norms) keep their values. Nothing inside ``nn.skip_init()``
    (the weights are about to be loaded)."""
    if nn.skipping_init():
        return
    rng = _random.default_generator()
    for p in model.parameters():
        if p.ndim >= 2:
            w = rng.standard_normal(p.shape, dtype=np.float32)
            w *= np.float32(std)
            p.data = w


class TransformerBlock(nn.Module):
    """Pre-RMSNorm attention and SwiGLU, each inside a shortcut connection. x: (b, T, d) -> (b, T, d)."""

    def __init__(self, cfg: DecoderConfig, layer: int = 0):
        super().__init__()
        self.norm1 = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.att = GroupedQueryAttention(cfg.emb_dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                                         qk_norm=cfg.qk_norm, norm_eps=cfg.norm_eps,
                                         sliding_window=cfg.window(layer), dropout=cfg.drop_rate)
        self.norm2 = RMSNorm(cfg.emb_dim, eps=cfg.norm_eps)
        self.ff = self.make_feed_forward(cfg)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def make_feed_forward(self, cfg: DecoderConfig) -> nn.Module:
        return SwiGLU(cfg.emb_dim, cfg.hidden_dim)

    def forward(self, x, rope, kv_cache=None, layer: int = 0, start_pos: int = 0, last_only: bool = False):
        """``last_only``: return (b, 1, d), the last position only (the model's last block when only
        the last logits are wanted); the keys and values of every position are still computed (and
        cached), but the queries, the attention output and the feed-forward for that position only."""
        shortcut = x
        x = self.att(self.norm1(x), rope, kv_cache=kv_cache, layer=layer, start_pos=start_pos,
                     last_only=last_only)
        if x.shape[1] != shortcut.shape[1]:                  # the attention kept the last position only
            shortcut = shortcut[:, -1:]
        x = self.drop_shortcut(x) + shortcut
        shortcut = x
        x = self.ff(self.norm2(x))
        return self.drop_shortcut(x) + shortcut


class Llama3Model(nn.Module):
    """Llama 3. ``model(ids)``: ids (b, T) ints -> logits Tensor (b, T, vocab_size).

    ``cfg``: a :class:`DecoderConfig` (or its dict) with arch "llama". The same interface as
    GPTModel: ``forward(in_idx, kv_cache=None, last_only=False)``, ``new_kv_cache``, and the
    attributes ``tok_emb``, ``trf_blocks``, ``final_norm``, ``out_head``.
    """

    ARCHES = ("llama",)
    Block = TransformerBlock

    def __init__(self, cfg):
        super().__init__()
        cfg = as_decoder_config(cfg, self.ARCHES)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.Sequential(*[self.Block(cfg, i) for i in range(cfg.n_layers)])
        self.final_norm = self.make_norm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight
        self.rope = RotaryEmbedding(cfg.head_dim, min(cfg.context_length, ROPE_INITIAL_POSITIONS),
                                    base=cfg.rope_theta, scaling=cfg.rope_scaling)
        self.aux_loss = None
        init_weights(self)

    def make_norm(self, dim: int) -> nn.Module:
        return RMSNorm(dim, eps=self.cfg.norm_eps)

    def rope_for(self, layer: int) -> RotaryEmbedding:
        """The RoPE of ``layer`` (one for every layer here; Gemma 3 has two)."""
        return self.rope

    def embed(self, ids: np.ndarray):
        """(b, T) ids -> (b, T, emb_dim) token embeddings."""
        return self.tok_emb(ids)

    def forward(self, in_idx, kv_cache: KVCache | None = None, last_only: bool = False):
        """in_idx: (b, T) token ids. kv_cache: continue after the positions already cached
        (generation). last_only: run the output head on the last position only -> (b, 1, vocab)."""
        ids = np.asarray(in_idx.data if isinstance(in_idx, mg.Tensor) else in_idx)
        if ids.ndim != 2:
            raise ValueError(f"{type(self).__name__} expects token ids of shape (batch, tokens), got {ids.shape}")
        start = kv_cache.length if kv_cache is not None else 0
        x = self.drop_emb(self.embed(ids))                                     # (b, T, d)
        last = len(self.trf_blocks) - 1
        for i, block in enumerate(self.trf_blocks):
            if last_only and i == last and isinstance(block, TransformerBlock) and isinstance(block.ff, SwiGLU):
                # nothing after the last block looks at the other positions: skip their queries,
                # attention output and feed-forward (a 1-row product instead of a T-row one); a
                # mixture-of-experts block runs whole: its router's statistics count every token
                x = block(x, self.rope_for(i), kv_cache=kv_cache, layer=i, start_pos=start, last_only=True)
            else:
                x = block(x, self.rope_for(i), kv_cache=kv_cache, layer=i, start_pos=start)
        if kv_cache is not None:
            kv_cache.advance()
        self.collect_aux_loss()
        if last_only:
            x = x[:, -1:, :]
        x = self.final_norm(x)
        return self.out_head(x)                                                # (b, T, vocab)

    def collect_aux_loss(self) -> None:
        """Set ``self.aux_loss`` (a scalar Tensor to add to the training loss, or None); only the
        mixture-of-experts model has one."""
        self.aux_loss = None

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty cache for ``batch_size`` sequences of up to ``max_len`` positions (default: the
        context length). It stores n_kv_heads heads per layer, grows as it fills, and keeps only
        the window of sliding-window layers."""
        c = self.cfg
        windows = [c.window(i) for i in range(c.n_layers)]
        return KVCache(c.n_layers, batch_size, c.n_kv_heads, c.head_dim, max_len or c.context_length,
                       dtype=self.tok_emb.weight.dtype, windows=windows)
