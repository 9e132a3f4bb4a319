"""``Function``: the base class of every differentiable operation (and of your own).

Subclass it, write ``forward`` on NumPy arrays and ``backward`` returning one gradient per tensor
input, and call ``YourOp.apply(*inputs, **options)``::

    class Square(Function):
        def forward(self, x):                 # x: ndarray
            self.save_for_backward(x)
            return x * x

        def backward(self, grad):             # grad: d(loss)/d(output), shape of the output
            (x,) = self.saved_tensors
            return 2 * x * grad               # d(x^2)/dx = 2x

``self`` is the context: whatever ``forward`` saves is there in ``backward``. Tensor positional
arguments are the differentiable inputs; keyword arguments are plain options. ``backward`` may
return a gradient of the *broadcast* shape (the engine sums it down to the input's shape) and
``None`` for an input that needs no gradient (see ``self.needs_input_grad``, which is all False
when no graph is being recorded, so ``forward`` can skip saving and reuse its buffers). It must
never write into ``grad`` (it may be shared); it may overwrite its own saved arrays only when
``self.last_use`` is true (the graph will not be walked again).
"""
from __future__ import annotations

import time

import numpy as np

from minigrad import debug, profiler
from minigrad.grad_mode import is_grad_enabled
from minigrad.tensor import Tensor, as_tensor


class Function:
    """Base class of differentiable operations; see the module docstring for how to write one.

    An instance is the context of one call: ``forward`` runs on NumPy arrays and may stash what
    ``backward`` needs (``save_for_backward``); ``apply`` wraps the result in a Tensor that points
    back to this context, which points to the input tensors (``parents``).
    """

    #: set by an op that legitimately outputs +-inf from finite inputs (masked_fill with -inf)
    may_produce_inf = False

    def __init__(self):
        self.parents: tuple[Tensor, ...] | None = ()
        self.saved_tensors: tuple = ()
        self.needs_input_grad: tuple[bool, ...] = ()
        self.last_use = True
        self.created_at = ""

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays

    def forward(self, *arrays: np.ndarray, **options) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray):
        raise NotImplementedError

    def release(self) -> None:
        """Drop saved arrays and inputs once backward has used them (frees activations early)."""
        self.saved_tensors = ()
        self.parents = None

    @classmethod
    def apply(cls, *inputs, **options) -> Tensor:
        like = next((x for x in inputs if isinstance(x, Tensor) and x.dtype.kind == "f"), None)
        if like is None:
            like = next((x for x in inputs if isinstance(x, Tensor)), None)
        tensors = tuple(as_tensor(x, like) for x in inputs)
        if len(tensors) > 1:
            # An integer tensor meeting a float one takes the float's dtype (as in PyTorch); NumPy
            # would promote int64 with float32 to float64.
            first_float = next((t for t in tensors if t.dtype.kind == "f"), None)
            if first_float is not None and any(t.dtype.kind in "iub" for t in tensors):
                tensors = tuple(Tensor(t.data.astype(first_float.dtype)) if t.dtype.kind in "iub" else t
                                for t in tensors)
        ctx = cls()
        needs = tuple(t.requires_grad for t in tensors)
        record = any(needs) and is_grad_enabled()
        # all False when no graph is recorded (no_grad): forward may then skip saving for backward
        ctx.needs_input_grad = needs if record else (False,) * len(needs)
        arrays = [t.data for t in tensors]
        prof = profiler.current()
        if prof is None:
            out = ctx.forward(*arrays, **options)
        else:
            start = time.perf_counter()
            out = ctx.forward(*arrays, **options)
            prof.add(cls.__name__, "forward", time.perf_counter() - start)
        if debug.is_anomaly_enabled():
            ctx.created_at = debug.creation_site()
            debug.check_forward(ctx, arrays, out)
        if not record:
            return Tensor._from_op(out, None)
        ctx.parents = tensors
        return Tensor._from_op(out, ctx)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
