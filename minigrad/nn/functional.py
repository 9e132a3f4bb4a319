"""Stateless functions, as ``torch.nn.functional``: ``import minigrad.nn.functional as F``."""
from minigrad.ops import (  # noqa: F401
    cross_entropy,
    dropout,
    embedding,
    erf,
    gelu,
    gelu_erf,
    layer_norm,
    linear,
    log_softmax,
    masked_softmax,
    relu,
    sigmoid,
    softmax,
    tanh,
)
