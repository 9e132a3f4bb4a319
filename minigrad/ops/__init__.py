"""Every differentiable operation of minigrad, one concept per module.

Plain ops compose; the fused ones (softmax, log_softmax, cross_entropy, layer_norm, rms_norm, gelu, gelu_erf,
silu, swiglu, embedding, linear, a recurrent cell's step and a whole recurrence) are single graph nodes with
hand-derived backward passes.
"""
from minigrad.ops.arithmetic import add, div, mul, neg, pow, sub
from minigrad.ops.cross_entropy import cross_entropy
from minigrad.ops.dropout import dropout
from minigrad.ops.embedding import embedding
from minigrad.ops.erf import erf
from minigrad.ops.gelu import gelu, gelu_erf
from minigrad.ops.indexing import cat, chunk, concat, getitem, masked_fill, split, stack, where
from minigrad.ops.layer_norm import layer_norm
from minigrad.ops.matmul import linear, matmul
from minigrad.ops.recurrent import recurrence, rnn_cell
from minigrad.ops.rms_norm import rms_norm
from minigrad.ops.reduce import max, mean, sum, var
from minigrad.ops.shape import flatten, permute, reshape, squeeze, swapaxes, transpose, unsqueeze
from minigrad.ops.softmax import log_softmax, masked_softmax, softmax
from minigrad.ops.silu import silu, swiglu
from minigrad.ops.unary import abs, astype, exp, log, relu, sigmoid, sqrt, tanh

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul", "linear",
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "gelu_erf", "erf", "abs", "astype",
    "sum", "mean", "max", "var",
    "reshape", "flatten", "unsqueeze", "squeeze", "permute", "transpose", "swapaxes",
    "getitem", "concat", "cat", "stack", "split", "chunk", "where", "masked_fill",
    "softmax", "log_softmax", "masked_softmax", "cross_entropy", "layer_norm", "embedding", "dropout",
    "rms_norm", "silu", "swiglu",
    "rnn_cell", "recurrence",
]
