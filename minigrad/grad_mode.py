"""Global switches of the autograd engine: whether operations record a graph.

``no_grad()`` is what inference and evaluation run under: no graph, no saved activations.
"""
from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """True when new operations record the graph needed for ``backward``."""
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.enabled = bool(mode)


@contextlib.contextmanager
def _grad_mode(mode: bool):
    previous = is_grad_enabled()
    set_grad_enabled(mode)
    try:
        yield
    finally:
        set_grad_enabled(previous)


def no_grad():
    """Context manager (``with minigrad.no_grad(): ...``) inside which no graph is recorded."""
    return _grad_mode(False)


def enable_grad():
    """Context manager that turns graph recording back on inside a ``no_grad`` block."""
    return _grad_mode(True)
