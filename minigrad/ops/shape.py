"""Operations that only rearrange elements: reshape and axis permutations. Their backward
rearranges the gradient the inverse way."""
from __future__ import annotations

import numpy as np

from minigrad.function import Function
from minigrad.tensor import _raw


class Reshape(Function):
    def forward(self, x, shape):
        self.in_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        return grad.reshape(self.in_shape)


class Permute(Function):
    def forward(self, x, axes):
        self.axes = axes
        return np.transpose(x, axes)

    def backward(self, grad):
        return np.transpose(grad, np.argsort(self.axes))  # the inverse permutation


def reshape(x, shape):
    """A view with a new shape (one dimension may be -1)."""
    if isinstance(shape, (int, np.integer)):
        shape = (int(shape),)
    return Reshape.apply(x, shape=tuple(shape))


def permute(x, axes):
    """Reorder all axes: output axis i is input axis ``axes[i]``."""
    ndim = np.ndim(_raw(x))
    axes = tuple(int(a) % ndim for a in axes) if ndim else ()
    if sorted(axes) != list(range(ndim)):
        raise ValueError(f"permute needs a permutation of range({ndim}), got {axes}")
    return Permute.apply(x, axes=axes)


def swapaxes(x, axis0: int, axis1: int):
    """Exchange two axes (PyTorch's ``transpose(dim0, dim1)``)."""
    ndim = np.ndim(_raw(x))
    axes = list(range(ndim))
    axes[axis0], axes[axis1] = axes[axis1], axes[axis0]
    return permute(x, axes)


transpose = swapaxes


def flatten(x, start_dim: int = 0, end_dim: int = -1):
    """Merge axes ``start_dim..end_dim`` (inclusive) into one."""
    shape = np.shape(_raw(x))
    if not shape:
        return reshape(x, (1,))
    start, end = start_dim % len(shape), end_dim % len(shape)
    return reshape(x, shape[:start] + (-1,) + shape[end + 1:])


def unsqueeze(x, axis: int):
    shape = list(np.shape(_raw(x)))
    shape.insert(axis % (len(shape) + 1), 1)
    return reshape(x, tuple(shape))


def squeeze(x, axis=None):
    shape = np.shape(_raw(x))
    if axis is None:
        new = tuple(n for n in shape if n != 1)
    else:
        axes = {a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)}
        new = tuple(n for i, n in enumerate(shape) if i not in axes or n != 1)
    return reshape(x, new)
