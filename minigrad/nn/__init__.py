"""Neural-network building blocks: ``Module``, ``Parameter`` and the layers the book uses."""
from minigrad.nn import functional
from minigrad.nn.containers import ModuleDict, ModuleList, Sequential
from minigrad.nn.init import skip_init, skipping_init
from minigrad.nn.layers import GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from minigrad.nn.module import Module, RemovableHandle
from minigrad.nn.parameter import Parameter
from minigrad.nn.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

__all__ = [
    "Module", "RemovableHandle", "Parameter", "Linear", "Embedding", "LayerNorm", "Dropout", "GELU", "ReLU", "Sigmoid",
    "Tanh", "Identity", "Sequential", "ModuleList", "ModuleDict", "functional",
    "RNNCell", "GRUCell", "LSTMCell", "RNN", "GRU", "LSTM", "skip_init", "skipping_init",
]
