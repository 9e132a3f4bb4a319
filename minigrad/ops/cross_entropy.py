"""Cross-entropy of logits against integer class targets, fused with log-softmax."""
from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.tensor import Tensor


class CrossEntropy(Function):
    """loss_i = log(sum_c exp(x_ic)) - x_i,t_i over the rows whose target is not ``ignore_index``.

    logits: (N, C) or (..., C); targets: (N,) or (...) integers.
    Backward: d loss_i / d x_i = softmax(x_i) - onehot(t_i), times the upstream gradient
    (divided by the number of counted rows for ``reduction="mean"``), and 0 for ignored rows.
    """

    def forward(self, logits, targets, ignore_index, reduction):
        n_classes = logits.shape[-1]
        x = logits.reshape(-1, n_classes)
        t = np.asarray(targets).reshape(-1)
        if t.shape[0] != x.shape[0]:
            raise ValueError(
                f"cross_entropy: logits of shape {logits.shape} need targets of shape {logits.shape[:-1]}, "
                f"got {np.shape(targets)}"
            )
        if t.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy targets must be integers, got {t.dtype}")
        valid = t != ignore_index
        safe_t = np.where(valid, t, 0)
        if safe_t.size and (safe_t.min() < 0 or safe_t.max() >= n_classes):
            bad = safe_t[(safe_t < 0) | (safe_t >= n_classes)][0]
            raise ValueError(f"cross_entropy: target {bad} is out of range for {n_classes} classes")
        rows = np.arange(x.shape[0])
        m = np.max(x, axis=1, keepdims=True)
        p = x - m
        np.exp(p, out=p)
        s = np.sum(p, axis=1, keepdims=True)
        losses = (np.log(s[:, 0]) + m[:, 0]) - x[rows, safe_t]   # -log softmax(x)[t]
        losses[~valid] = 0.0                                         # (not * valid: inf * 0 is NaN)
        p /= s                                                       # p = softmax(x)
        n_valid = int(valid.sum())
        self.save_for_backward(p, safe_t, valid)
        self.logits_shape, self.reduction, self.n_valid = logits.shape, reduction, n_valid
        dtype = logits.dtype.type
        if reduction == "mean":
            return np.asarray(losses.sum() / dtype(n_valid) if n_valid else dtype(np.nan), dtype=logits.dtype)
        if reduction == "sum":
            return np.asarray(losses.sum(), dtype=logits.dtype)
        return losses.reshape(logits.shape[:-1])

    def backward(self, grad):
        p, t, valid = self.saved_tensors
        if not self.last_use:
            p = p.copy()  # the graph will be walked again: keep the saved probabilities intact
        p[np.arange(p.shape[0]), t] -= 1      # softmax - onehot
        if self.reduction == "none":
            row_scale = grad.reshape(-1) * valid
        else:
            scale = grad / grad.dtype.type(self.n_valid) if self.reduction == "mean" and self.n_valid else grad
            row_scale = valid * scale.astype(p.dtype)
            if self.reduction == "mean" and not self.n_valid:
                row_scale = np.zeros_like(row_scale, dtype=p.dtype)
        p *= row_scale.astype(p.dtype, copy=False)[:, None]
        return p.reshape(self.logits_shape)


def cross_entropy(logits, targets, ignore_index: int = -100, reduction: str = "mean"):
    """Mean (or sum, or per-row) negative log-likelihood of ``targets`` under softmax(``logits``).

    Rows whose target equals ``ignore_index`` count neither in the loss nor in the mean's divisor.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', not {reduction!r}")
    t = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    return CrossEntropy.apply(logits, targets=t, ignore_index=ignore_index, reduction=reduction)
