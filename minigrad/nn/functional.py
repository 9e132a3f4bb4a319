"""Stateless functions, as ``torch.nn.functional``: ``import minigrad.nn.functional as F``."""
from minigrad.ops import (  # noqa: F401
    cross_entropy,
    dropout,
    embedding,
    gelu,
    layer_norm,
    linear,
    log_softmax,
    masked_softmax,
    relu,
    rms_norm,
    sigmoid,
    silu,
    softmax,
    swiglu,
    tanh,
)
