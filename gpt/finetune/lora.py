"""Appendix E: parameter-efficient fine-tuning with LoRA (low-rank adaptation).

Instead of updating a pretrained weight matrix W (out, in), LoRA freezes it and learns a low-rank
update: two small matrices A (in, rank) and B (rank, out) whose product, scaled by alpha / rank, is
added to the layer's output::

    y = x W^T + b  +  (alpha / rank) * x A B            x: (..., in) -> y: (..., out)

B starts at zero, so a freshly wrapped model computes exactly what it did before. For GPT-2 small
with rank 16 that is 2.7 M trainable numbers instead of 124 M.

The book's three pieces are here under its names: :class:`LoRALayer`, :class:`LinearWithLoRA` and
:func:`replace_linear_with_lora`. Beyond the book, :func:`merge_lora` folds the learned update into
the plain weights, ``W += (alpha / rank) (A B)^T``, so the exported model is an ordinary GPTModel
again (same size, same speed, no LoRA code needed to run it).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from minigrad import nn
from minigrad import random as _random

__all__ = ["LoRALayer", "LinearWithLoRA", "ExpertLoRALayer", "ExpertLinearWithLoRA", "replace_linear_with_lora", "add_lora", "freeze_all_but_lora",
           "merge_lora", "lora_settings"]


def _check_rank_alpha(rank, alpha) -> None:
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"LoRA rank must be a positive integer, got {rank!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) or not math.isfinite(alpha):
        raise ValueError(f"LoRA alpha must be a finite number, got {alpha!r}")


class LoRALayer(nn.Module):
    """The low-rank update alone: x (..., in_dim) -> (alpha / rank) * x @ A @ B, shape (..., out_dim).

    A (in_dim, rank) is initialised as the book does, with
    ``torch.nn.init.kaiming_uniform_(A, a=math.sqrt(5))`` on an (in_dim, rank) tensor. PyTorch takes
    the fan-in of a 2-D tensor from its second axis, here ``rank``; the gain for leaky-ReLU slope
    sqrt(5) is sqrt(2 / (1 + 5)) = sqrt(1/3), and the uniform bound sqrt(3) * gain / sqrt(fan_in)
    works out to exactly ``1 / sqrt(rank)``: A ~ U(-1/sqrt(rank), 1/sqrt(rank)) (drawn from
    minigrad's generator, so ``minigrad.manual_seed`` makes it reproducible). B (rank, out_dim)
    starts at zero, so the update starts at zero.

    Scaling: the printed book multiplies by ``alpha`` alone; this project divides by the rank too,
    as the LoRA paper and most libraries do, so that changing the rank does not change the size of
    the update. With the book's rank = alpha = 16 the book's update is 16 times this one's (the
    book's alpha a corresponds to alpha = a * rank here). Parameter counts are the same either way.
    """

    def __init__(self, in_dim: int, out_dim: int, rank: int, alpha: float):
        super().__init__()
        _check_rank_alpha(rank, alpha)
        self.in_dim, self.out_dim, self.rank, self.alpha = int(in_dim), int(out_dim), int(rank), alpha
        bound = 1.0 / math.sqrt(rank)
        a = _random.default_generator().random((in_dim, rank), dtype=np.float32)  # [0, 1)
        a *= 2 * bound
        a -= bound
        self.A = nn.Parameter(a)                                            # (in_dim, rank)
        self.B = nn.Parameter(np.zeros((rank, out_dim), dtype=np.float32))  # (rank, out_dim)

    @property
    def scaling(self) -> float:
        return float(self.alpha) / self.rank

    def forward(self, x):
        # (..., in) @ (in, r) -> (..., r) @ (r, out) -> (..., out): never forms the (in, out) product
        return (x @ self.A @ self.B) * self.scaling

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, rank={self.rank}, alpha={self.alpha}"


class LinearWithLoRA(nn.Module):
    """A Linear layer plus a LoRA update: ``linear(x) + lora(x)``. x: (..., in) -> (..., out).

    As in the book, wrapping does not freeze ``linear``; :func:`replace_linear_with_lora` does.
    ``weight`` and ``bias`` are the wrapped layer's own (the frozen base weight, not W plus the
    update), so code that asks a model's head for its weight keeps working.
    """

    def __init__(self, linear: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"LinearWithLoRA wraps an nn.Linear, got {type(linear).__name__}")
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)

    @property
    def weight(self):
        return self.linear.weight

    @property
    def bias(self):
        return self.linear.bias

    @property
    def in_features(self) -> int:
        return self.linear.in_features

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def forward(self, x):
        return self.linear(x) + self.lora(x)

    def merged_weight(self) -> np.ndarray:
        """W + (alpha / rank) (A B)^T, shape (out, in), in the weight's dtype (summed in float64)."""
        w = self.linear.weight.data
        delta = self.lora.scaling * (self.lora.A.data.astype(np.float64) @ self.lora.B.data.astype(np.float64))
        return (w.astype(np.float64) + delta.T).astype(w.dtype)


class ExpertLoRALayer(nn.Module):
    """LoRA for E stacked experts (beyond the book): expert e gets its own A[e] (in, rank) and
    B[e] (rank, out). x (E, C, in) -> (alpha / rank) * x[e] @ A[e] @ B[e], shape (E, C, out).
    Initialised as :class:`LoRALayer` (A uniform in +-1/sqrt(rank), B zero)."""

    def __init__(self, num_experts: int, in_dim: int, out_dim: int, rank: int, alpha: float):
        super().__init__()
        _check_rank_alpha(rank, alpha)
        self.num_experts, self.in_dim, self.out_dim = int(num_experts), int(in_dim), int(out_dim)
        self.rank, self.alpha = int(rank), alpha
        bound = 1.0 / math.sqrt(rank)
        a = _random.default_generator().random((num_experts, in_dim, rank), dtype=np.float32)
        a *= 2 * bound
        a -= bound
        self.A = nn.Parameter(a)                                                          # (E, in, rank)
        self.B = nn.Parameter(np.zeros((num_experts, rank, out_dim), dtype=np.float32))   # (E, rank, out)

    @property
    def scaling(self) -> float:
        return float(self.alpha) / self.rank

    def forward(self, x):
        return (x @ self.A @ self.B) * self.scaling       # (E, C, in) -> (E, C, r) -> (E, C, out)


class ExpertLinearWithLoRA(nn.Module):
    """A mixture-of-experts' stacked ``ExpertLinear`` (weight (E, out, in)) plus a LoRA update per
    expert. x: (E, C, in) -> (E, C, out)."""

    def __init__(self, linear, rank: int, alpha: float):
        super().__init__()
        from gpt.architectures.moe import ExpertLinear

        if not isinstance(linear, ExpertLinear):
            raise TypeError(f"ExpertLinearWithLoRA wraps an ExpertLinear, got {type(linear).__name__}")
        self.linear = linear
        self.lora = ExpertLoRALayer(linear.num_experts, linear.in_features, linear.out_features, rank, alpha)

    @property
    def weight(self):
        return self.linear.weight

    def forward(self, x):
        return self.linear(x) + self.lora(x)

    def merged_weight(self) -> np.ndarray:
        """W[e] + (alpha / rank) (A[e] B[e])^T for every expert, shape (E, out, in)."""
        w = self.linear.weight.data
        delta = self.lora.scaling * (self.lora.A.data.astype(np.float64) @ self.lora.B.data.astype(np.float64))
        return (w.astype(np.float64) + delta.swapaxes(1, 2)).astype(w.dtype)


def _lora_wrapper(child):
    """The LoRA wrapper class for a layer LoRA applies to (nn.Linear or a stack of experts), or None."""
    if isinstance(child, nn.Linear):
        return LinearWithLoRA
    from gpt.architectures.moe import ExpertLinear

    return ExpertLinearWithLoRA if isinstance(child, ExpertLinear) else None


_WRAPPERS = (LinearWithLoRA, ExpertLinearWithLoRA)


def replace_linear_with_lora(model: nn.Module, rank: int, alpha: float) -> nn.Module:
    """Wrap every ``nn.Linear`` inside ``model`` (at any depth) in a :class:`LinearWithLoRA` and
    freeze the wrapped layers' weights and biases; the new A and B are trainable.

    Beyond the book, a mixture of experts' stacked expert matrices (``ExpertLinear``, gpt/architectures)
    are wrapped too, with an A and B per expert (:class:`ExpertLinearWithLoRA`).

    Other parameters (embeddings, LayerNorms) are left as they are: the book first freezes the whole
    model with ``model.requires_grad_(False)``, then calls this, so that only A and B train.
    Works in place and returns ``model`` (or the wrapper, if ``model`` is itself a Linear).
    Raises ValueError if the model already has LoRA layers (merge them first).
    """
    _check_rank_alpha(rank, alpha)
    if isinstance(model, _WRAPPERS) or any(isinstance(m, _WRAPPERS) for m in model.modules()):
        raise ValueError("the model already has LoRA layers; merge them with merge_lora() before adding new ones")
    wrapper = _lora_wrapper(model)
    if wrapper is not None:
        model.requires_grad_(False)
        return wrapper(model, rank, alpha)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            wrapper = _lora_wrapper(child)
            if wrapper is not None:
                child.requires_grad_(False)
                setattr(parent, name, wrapper(child, rank, alpha))
    return model


def add_lora(model, rank: int, alpha: float | None = None):
    """Appendix E's setting: freeze the whole model, then wrap every Linear (the output head too) in
    LoRA of ``rank`` and ``alpha`` (default: the rank), so only the LoRA matrices A and B train.
    Returns the model."""
    model.requires_grad_(False)
    replace_linear_with_lora(model, rank, rank if alpha is None else alpha)
    return model


def freeze_all_but_lora(model: nn.Module) -> nn.Module:
    """Freeze every parameter except the LoRA matrices A and B (appendix E's setting), e.g. again
    after loading a LoRA checkpoint. Returns the model."""
    model.requires_grad_(False)
    for m in model.modules():
        if isinstance(m, (LoRALayer, ExpertLoRALayer)):
            m.requires_grad_(True)
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every :class:`LinearWithLoRA` by its plain Linear with the update folded in:
    ``W <- W + (alpha / rank) (A B)^T`` (beyond the book: for exporting a LoRA fine-tune).

    The merged model computes the same outputs (up to float32 rounding) without the LoRA matrices.
    Each merged weight is a new Parameter (keeping the old one's ``requires_grad``), so a weight
    shared with another layer -- GPT-2's output head tied to the token embedding -- is not changed
    behind that layer's back; a GPTModel whose head that unties gets ``cfg.tie_weights = False``.
    Works in place and returns ``model`` (or the Linear, if ``model`` is itself a LinearWithLoRA).
    """
    def merged(wrapper):
        linear = wrapper.linear
        old = linear.weight
        linear.weight = nn.Parameter(wrapper.merged_weight(), requires_grad=old.requires_grad)
        return linear

    if isinstance(model, _WRAPPERS):
        return merged(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _WRAPPERS):
                setattr(parent, name, merged(child))
    cfg = getattr(model, "cfg", None)
    head, emb = getattr(model, "out_head", None), getattr(model, "tok_emb", None)
    if (getattr(cfg, "tie_weights", False) and head is not None and emb is not None
            and getattr(head, "weight", None) is not emb.weight):
        model.cfg = dataclasses.replace(cfg, tie_weights=False)
    return model


def lora_settings(model: nn.Module) -> dict | None:
    """``{"rank": r, "alpha": a}`` of the model's LoRA layers (None if it has none); raises
    ValueError if they differ, since a checkpoint records one setting."""
    found = {(m.lora.rank, m.lora.alpha) for m in model.modules() if isinstance(m, _WRAPPERS)}
    if not found:
        return None
    if len(found) > 1:
        raise ValueError(f"the model's LoRA layers use different settings {sorted(found)}; "
                         "a checkpoint records a single rank and alpha")
    (rank, alpha), = found
    return {"rank": rank, "alpha": alpha}
