"""minigrad: a small reverse-mode autograd engine over NumPy arrays.

    import minigrad as mg
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    x.grad            # array([2., 4., 6.], dtype=float32)

Packages, reachable after ``import minigrad`` as ``torch.nn`` is after ``import torch``:
``minigrad.nn`` (modules), ``minigrad.optim`` (optimizers and schedules), and ``minigrad.testing``
(hypothesis strategies and gradient assertions; imported on first use, since it needs hypothesis).
"""
from minigrad import allocator as _allocator  # isort: skip

_allocator.keep_freed_memory()  # reuse freed arrays instead of page-faulting fresh ones (see allocator.py)

# tensor first: it imports the ops, which import Function, which imports Tensor
from minigrad.tensor import (  # isort: skip
    DEFAULT_DTYPE,
    Tensor,
    arange,
    as_tensor,
    full,
    ones,
    ones_like,
    rand,
    randn,
    tensor,
    unbroadcast,
    zeros,
    zeros_like,
)
from minigrad.debug import detect_anomaly, to_dot
from minigrad.function import Function
from minigrad.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from minigrad.ops import *  # noqa: F401,F403  (every op is also a top-level function)
from minigrad.ops import __all__ as _ops_all
from minigrad.profiler import profile
from minigrad.random import manual_seed

from minigrad.gradcheck import GradcheckError, gradcheck

from minigrad import nn, optim  # isort: skip  (they build on everything above)

__all__ = [
    "Tensor", "tensor", "as_tensor", "zeros", "ones", "zeros_like", "ones_like", "full", "arange",
    "randn", "rand", "manual_seed", "Function", "no_grad", "enable_grad", "is_grad_enabled",
    "set_grad_enabled", "profile", "gradcheck", "GradcheckError", "to_dot", "detect_anomaly", "unbroadcast",
    "DEFAULT_DTYPE", *_ops_all,
]


def __getattr__(name: str):
    """``minigrad.testing`` on first use: it imports hypothesis, a test-time dependency only."""
    if name == "testing":
        import importlib

        return importlib.import_module("minigrad.testing")
    raise AttributeError(f"module 'minigrad' has no attribute {name!r}")
