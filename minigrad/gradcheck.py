"""``gradcheck``: compare backward against central finite differences, in float64.

For a function f of tensors and a random upstream gradient u (not all ones, so that every output
element matters with a different weight), backward computes d(sum(u * f))/dx for every input x.
Central differences estimate the same number one element at a time:

    (sum(u * f(x + eps e_i)) - sum(u * f(x - eps e_i))) / (2 eps)

with an error of O(eps^2), which float64 makes negligible next to atol/rtol.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from minigrad.grad_mode import no_grad
from minigrad.tensor import Tensor


class GradcheckError(AssertionError):
    """Raised when an analytic gradient disagrees with its finite-difference estimate."""


def fn_name(fn: Callable) -> str:
    """How messages name the function under check: its qualified name, or its class's name."""
    return getattr(fn, "__qualname__", None) or type(fn).__name__


def _describe(fn: Callable, out: Tensor) -> str:
    op = type(out.grad_fn).__name__ if out.grad_fn is not None else "no op"
    return f"{fn_name(fn)} (output made by {op})"


def gradcheck(
    fn: Callable[..., Tensor],
    *inputs,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    upstream: np.ndarray | None = None,
) -> bool:
    """Check ``fn``'s gradients with respect to every input tensor that requires grad.

    Args:
        fn: maps the inputs to one output Tensor. It must be deterministic (no dropout in training
            mode) and should run in float64.
        inputs: tensors (those with ``requires_grad`` are checked) and any other arguments,
            passed to ``fn`` unchanged. Float64 tensors are perturbed in place (and restored), so a
            module's parameters can be checked by passing them too: after ``model.double()``,
            ``gradcheck(lambda x, *ps: model(x), x, *model.parameters())``; other tensors are
            checked through float64 copies.
        eps, atol, rtol: step of the central difference and the tolerance
            ``|analytic - numeric| <= atol + rtol * |numeric|``.
        seed: seeds the random upstream gradient; ``upstream`` gives one explicitly.

    Returns True, or raises :class:`GradcheckError` naming the input, the worst element's index,
    both values and the operation.
    """
    args = []
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad and not (
            x.dtype == np.float64 and x.data.flags.c_contiguous and x.data.flags.writeable
        ):  # perturb a contiguous float64 copy; float64 tensors (e.g. a module's parameters) in place
            x = Tensor(np.array(x.data, dtype=np.float64, order="C"), requires_grad=True, name=x.name)
        args.append(x)
    checked = [i for i, x in enumerate(args) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: none of the inputs is a tensor with requires_grad=True")

    for i in checked:
        args[i].grad = None
    out = fn(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    what = _describe(fn, out)
    if upstream is None:
        upstream = np.random.default_rng(seed).standard_normal(out.shape)
    upstream = np.asarray(upstream, dtype=np.float64).reshape(out.shape)
    if out.requires_grad:
        out.backward(upstream.astype(out.dtype))
    for i in checked:
        if args[i] is not inputs[i] and args[i].grad is None:
            # fn never used the float64 copy: typically a float32 module parameter passed alongside
            # the input, which fn reads from the module instead. Checking it would check nothing.
            raise GradcheckError(
                f"gradcheck: input {i} ({inputs[i].dtype}, shape {inputs[i].shape}) was copied to float64 "
                "but fn never used the copy; if it is a module parameter, call model.double() first so "
                "that it is perturbed in place"
            )

    def objective() -> float:
        with no_grad():
            return float(np.sum(fn(*args).data.astype(np.float64) * upstream))

    for i in checked:
        x = args[i]
        analytic = x.grad if x.grad is not None else np.zeros_like(x.data)
        if analytic.shape != x.shape:
            raise GradcheckError(f"{what}: gradient of input {i} has shape {analytic.shape}, expected {x.shape}")
        numeric = np.zeros(x.shape, dtype=np.float64)
        flat = x.data.reshape(-1)  # a view: perturbing it perturbs the input
        num_flat = numeric.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            try:
                flat[j] = orig + eps
                plus = objective()
                flat[j] = orig - eps
                minus = objective()
            finally:  # float64 inputs are perturbed in place: restore them even if fn raises
                flat[j] = orig
            num_flat[j] = (plus - minus) / (2 * eps)
        err = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        # a NaN/Inf on either side (e.g. f is undefined at x +- eps) is a failure, never a pass
        if err.size and (not np.all(np.isfinite(err)) or np.max(err) > 0):
            k = np.unravel_index(int(np.argmax(np.where(np.isfinite(err), err, np.inf))), x.shape)
            raise GradcheckError(
                f"{what}: gradient of input {i} (shape {x.shape}) is wrong at index {tuple(int(v) for v in k)}: "
                f"analytic {float(analytic[k])!r}, numeric {float(numeric[k])!r} (atol={atol}, rtol={rtol})"
            )
    return True
