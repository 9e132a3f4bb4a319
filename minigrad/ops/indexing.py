"""Indexing, joining, splitting and selecting."""
from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.tensor import _raw


def _plain_index(index):
    """Replace Tensors inside an index by their arrays."""
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    return _raw(index)


def _is_basic(index) -> bool:
    """True if the index only slices (ints, slices, None, ...): then no element is picked twice."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(
        isinstance(p, (slice, type(None), type(Ellipsis))) or (isinstance(p, (int, np.integer)) and not isinstance(p, bool))
        for p in parts
    )


class GetItem(Function):
    def forward(self, x, index):
        self.in_shape, self.index = x.shape, index
        return x[index]

    def backward(self, grad):
        # each picked element passes its gradient back to where it came from;
        # an element picked several times (repeated integer indices) receives the sum
        gx = np.zeros(self.in_shape, dtype=grad.dtype)
        if _is_basic(self.index):
            gx[self.index] = grad
        else:
            np.add.at(gx, self.index, grad)
        return gx


class Concat(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        self.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    def backward(self, grad):
        return tuple(np.split(grad, self.bounds, axis=self.axis))  # each input gets its own slab


class Stack(Function):
    def forward(self, *arrays, axis):
        self.axis = axis
        return np.stack(arrays, axis=axis)

    def backward(self, grad):
        return tuple(np.moveaxis(grad, self.axis, 0))  # input i gets slice i along the new axis


class Where(Function):
    def forward(self, a, b, condition):
        self.condition = condition
        return np.where(condition, a, b)

    def backward(self, grad):
        zero = grad.dtype.type(0)
        ga = np.where(self.condition, grad, zero) if self.needs_input_grad[0] else None
        gb = np.where(self.condition, zero, grad) if self.needs_input_grad[1] else None
        return ga, gb


class MaskedFill(Function):
    may_produce_inf = True  # masked_fill(mask, -inf) is the point of a causal mask

    def forward(self, x, mask, value):
        self.mask = mask
        out = np.array(np.broadcast_to(x, np.broadcast_shapes(x.shape, mask.shape)))  # a copy we own
        np.copyto(out, x.dtype.type(value), where=mask)   # several times faster than np.where
        return out

    def backward(self, grad):
        # filled positions are constants: no gradient reaches x there
        gx = np.array(grad)
        np.copyto(gx, grad.dtype.type(0), where=self.mask)
        return gx


def getitem(x, index):
    """``x[index]`` with NumPy semantics: slices, ints, None, integer arrays and boolean masks."""
    return GetItem.apply(x, index=_plain_index(index))


def concat(tensors, axis: int = 0):
    """Join tensors along an existing axis (``torch.cat``)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concat needs at least one tensor")
    return Concat.apply(*tensors, axis=axis)


cat = concat


def stack(tensors, axis: int = 0):
    """Join tensors of equal shape along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    ndim = np.ndim(getattr(tensors[0], "data", tensors[0]))
    return Stack.apply(*tensors, axis=axis % (ndim + 1))


def split(x, split_size_or_sections, axis: int = 0):
    """Split into pieces along ``axis``: pieces of ``split_size`` (an int; the last may be smaller)
    or of the given list of sizes, as ``torch.split`` does."""
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        if split_size_or_sections <= 0:
            raise ValueError("split size must be positive")
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} add up to {sum(sizes)}, but axis {axis} has {n} elements")
    pieces, start = [], 0
    prefix = (slice(None),) * (axis % x.ndim)
    for size in sizes:
        pieces.append(getitem(x, prefix + (slice(start, start + size),)))
        start += size
    return pieces


def chunk(x, chunks: int, axis: int = 0):
    """Split into ``chunks`` nearly equal pieces (the last may be smaller), as ``torch.chunk``."""
    n = x.shape[axis]
    return split(x, max(1, -(-n // chunks)), axis)


def where(condition, a, b):
    """Elements of ``a`` where ``condition`` holds, else of ``b`` (broadcasting)."""
    cond = np.asarray(_raw(condition), dtype=bool)
    return Where.apply(a, b, condition=cond)


def masked_fill(x, mask, value):
    """``x`` with ``value`` wherever the boolean ``mask`` (broadcastable to x) is true."""
    m = np.asarray(_raw(mask), dtype=bool)
    return MaskedFill.apply(x, mask=m, value=value)
