"""Qwen3 (Alibaba, 2025), dense and mixture-of-experts, written as a diff against Llama 3 (llama.py).

What differs from GPT-2: everything Llama 3 changes (RMSNorm, SwiGLU, grouped-query attention,
RoPE, no biases, no dropout), and then what differs from Llama 3:

1. QK-norm: an RMSNorm over head_dim on every query and key head, before RoPE
   (``att.q_norm``, ``att.k_norm``), which keeps the attention logits from growing in training.
2. ``head_dim`` is set explicitly and need not be emb_dim / n_heads (0.6B: 16 heads of 128 on
   emb 1024, so the query projection widens d = 1024 to 2048).
3. RoPE base ``rope_theta`` = 1,000,000, without Llama 3's frequency scaling.
4. The small sizes (0.6B, 1.7B, 4B) tie the output head to the token embedding.
5. ``arch == "qwen3-moe"`` (Qwen3-30B-A3B, 235B-A22B): every block's SwiGLU becomes a
   mixture of experts (``moe.py``): a router picks 8 of 128 small SwiGLU experts per token.
   Training adds the router's load-balancing loss times ``router_aux_loss_coef`` (``aux_loss``).
"""
from __future__ import annotations

import numpy as np

from minigrad import nn

from gpt.architectures.config import DecoderConfig
from gpt.architectures.llama import Llama3Model, TransformerBlock
from gpt.architectures.moe import MoEFeedForward


class Qwen3Block(TransformerBlock):
    """Llama 3's block (with QK-norm switched on by the config); a mixture of experts in place of
    the SwiGLU for qwen3-moe. x: (b, T, d) -> (b, T, d)."""

    def make_feed_forward(self, cfg: DecoderConfig) -> nn.Module:
        if cfg.arch == "qwen3-moe":
            return MoEFeedForward(cfg.emb_dim, cfg.moe_hidden_dim, cfg.n_experts, cfg.n_experts_per_token,
                                  norm_topk_prob=cfg.norm_topk_prob, aux_loss=cfg.router_aux_loss_coef > 0)
        return super().make_feed_forward(cfg)


class Qwen3Model(Llama3Model):
    """Qwen3 and Qwen3-MoE. ``model(ids)``: ids (b, T) -> logits (b, T, vocab_size).

    For qwen3-moe, after a training forward pass ``aux_loss`` holds ``router_aux_loss_coef`` times
    the mean load-balancing loss of the layers (gpt.train adds it to the loss), and
    :meth:`tokens_per_expert` the router's counts.
    """

    ARCHES = ("qwen3", "qwen3-moe")
    Block = Qwen3Block

    def collect_aux_loss(self) -> None:
        self.aux_loss = None
        losses = [b.ff.aux_loss for b in self.trf_blocks if getattr(b.ff, "aux_loss", None) is not None]
        if losses:
            total = losses[0]
            for loss in losses[1:]:
                total = total + loss
            self.aux_loss = total * (self.cfg.router_aux_loss_coef / len(losses))

    def tokens_per_expert(self):
        """(n_layers, n_experts) int array: how many tokens each layer's router sent to each expert in
        the last forward pass (each token counts once for each of its k experts); None if dense."""
        counts = [getattr(b.ff, "last_tokens_per_expert", None) for b in self.trf_blocks]
        if self.cfg.arch != "qwen3-moe" or any(c is None for c in counts):
            return None
        return np.stack(counts)

