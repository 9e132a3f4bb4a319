"""The ``Tensor``: a NumPy array plus what reverse-mode autodiff needs to differentiate through it.

A tensor made by an operation remembers the ``Function`` that made it (``tensor._ctx``); that
function remembers its inputs (``ctx.parents``) and whatever it saved for its backward pass. Calling
``loss.backward()`` walks this graph from ``loss`` back to the leaves (tensors made by the user,
such as parameters) and applies the chain rule one function at a time:

    grad_input = ctx.backward(grad_output)

Design notes for people stepping through it in a debugger:

* The walk is an iterative depth-first topological sort, so a chain of 100,000 operations does
  not hit Python's recursion limit.
* A tensor points to its function and the function to its inputs, never back to its output: there
  are no reference cycles, and an intermediate result is freed as soon as nothing needs it.
* After ``backward`` (unless ``retain_graph=True``) every function drops its saved arrays and its
  inputs, so activations are released as the walk goes rather than when the loss is dropped.
* Gradients of leaves accumulate across ``backward`` calls, as in PyTorch, until ``zero_grad``.
* Broadcasting is undone in exactly one place, :func:`unbroadcast`, called by the engine for every
  input of every function; each function's backward may return a gradient of the broadcast shape.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from minigrad import debug, profiler

DEFAULT_DTYPE = np.float32


def _default_float(arr: np.ndarray, data) -> np.ndarray:
    """The one dtype rule for new tensors: Python floats (and lists of them), which NumPy makes
    float64, become DEFAULT_DTYPE (float32); NumPy arrays and scalars keep their dtype."""
    if arr.dtype == np.float64 and not isinstance(data, (np.ndarray, np.generic)):
        return arr.astype(DEFAULT_DTYPE)
    return arr


def _as_array(data, dtype=None) -> np.ndarray:
    """Convert user data to an array (see :func:`_default_float`), without copying an array."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    return _default_float(np.asarray(data), data)


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Args:
        data: an array, a nested list or a number. Python floats and lists become float32
            (the default dtype); NumPy arrays keep their dtype, so float64 inputs stay float64.
        requires_grad: whether ``backward`` should compute a gradient for this tensor
            (floating-point tensors only).
        dtype: an explicit NumPy dtype to convert to.
        name: an optional label shown in ``repr`` and in :func:`minigrad.to_dot`.
    """

    __array_priority__ = 1000  # make ``ndarray + Tensor`` call Tensor.__radd__
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "name", "_retain_grad", "_hooks", "__weakref__")

    def __init__(self, data, requires_grad: bool = False, dtype=None, name: str | None = None):
        self.data = _as_array(data, dtype)
        self.grad: np.ndarray | None = None
        self.requires_grad_(requires_grad)
        self._ctx = None
        self.name = name
        self._retain_grad = False
        self._hooks: list[Callable] | None = None

    @classmethod
    def _from_op(cls, data: np.ndarray, ctx) -> "Tensor":
        """Wrap an operation's output without re-validating it (hot path)."""
        t = cls.__new__(cls)
        if not isinstance(data, np.ndarray):  # NumPy returns scalars for 0-d results; .data is an array
            data = np.asarray(data)
        t.data, t.grad, t.name, t._retain_grad, t._hooks = data, None, None, False, None
        t.requires_grad = ctx is not None
        t._ctx = ctx
        return t

    # ------------------------------------------------------------------ array-like properties
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def numel(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded operation (parameters, inputs)."""
        return self._ctx is None

    @property
    def grad_fn(self):
        """The Function that produced this tensor, or None for a leaf."""
        return self._ctx

    def numpy(self) -> np.ndarray:
        """The underlying array (no copy)."""
        return self.data

    def item(self):
        """The single value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> "Tensor":
        """A new leaf tensor sharing this tensor's data, cut off from the graph."""
        return Tensor(self.data)

    def requires_grad_(self, mode: bool = True) -> "Tensor":
        if mode and self.data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, not {self.data.dtype}")
        self.requires_grad = bool(mode)
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="tensor(", threshold=50)
        extras = []
        if self.data.dtype != DEFAULT_DTYPE:
            extras.append(f"dtype={self.data.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn={type(self._ctx).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        if self.name:
            extras.append(f"name={self.name!r}")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __hash__(self) -> int:
        return id(self)

    # ------------------------------------------------------------------ hooks and retained grads
    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after ``backward`` (leaves always keep it)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retain_grad = True

    def register_hook(self, fn: Callable[[np.ndarray], np.ndarray | None]) -> Callable[[], None]:
        """Call ``fn(grad)`` when this tensor's gradient is computed; a returned array replaces it.

        Returns a function that removes the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(fn)

        def remove() -> None:
            if self._hooks and fn in self._hooks:
                self._hooks.remove(fn)

        return remove

    # ------------------------------------------------------------------ backward
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) * grad into ``leaf.grad`` for every leaf that requires grad.

        Args:
            grad: the upstream gradient, same shape as ``self``; may be omitted for a one-element
                tensor (a loss), where it is 1.
            retain_graph: keep the saved arrays so that ``backward`` can run through this graph again.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: was it computed under no_grad(), "
                "or from inputs none of which require grad?"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element tensor, this one has shape "
                    f"{self.shape}; pass grad= of that shape"
                )
            grad = np.ones_like(self.data)
        else:
            grad = np.array(_raw(grad), dtype=self.dtype, copy=True)
            if grad.shape != self.shape:
                raise ValueError(f"backward(grad=...) has shape {grad.shape}, expected {self.shape}")
        _run_backward(self, grad, retain_graph)

    # ------------------------------------------------------------------ operators
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pow__(self, exponent):
        return _ops.pow(self, exponent)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    # Comparisons give plain boolean tensors (no gradient flows through them).
    def __lt__(self, other):
        return Tensor(self.data < _raw(other))

    def __le__(self, other):
        return Tensor(self.data <= _raw(other))

    def __gt__(self, other):
        return Tensor(self.data > _raw(other))

    def __ge__(self, other):
        return Tensor(self.data >= _raw(other))

    def eq(self, other) -> "Tensor":
        return Tensor(self.data == _raw(other))

    # ------------------------------------------------------------------ methods mirroring ops
    @property
    def T(self) -> "Tensor":
        return _ops.permute(self, tuple(reversed(range(self.ndim))))

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def sqrt(self):
        return _ops.sqrt(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def relu(self):
        return _ops.relu(self)

    def gelu(self):
        return _ops.gelu(self)

    def abs(self):
        return _ops.abs(self)

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops.sum(self, _pick(axis, dim), _pick(keepdims, keepdim))

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops.mean(self, _pick(axis, dim), _pick(keepdims, keepdim))

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return _ops.max(self, _pick(axis, dim), _pick(keepdims, keepdim))

    def var(self, axis=None, keepdims=False, ddof=None, *, dim=None, keepdim=None, unbiased=None):
        return _ops.var(self, _pick(axis, dim), _pick(keepdims, keepdim), ddof=ddof, unbiased=unbiased)

    def softmax(self, axis=-1, *, dim=None):
        return _ops.softmax(self, _pick(axis, dim))

    def log_softmax(self, axis=-1, *, dim=None):
        return _ops.log_softmax(self, _pick(axis, dim))

    def reshape(self, *shape):
        return _ops.reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        return _ops.flatten(self, start_dim, end_dim)

    def unsqueeze(self, axis: int):
        return _ops.unsqueeze(self, axis)

    def squeeze(self, axis=None):
        return _ops.squeeze(self, axis)

    def transpose(self, dim0: int, dim1: int):
        """Swap two axes (PyTorch's ``transpose``; see :meth:`permute` for a full reordering)."""
        return _ops.swapaxes(self, dim0, dim1)

    swapaxes = transpose

    def permute(self, *axes):
        return _ops.permute(self, axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes)

    def split(self, split_size_or_sections, axis=0, *, dim=None):
        return _ops.split(self, split_size_or_sections, _pick(axis, dim))

    def chunk(self, chunks: int, axis=0, *, dim=None):
        return _ops.chunk(self, chunks, _pick(axis, dim))

    def masked_fill(self, mask, value):
        return _ops.masked_fill(self, mask, value)

    def astype(self, dtype):
        return _ops.astype(self, dtype)

    def float(self):
        return _ops.astype(self, np.float32)

    def double(self):
        return _ops.astype(self, np.float64)


def _pick(primary, alias):
    """Accept both NumPy's and PyTorch's argument names (``axis``/``dim``, ``keepdims``/``keepdim``)."""
    return primary if alias is None else alias


def _raw(x):
    """The NumPy array inside a Tensor; anything else as it is."""
    return x.data if isinstance(x, Tensor) else x


# ---------------------------------------------------------------------- the engine
def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting ``shape`` up to ``grad.shape``.

    Broadcasting copies an input along new leading axes and along axes of size 1, so the gradient
    of that copy is the sum over those axes.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and grad.shape[i + extra] != 1
    )
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _topological_order(root: Tensor) -> list[Tensor]:
    """Tensors reachable from ``root`` that require grad, each after all of its inputs (iterative DFS)."""
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        ctx = node._ctx
        if ctx is not None:
            if ctx.parents is None:
                raise RuntimeError(
                    "backward() through a graph whose saved arrays were already freed by an earlier "
                    "backward(); pass retain_graph=True to the first call if you need to go through it twice"
                )
            for parent in ctx.parents:
                if parent.requires_grad and id(parent) not in visited:
                    stack.append((parent, False))
    return order


def _own(grad: np.ndarray, dtype, seen_bases: set[int]) -> np.ndarray:
    """Return ``grad`` in a form safe to store as a ``.grad``: writable, contiguous, not shared."""
    base = grad
    while base.base is not None:
        base = base.base
    if (not grad.flags.writeable or not grad.flags.c_contiguous or id(base) in seen_bases
            or grad.dtype != dtype):
        grad = np.array(grad, dtype=dtype, order="C", copy=True)
        base = grad
    seen_bases.add(id(base))
    return grad


def _run_backward(root: Tensor, grad: np.ndarray, retain_graph: bool) -> None:
    order = _topological_order(root)
    grads: dict[int, np.ndarray] = {id(root): grad}
    summed: set[int] = set()  # ids of arrays the engine allocated itself (safe to add into in place)
    seen_bases: set[int] = set()
    anomaly = debug.is_anomaly_enabled()
    prof = profiler.current()
    for node in reversed(order):  # outputs before the inputs that made them
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._hooks:
            for hook in node._hooks:
                replaced = hook(g)
                if replaced is not None:
                    g = np.asarray(replaced)
        ctx = node._ctx
        if ctx is None or node._retain_grad:
            g_own = _own(g, node.dtype, seen_bases)
            if node.grad is None:
                node.grad = g_own
            else:
                node.grad = node.grad + g_own
            if ctx is None:
                continue
        ctx.last_use = not retain_graph
        if prof is None:
            input_grads = ctx.backward(g)
        else:
            start = time.perf_counter()
            input_grads = ctx.backward(g)
            prof.add(type(ctx).__name__, "backward", time.perf_counter() - start)
        if not isinstance(input_grads, tuple):
            input_grads = (input_grads,)
        parents = ctx.parents
        if len(input_grads) != len(parents):
            raise RuntimeError(
                f"{type(ctx).__name__}.backward returned {len(input_grads)} gradients for {len(parents)} inputs"
            )
        for parent, pg in zip(parents, input_grads):
            if pg is None or not parent.requires_grad:
                continue
            pg = unbroadcast(pg, parent.shape)
            if pg.shape != parent.shape:  # pragma: no cover - a bug in an op's backward
                raise RuntimeError(
                    f"{type(ctx).__name__}.backward produced a gradient of shape {pg.shape} "
                    f"for an input of shape {parent.shape}"
                )
            if anomaly:
                debug.check_backward(ctx, pg)
            key = id(parent)
            previous = grads.get(key)
            if previous is None:
                grads[key] = pg
            elif key in summed:
                previous += pg
            else:
                # asarray: for 0-d operands NumPy returns a scalar, and `+=` on a scalar would not be in place
                grads[key] = np.asarray(previous + pg)
                summed.add(key)
        if not retain_graph:
            ctx.release()


def as_tensor(x, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor. Plain numbers and arrays are constants; float ones take ``like``'s dtype
    so that a float64 constant never silently upcasts a float32 computation."""
    if isinstance(x, Tensor):
        return x
    arr = np.asarray(x)
    if like is not None and arr.dtype.kind in "fiub" and like.dtype.kind == "f":
        if arr.dtype != like.dtype:  # also int arrays: NumPy promotes float32 with int64 to float64
            arr = arr.astype(like.dtype)
    else:
        arr = _default_float(arr, x)
    return Tensor(arr)


# ---------------------------------------------------------------------- creation helpers
def tensor(data, requires_grad: bool = False, dtype=None, name: str | None = None) -> Tensor:
    """Create a tensor (see :class:`Tensor`); the data is copied."""
    arr = np.array(_raw(data), dtype=dtype, copy=True)
    if dtype is None:
        arr = _default_float(arr, _raw(data))
    return Tensor(arr, requires_grad=requires_grad, name=name)


def _shape(shape) -> tuple[int, ...]:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        return tuple(shape[0])
    return tuple(shape)


def zeros(*shape, dtype=DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.zeros_like(_raw(t), dtype=dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    return Tensor(np.ones_like(_raw(t), dtype=dtype), requires_grad=requires_grad)


def full(shape, value, dtype=DEFAULT_DTYPE, requires_grad: bool = False) -> Tensor:
    return Tensor(np.full(shape, value, dtype=dtype), requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None) -> Tensor:
    """Like ``np.arange``; integer arguments give int64, float ones float32."""
    if stop is None:
        start, stop = 0, start
    arr = np.arange(start, stop, step, dtype=dtype)
    if dtype is None and arr.dtype == np.float64:   # float arguments, NumPy's float64 scalars too
        arr = arr.astype(DEFAULT_DTYPE)
    return Tensor(arr)


def randn(*shape, rng: np.random.Generator | None = None, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    """Standard normal samples drawn from ``rng`` (default: the generator set by ``manual_seed``)."""
    rng = rng if rng is not None else _random.default_generator()
    return Tensor(rng.standard_normal(_shape(shape), dtype=np.float32 if dtype == np.float32 else np.float64)
                  .astype(dtype, copy=False), requires_grad=requires_grad)


def rand(*shape, rng: np.random.Generator | None = None, dtype=DEFAULT_DTYPE, requires_grad=False) -> Tensor:
    """Uniform samples in [0, 1) drawn from ``rng`` (default: the generator set by ``manual_seed``)."""
    rng = rng if rng is not None else _random.default_generator()
    return Tensor(rng.random(_shape(shape), dtype=np.float32 if dtype == np.float32 else np.float64)
                  .astype(dtype, copy=False), requires_grad=requires_grad)


from minigrad import ops as _ops  # noqa: E402  (ops build Tensors, so they import this module)
from minigrad import random as _random  # noqa: E402
