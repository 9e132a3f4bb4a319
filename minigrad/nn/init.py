"""Skipping the random initialisation of parameters that are about to be overwritten.

    with nn.skip_init():
        model = Qwen3Model(cfg)           # parameters allocated, not drawn
    model.load_state_dict(weights)        # every parameter written once

Drawing 600 million normal numbers for a Qwen3-0.6B that a checkpoint then overwrites costs
seconds and writes every page once more. Inside ``skip_init()`` the layers allocate their weight
matrices with ``np.empty`` (uninitialised: whatever bytes the memory held, and pages the operating
system maps only when they are first written), so the checkpoint's values are the first ones
written. Small vectors with a fixed start (norm scales, zero biases) keep it: they cost nothing.
The default generator is not advanced, so the draws after the block are those of a fresh seed.
A model built this way is garbage until every parameter is loaded. Each thread has its own switch.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

_state = threading.local()


def skipping_init() -> bool:
    """Whether this thread is inside :func:`skip_init`."""
    return getattr(_state, "skip", False)


@contextlib.contextmanager
def skip_init():
    """Context manager: parameters created inside are allocated uninitialised (see the module docstring)."""
    outer = skipping_init()
    _state.skip = True
    try:
        yield
    finally:
        _state.skip = outer


def uninitialised(shape, dtype=np.float32) -> np.ndarray | None:
    """``np.empty(shape)`` inside :func:`skip_init`, else None (then the caller draws its values)."""
    return np.empty(shape, dtype=dtype) if skipping_init() else None
