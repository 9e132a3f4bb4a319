"""Debugging aids: NaN/Inf anomaly detection and a Graphviz picture of the graph.

``detect_anomaly()`` makes every operation check its output, and every backward its gradients, and
raise at the first non-finite value, naming the operation and the line of user code that created it.
``to_dot(t)`` returns the DOT text of the graph that produced ``t`` (paste it into any Graphviz
viewer; no graphviz package is needed).
"""
from __future__ import annotations

import contextlib
import os
import traceback

import numpy as np

_anomaly = False
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def is_anomaly_enabled() -> bool:
    return _anomaly


@contextlib.contextmanager
def detect_anomaly():
    """Context manager: raise ``FloatingPointError`` at the first op that produces NaN/Inf."""
    global _anomaly
    previous, _anomaly = _anomaly, True
    try:
        yield
    finally:
        _anomaly = previous


def creation_site() -> str:
    """The innermost stack frame outside minigrad: where the user called the operation."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        # compare with the package's own folder: a user's project folder may be called minigrad too
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno} ({frame.line})"
    return "<unknown>"


def check_forward(ctx, inputs: list[np.ndarray], out: np.ndarray) -> None:
    """Raise if ``out`` has a NaN the inputs did not have, or an Inf the op may not produce."""
    if out.dtype.kind not in "fc" or np.isfinite(out).all():
        return
    had_nan = any(a.dtype.kind in "fc" and np.isnan(a).any() for a in inputs)
    had_inf = any(a.dtype.kind in "fc" and np.isinf(a).any() for a in inputs)
    new_nan = np.isnan(out).any() and not had_nan
    new_inf = np.isinf(out).any() and not had_inf and not ctx.may_produce_inf
    if new_nan or new_inf:
        what = "NaN" if new_nan else "Inf"
        raise FloatingPointError(
            f"{type(ctx).__name__} produced {what} in its forward pass; created at {ctx.created_at}"
        )


def check_backward(ctx, grad: np.ndarray) -> None:
    if grad.dtype.kind in "fc" and not np.isfinite(grad).all():
        what = "NaN" if np.isnan(grad).any() else "Inf"
        where = ctx.created_at or "an unrecorded line (run the forward pass inside detect_anomaly() to see it)"
        raise FloatingPointError(f"{type(ctx).__name__} produced {what} in its backward pass; created at {where}")


def to_dot(root) -> str:
    """Graphviz DOT text of the graph that computed ``root``: tensors as boxes, ops as ellipses."""
    lines = ["digraph minigrad {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    seen: set[int] = set()
    stack = [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        # a name is user text: escape what would end or break the quoted DOT label
        label = t.name.replace("\\", "\\\\").replace('"', '\\"') + "\\n" if t.name else ""
        label += f"{tuple(t.shape)} {t.dtype}"
        style = ', style=filled, fillcolor="#dbe9f6"' if t.requires_grad and t._ctx is None else ""
        lines.append(f'  t{id(t)} [shape=box, label="{label}"{style}];')
        ctx = t._ctx
        if ctx is not None:
            lines.append(f'  f{id(ctx)} [shape=ellipse, label="{type(ctx).__name__}"];')
            lines.append(f"  f{id(ctx)} -> t{id(t)};")
            for p in ctx.parents or ():
                lines.append(f"  t{id(p)} -> f{id(ctx)};")
                stack.append(p)
    lines.append("}")
    return "\n".join(lines)
