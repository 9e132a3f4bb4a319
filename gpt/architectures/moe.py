"""Mixture-of-experts feed-forward (Qwen3-MoE), in place of the one SwiGLU of a dense block.

A router ``gate`` (Linear d -> E, no bias) scores each token against E experts (each a SwiGLU
feed-forward of width ``moe_hidden_dim``); the token goes through its k best experts only, and
their outputs are summed with the router's weights:

    logits = gate(x)                                             (N, E)
    top    = the k largest logits of each token                  (N, k) expert ids
    w      = softmax over those k logits   (norm_topk_prob; else softmax over all E, then take k)
    y      = sum_j w_j * expert_{top_j}(x)

So a token costs k experts' compute while the model holds E experts' parameters (Qwen3-30B-A3B:
128 experts, 8 per token, 30.5 B parameters of which 3.3 B are active per token).

Computed without a Python loop over tokens or experts: the (token, expert) assignments are sorted
by expert and scattered into a zero-padded (E, capacity, d) batch (capacity = the busiest expert's
count), the experts run as three batched matrix products over that batch (``ExpertLinear``, the
weights stacked (E, out, in)), and the outputs are gathered back and weighted per token.

For training from scratch, the Switch Transformer's load-balancing loss (Fedus et al. 2021) keeps
the router from sending every token to the same few experts: ``aux_loss = E * sum_e f_e * P_e``
with f_e the fraction of tokens routed to expert e (counting all k choices) and P_e the router's
mean probability for e. The model multiplies it by ``router_aux_loss_coef`` and adds it to the
training loss. ``last_tokens_per_expert`` holds the router's counts of the last forward pass.
"""
from __future__ import annotations

import math

import numpy as np

from minigrad import nn
from minigrad import random as _random
from minigrad.function import Function
from minigrad.nn import functional as F


class _Dispatch(Function):
    """x (N, d) -> buffer (rows, d): token n's row copied to the k slots ``slots[n k .. n k + k - 1]``,
    zeros in the padding. Each row of x appears k times, so its gradient is the sum of its k slots:
      dx[n] = sum_j g[slots[n k + j]]."""

    def forward(self, x, slots, k, rows):
        self.slots, self.k = slots, k
        buf = np.zeros((rows, x.shape[1]), dtype=x.dtype)
        buf[slots] = np.repeat(x, k, axis=0)
        return buf

    def backward(self, grad):
        n_assign, d = len(self.slots), grad.shape[1]
        return grad[self.slots].reshape(n_assign // self.k, self.k, d).sum(axis=1)


class _Combine(Function):
    """out (rows, d), w (N, k) -> y (N, d), y[n] = sum_j w[n, j] out[slots[n k + j]].
      d out[slots[n k + j]] = w[n, j] g[n] (padding rows get 0),   dw[n, j] = out[slots[n k + j]] . g[n]."""

    def forward(self, out, weights, slots):
        n, k = weights.shape
        picked = out[slots].reshape(n, k, out.shape[1])                   # (N, k, d)
        self.save_for_backward(out, weights)
        self.slots = slots
        return np.einsum("nk,nkd->nd", weights, picked)

    def backward(self, grad):
        out, weights = self.saved_tensors
        n, k = weights.shape
        gout = gw = None
        if self.needs_input_grad[0]:
            gout = np.zeros_like(out)
            gout[self.slots] = (weights[:, :, None] * grad[:, None, :]).reshape(n * k, -1)
        if self.needs_input_grad[1]:
            gw = np.einsum("nkd,nd->nk", out[self.slots].reshape(n, k, -1), grad)
        return gout, gw


def route(expert_ids: np.ndarray, num_experts: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Where each (token, choice) assignment goes in the padded (E, capacity) batch.

    expert_ids: (N, k). Returns (slots (N k,), tokens per expert (E,), capacity): assignment
    a = n k + j goes to row ``slots[a] = e * capacity + (its rank among expert e's assignments)``.
    """
    flat = expert_ids.reshape(-1)
    counts = np.bincount(flat, minlength=num_experts)
    capacity = max(int(counts.max()), 1)
    order = np.argsort(flat, kind="stable")                       # assignments grouped by expert
    first = np.cumsum(counts) - counts                            # each expert's first sorted index
    sorted_experts = flat[order]
    slots = np.empty_like(flat)
    slots[order] = sorted_experts * capacity + (np.arange(len(flat)) - first[sorted_experts])
    return slots, counts, capacity


class ExpertLinear(nn.Module):
    """E linear maps side by side, no bias: x (E, C, in) -> (E, C, out), expert e applying
    ``weight[e]`` (out, in), as E ``nn.Linear``s would (one batched product)."""

    def __init__(self, num_experts: int, in_features: int, out_features: int):
        super().__init__()
        self.num_experts, self.in_features, self.out_features = num_experts, in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        shape = (num_experts, out_features, in_features)
        if nn.skipping_init():           # weights about to be loaded: allocate, do not draw
            w = np.empty(shape, dtype=np.float32)
        else:
            w = _random.default_generator().random(shape, dtype=np.float32)
            w *= 2 * bound
            w -= bound
        self.weight = nn.Parameter(w)

    def forward(self, x):
        return x @ self.weight.transpose(1, 2)

    def extra_repr(self) -> str:
        return f"num_experts={self.num_experts}, in_features={self.in_features}, out_features={self.out_features}"


class MoEFeedForward(nn.Module):
    """x (b, T, emb_dim) -> (b, T, emb_dim). Parameters (the shared contract's names): ``gate`` (E, d),
    ``fc1`` (E, I, d) gate projections, ``fc2`` (E, I, d) up projections, ``fc3`` (E, d, I) down."""

    def __init__(self, emb_dim: int, hidden_dim: int, num_experts: int, top_k: int, norm_topk_prob: bool = True,
                 aux_loss: bool = False):
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be between 1 and num_experts ({num_experts}), got {top_k}")
        self.num_experts, self.top_k, self.norm_topk_prob = num_experts, top_k, norm_topk_prob
        self.compute_aux_loss = aux_loss
        self.gate = nn.Linear(emb_dim, num_experts, bias=False)
        self.fc1 = ExpertLinear(num_experts, emb_dim, hidden_dim)
        self.fc2 = ExpertLinear(num_experts, emb_dim, hidden_dim)
        self.fc3 = ExpertLinear(num_experts, hidden_dim, emb_dim)
        self.aux_loss = None                       # a scalar Tensor after a training forward pass
        self.last_tokens_per_expert: np.ndarray | None = None

    def forward(self, x):
        b, T, d = x.shape
        E, k = self.num_experts, self.top_k
        x = x.reshape(b * T, d)                                             # (N, d)
        logits = self.gate(x)                                               # (N, E)
        top = np.argpartition(-logits.data, k - 1, axis=-1)[:, :k] if k < E else \
            np.broadcast_to(np.arange(E), logits.shape).copy()               # (N, k) expert ids
        rows = np.arange(b * T)[:, None]
        if self.norm_topk_prob:
            weights = F.softmax(logits[rows, top], -1)                     # softmax over the k chosen
            probs = None
        else:
            probs = F.softmax(logits, -1)                                   # softmax over all E ...
            weights = probs[rows, top]                                      # ... then the k chosen
        slots, counts, capacity = route(top, E)
        self.last_tokens_per_expert = counts
        xs = _Dispatch.apply(x, slots=slots, k=k, rows=E * capacity).reshape(E, capacity, d)
        h = F.swiglu(self.fc1(xs), self.fc2(xs))                            # (E, C, I)
        out = self.fc3(h).reshape(E * capacity, d)                          # (E C, d)
        y = _Combine.apply(out, weights, slots=slots)                       # (N, d)
        self.aux_loss = None
        if self.compute_aux_loss and self.training:
            if probs is None:
                probs = F.softmax(logits, -1)
            fraction = (counts / (b * T)).astype(probs.dtype)               # f_e (sums to k)
            self.aux_loss = (probs.mean(axis=0) * fraction).sum() * float(E)
        return y.reshape(b, T, d)
