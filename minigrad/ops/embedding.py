"""Embedding lookup: a gather in forward, a scatter-add in backward."""
from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.tensor import _raw


class Embedding(Function):
    """out[..., :] = weight[ids[...], :].   ids: (...) ints, weight: (V, D) -> out: (..., D).

    Backward: row v of d weight is the sum of the upstream gradients of every position whose id
    is v. It is computed by sorting the ids and summing runs of equal ids (``np.add.reduceat``),
    touching only the rows that occur, never a dense one-hot (V x N) matrix.
    """

    def forward(self, weight, ids):
        self.ids, self.weight_shape = ids, weight.shape
        return np.take(weight, ids, axis=0)

    def backward(self, grad):
        flat = self.ids.reshape(-1)
        g2 = grad.reshape(flat.shape[0], -1)
        gw = np.zeros(self.weight_shape, dtype=grad.dtype)
        if flat.size == 0:
            return gw
        order = np.argsort(flat, kind="stable")
        sorted_ids = flat[order]
        starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        gw[sorted_ids[starts]] = np.add.reduceat(g2[order], starts, axis=0)
        return gw


def embedding(ids, weight):
    """Rows of ``weight`` (V, D) picked by the integer array ``ids`` (any shape)."""
    ids = np.asarray(_raw(ids))
    if ids.dtype.kind not in "iu":
        raise TypeError(f"embedding ids must be integers, got {ids.dtype}")
    n_rows = weight.shape[0]
    if ids.size and (ids.min() < 0 or ids.max() >= n_rows):
        bad = ids[(ids < 0) | (ids >= n_rows)].flat[0]
        raise ValueError(f"token id {bad} is out of range for an embedding with {n_rows} rows")
    return Embedding.apply(weight, ids=ids)
