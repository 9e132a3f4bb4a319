"""RMSNorm, the normalisation of Llama, Qwen and Gemma (in place of GPT-2's LayerNorm).

LayerNorm subtracts the mean, divides by the standard deviation, then scales and shifts:
``(x - mean) / std * scale + shift``. RMSNorm (Zhang & Sennrich 2019) keeps only the division by
the root mean square and the scale: ``x / sqrt(mean(x^2) + eps) * weight``. One statistic instead
of two, no bias, and it works as well. Gemma stores its scale as ``weight - 1`` and multiplies by
``1 + weight`` (``offset=1``), so its norms start as the identity at ``weight = 0``.
"""
from __future__ import annotations

import numpy as np

from minigrad import nn
from minigrad.nn import functional as F


class RMSNorm(nn.Module):
    """x (..., dim) -> x / sqrt(mean(x^2) + eps) * (offset + weight), one fused node
    (``minigrad.ops.rms_norm``). ``weight`` starts so that offset + weight = 1."""

    def __init__(self, dim: int, eps: float = 1e-6, offset: float = 0.0):
        super().__init__()
        self.dim, self.eps, self.offset = dim, eps, offset
        self.weight = nn.Parameter(np.full(dim, 1.0 - offset, dtype=np.float32))

    def forward(self, x):
        return F.rms_norm(x, self.weight, eps=self.eps, offset=self.offset)

    def extra_repr(self) -> str:
        return f"{self.dim}, eps={self.eps}" + (f", offset={self.offset}" if self.offset else "")
