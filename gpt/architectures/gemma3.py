"""Gemma 3 (Google, 2025), text model, written as a diff against Qwen3 (qwen3.py).

What differs from GPT-2: RMSNorm, gated feed-forward, grouped-query attention, RoPE, no biases,
no dropout, tied embeddings (as Llama 3.2 1B/3B and the small Qwen3s), QK-norm and an explicit
head_dim (as Qwen3); and then what differs from Qwen3:

1. The token embeddings are multiplied by sqrt(emb_dim) (in the weights' dtype, as Hugging Face
   does) before the first block.
2. Every RMSNorm multiplies by (1 + weight) instead of weight: the checkpoints store weight - 1.
3. Four norms per block instead of two: the attention's and the feed-forward's outputs are
   normalised too, before they are added to the shortcut::

       x = x + post_attention_layernorm(attention(input_layernorm(x)))
       x = x + post_feedforward_layernorm(feed_forward(pre_feedforward_layernorm(x)))

4. GeGLU feed-forward: the gate uses GPT-2's tanh GELU instead of SiLU.
5. The scores are scaled by query_pre_attn_scalar^-0.5 instead of head_dim^-0.5 (equal for the
   270M and 1B models, where both are 256).
6. Sliding-window attention: five local layers (window 512: a query sees itself and the 511 tokens
   before) to one global layer; their KV caches keep only the window. The local layers use RoPE
   base ``rope_local_theta`` = 10,000, the global ones ``rope_theta`` = 1,000,000 (plus, for the
   4B and larger models, the configured ``rope_scaling``, linear with factor 8).
"""
from __future__ import annotations

import math

import numpy as np

from minigrad import nn

from gpt.architectures.attention import GroupedQueryAttention
from gpt.architectures.config import DecoderConfig
from gpt.architectures.feed_forward import GeGLU
from gpt.architectures.llama import ROPE_INITIAL_POSITIONS, Llama3Model
from gpt.architectures.norms import RMSNorm
from gpt.positions import RotaryEmbedding


class Gemma3Block(nn.Module):
    """Attention and GeGLU, each between a pre-norm and a post-norm, inside a shortcut connection.
    x: (b, T, d) -> (b, T, d). Norm names are Hugging Face's."""

    def __init__(self, cfg: DecoderConfig, layer: int = 0):
        super().__init__()
        norm = lambda: RMSNorm(cfg.emb_dim, eps=cfg.norm_eps, offset=1.0)   # noqa: E731
        self.input_layernorm = norm()
        self.att = GroupedQueryAttention(cfg.emb_dim, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim,
                                         qk_norm=cfg.qk_norm, norm_eps=cfg.norm_eps, norm_offset=1.0,
                                         query_scale=(cfg.query_pre_attn_scalar or cfg.head_dim) ** -0.5,
                                         sliding_window=cfg.window(layer), dropout=cfg.drop_rate)
        self.post_attention_layernorm = norm()
        self.pre_feedforward_layernorm = norm()
        self.ff = GeGLU(cfg.emb_dim, cfg.hidden_dim)
        self.post_feedforward_layernorm = norm()
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x, rope, kv_cache=None, layer: int = 0, start_pos: int = 0):
        shortcut = x
        x = self.att(self.input_layernorm(x), rope, kv_cache=kv_cache, layer=layer, start_pos=start_pos)
        x = self.drop_shortcut(self.post_attention_layernorm(x)) + shortcut
        shortcut = x
        x = self.ff(self.pre_feedforward_layernorm(x))
        return self.drop_shortcut(self.post_feedforward_layernorm(x)) + shortcut


class Gemma3Model(Llama3Model):
    """Gemma 3 (text). ``model(ids)``: ids (b, T) -> logits (b, T, vocab_size)."""

    ARCHES = ("gemma3",)
    Block = Gemma3Block

    def __init__(self, cfg):
        super().__init__(cfg)
        c = self.cfg
        self.rope_local = RotaryEmbedding(c.head_dim, min(c.context_length, ROPE_INITIAL_POSITIONS),
                                          base=c.rope_local_theta)

    def make_norm(self, dim: int) -> nn.Module:
        return RMSNorm(dim, eps=self.cfg.norm_eps, offset=1.0)

    def rope_for(self, layer: int) -> RotaryEmbedding:
        return self.rope_local if self.cfg.layer_type(layer) == "sliding_attention" else self.rope

    def embed(self, ids: np.ndarray):
        w = self.tok_emb.weight
        return self.tok_emb(ids) * np.asarray(math.sqrt(self.cfg.emb_dim), dtype=w.dtype)
