"""Property-testing helpers: hypothesis strategies for arrays and tensors, and a gradient assertion.

This is the only module of minigrad that imports hypothesis (install it with ``pip install hypothesis``
or ``pip install -e ".[test]"``). With it, a gradient test of your own operation is a few lines::

    from hypothesis import given
    import minigrad as mg
    from minigrad.testing import assert_gradients_match, tensors

    def softplus(x):                        # your op, built from minigrad ops
        return mg.log(1 + mg.exp(x))

    @given(tensors(min_value=-4, max_value=4))
    def test_softplus_gradient(x):          # x: a float64 Tensor of random shape, requires_grad
        assert_gradients_match(softplus, x)

Strategies:

* :func:`shapes` -- a random shape, e.g. ``(3, 1, 2)``.
* :func:`broadcastable_shapes` -- ``n`` shapes that broadcast together, with size-1 axes and
  different numbers of axes, e.g. ``((2, 1, 3), (4, 1))``.
* :func:`arrays` -- float64 (or float32) NumPy arrays whose values stay in ``[min_value, max_value]``
  and at least ``margin`` away from the points in ``away_from`` (kinks such as 0 for ``relu``/``abs``,
  singularities such as 0 for ``log``).
* :func:`tensors` -- the same values wrapped in a :class:`~minigrad.Tensor` that requires grad.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        "minigrad.testing needs hypothesis; install it with `pip install hypothesis` "
        "(or `pip install -e \".[test]\"`)"
    ) from err

from minigrad.grad_mode import no_grad
from minigrad.gradcheck import GradcheckError, fn_name, gradcheck
from minigrad.tensor import Tensor

__all__ = ["shapes", "broadcastable_shapes", "arrays", "tensors", "assert_gradients_match"]


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1, max_side: int = 5) -> st.SearchStrategy:
    """Shapes (tuples of ints) with ``min_dims..max_dims`` axes of ``min_side..max_side`` elements.

    ``shapes(max_dims=2, max_side=3)`` draws e.g. ``()``, ``(3,)`` or ``(2, 1)``. Keep them small in
    gradient tests: a finite-difference check evaluates the function twice per input element.
    """
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


@st.composite
def broadcastable_shapes(draw, n: int = 2, min_dims: int = 0, max_dims: int = 4, min_side: int = 1,
                         max_side: int = 5) -> tuple[tuple[int, ...], ...]:
    """A tuple of ``n`` shapes that NumPy can broadcast together.

    A full shape is drawn first (sides of at least 2 where ``max_side`` allows); each of the ``n``
    shapes drops some of its leading axes (so the shapes have different ranks; about half the time
    none) and replaces about a third of the remaining axes by 1 (so size-1 axes are stretched).
    ``broadcastable_shapes(n=2, max_dims=3)`` draws e.g. ``((2, 1, 4), (3, 1))``.
    """
    # sides of at least 2 where possible: the size-1 axes come from the replacement below, so
    # that they are usually stretched against a longer axis of another shape
    full = draw(shapes(min_dims, max_dims, max(min_side, min(2, max_side)), max_side))
    out = []
    for _ in range(n):
        most = len(full) - min(min_dims, len(full))  # how many leading axes may be dropped
        dropped = draw(st.sampled_from([0] * max(most, 1) + list(range(1, most + 1))))
        kept = full[dropped:]
        out.append(tuple(1 if draw(st.integers(0, 2)) == 2 else side for side in kept))
    return tuple(out)


def _pushed_away(a: np.ndarray, points: Sequence[float], margin: float, lo: float, hi: float) -> np.ndarray:
    """Move every value closer than ``margin`` to a point onto ``point +- margin`` (inside [lo, hi])."""
    a = np.array(a, dtype=np.float64)
    for k in points:
        near = np.abs(a - k) < margin
        if near.any():
            up = k + margin if k + margin <= hi else k - margin
            down = k - margin if k - margin >= lo else k + margin
            a[near] = np.where(a[near] >= k, up, down)
    return a


def arrays(
    shape=None,
    dtype=np.float64,
    elements: st.SearchStrategy | None = None,
    *,
    min_value: float = -3.0,
    max_value: float = 3.0,
    away_from: Sequence[float] = (),
    margin: float = 0.1,
    unique: bool = False,
) -> st.SearchStrategy:
    """NumPy arrays of floats for property tests.

    Args:
        shape: a shape, or a strategy of shapes; default ``shapes(max_dims=3, max_side=4)``
            (at most 64 elements, so a finite-difference check stays fast).
        dtype: the array dtype (float64 for gradient checks, float32 to test dtype handling).
        elements: a strategy for single values; when given it replaces min/max/away_from.
        min_value, max_value: the closed range of the values.
        away_from: points every value stays at least ``margin`` away from, e.g. ``(0,)`` for
            ``abs``, ``relu`` or ``log``: finite differences across a kink or a pole are meaningless.
            The points must be more than ``2 * margin`` apart.
        unique: all values distinct (before moving them away from ``away_from``).

    Example: positive values for ``log``: ``arrays((2, 3), min_value=0.2, max_value=5)``;
    values around, but not at, the kink of ``relu``: ``arrays(away_from=(0,))``.
    """
    if min_value > max_value:
        raise ValueError(f"min_value {min_value} is larger than max_value {max_value}")
    points = sorted(float(k) for k in away_from)
    if any(b - a <= 2 * margin for a, b in zip(points, points[1:])):
        raise ValueError(f"the points {points} must be more than 2 * margin = {2 * margin} apart")
    if shape is None:
        shape = shapes(max_dims=3, max_side=4)
    if elements is None:
        elements = st.floats(min_value=float(min_value), max_value=float(max_value),
                             allow_nan=False, allow_infinity=False, allow_subnormal=False)
        # fill=nothing: draw every element on its own (hypothesis would otherwise repeat one fill value)
        base = hnp.arrays(np.float64, shape, elements=elements, fill=st.nothing(), unique=unique)
        return base.map(lambda a: _pushed_away(a, points, margin, min_value, max_value).astype(dtype))
    return hnp.arrays(dtype, shape, elements=elements, fill=st.nothing(), unique=unique)


def tensors(shape=None, dtype=np.float64, requires_grad: bool = True, **array_options) -> st.SearchStrategy:
    """:class:`~minigrad.Tensor` objects holding :func:`arrays`; they require grad by default.

    ``tensors((2, 3), away_from=(0,))`` draws a float64 (2, 3) tensor with no value within 0.1 of 0.
    Accepts every option of :func:`arrays`.
    """
    return arrays(shape, dtype, **array_options).map(lambda a: Tensor(a, requires_grad=requires_grad))


def _describe(x) -> str:
    if isinstance(x, Tensor):
        role = "checked" if x.requires_grad else "constant"
        return f"Tensor{tuple(x.shape)} {x.dtype} ({role})"
    if isinstance(x, np.ndarray):
        return f"ndarray{x.shape} {x.dtype} (constant)"
    return repr(x)


def assert_gradients_match(
    fn: Callable[..., Tensor],
    *inputs,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    eps: float = 1e-6,
    seed: int = 0,
) -> None:
    """Assert that ``fn``'s backward agrees with float64 central differences for every input tensor
    that requires grad (a wrapper around :func:`minigrad.gradcheck` for tests).

    ``seed`` picks the random upstream gradient (draw it with hypothesis to vary it too). The
    failure message lists the inputs and names the worst element, both gradient values and the op::

        AssertionError: gradients of square do not match central differences
          input 0: Tensor(2, 3) float64 (checked)
          square (output made by Square): gradient of input 0 (shape (2, 3)) is wrong at index (0, 2):
          analytic 1.92126795132984, numeric 3.84253590368643 (atol=1e-05, rtol=0.001)

    It also fails, with a hint, when ``fn``'s output is not finite at the given inputs (a value
    at a singularity makes finite differences meaningless).

    To check a layer's parameters too, make them inputs of ``fn``::

        assert_gradients_match(lambda x, w, b: mg.linear(x, w, b), x, w, b)
    """
    name = fn_name(fn)
    listing = "\n  ".join(f"input {i}: {_describe(x)}" for i, x in enumerate(inputs))
    with no_grad():
        out = fn(*inputs)
    if isinstance(out, Tensor) and out.dtype.kind == "f" and not np.isfinite(out.data).all():
        raise AssertionError(
            f"{name} returned NaN or Inf for these inputs, so its gradient cannot be checked; keep the "
            f"inputs away from singularities (minigrad.testing.arrays(away_from=...))\n  {listing}"
        )
    try:
        gradcheck(fn, *inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)
    except GradcheckError as err:
        raise AssertionError(
            f"gradients of {name} do not match central differences\n  {listing}\n  {err}"
        ) from None
