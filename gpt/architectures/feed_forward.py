"""Gated feed-forwards: SwiGLU (Llama, Qwen) and GeGLU (Gemma), in place of GPT-2's
``Linear -> GELU -> Linear``.

GPT-2:   fc2(gelu(fc1 x))                          two matrices, d -> 4d -> d, with biases
SwiGLU:  fc3(silu(fc1 x) * fc2 x)                  three matrices, d -> hidden -> d, no biases
GeGLU:   fc3(gelu(fc1 x) * fc2 x)                  the same with the tanh GELU as the gate

``fc1`` (Hugging Face's ``gate_proj``) decides, per hidden unit, how much of ``fc2``'s value
(``up_proj``) passes; ``fc3`` (``down_proj``) projects back (Shazeer 2020, "GLU Variants Improve
Transformer"). With three matrices instead of two, the hidden width is usually about 8/3 d instead
of 4d for the same parameter count (Llama 3.2 1B: d = 2048, hidden = 8192, though).
"""
from __future__ import annotations

from minigrad import nn
from minigrad.nn import functional as F


class SwiGLU(nn.Module):
    """x (b, T, emb_dim) -> fc3(silu(fc1 x) * fc2 x) (b, T, emb_dim); silu(a) * b is one fused node."""

    def __init__(self, emb_dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(emb_dim, hidden_dim, bias=False)   # gate
        self.fc2 = nn.Linear(emb_dim, hidden_dim, bias=False)   # up
        self.fc3 = nn.Linear(hidden_dim, emb_dim, bias=False)   # down

    def forward(self, x):
        return self.fc3(F.swiglu(self.fc1(x), self.fc2(x)))


class GeGLU(nn.Module):
    """x (b, T, emb_dim) -> fc3(gelu(fc1 x) * fc2 x) (b, T, emb_dim), with GPT-2's tanh GELU
    (Hugging Face's ``gelu_pytorch_tanh``)."""

    def __init__(self, emb_dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(emb_dim, hidden_dim, bias=False)   # gate
        self.fc2 = nn.Linear(emb_dim, hidden_dim, bias=False)   # up
        self.fc3 = nn.Linear(hidden_dim, emb_dim, bias=False)   # down

    def forward(self, x):
        return self.fc3(F.gelu(self.fc1(x)) * self.fc2(x))
