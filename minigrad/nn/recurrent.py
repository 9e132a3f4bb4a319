"""Recurrent layers: the cells (``RNNCell``, ``GRUCell``, ``LSTMCell``) and the layers that run them
over a padded batch of sequences (``RNN``, ``GRU``, ``LSTM``), as in ``torch.nn``.

What came before attention (chapter 3's opening): a recurrent network reads a sequence one token at
a time and carries everything it has read in one hidden state. The equations are in
``minigrad.ops.recurrent``; every step is one fused node (all gate products in one matrix product),
and a layer computes the input projections of every time step in one matmul before its loop and
runs the whole loop as one node, backpropagation through time included.

Parameter names, shapes, gate orders and initialisation (U(-1/sqrt(H), 1/sqrt(H))) are PyTorch's:
``weight_ih`` (G, in), ``weight_hh`` (G, H), ``bias_ih``, ``bias_hh`` (G,) with G = H (RNN), 3H
(GRU: r, z, n) or 4H (LSTM: i, f, g, o); a layer's are ``weight_ih_l0`` ..., plus ``..._reverse``
when bidirectional. Beyond PyTorch: layers are always batch-first and take ``lengths`` instead of
packed sequences; differences from it: one layer only, no dropout, biases always on.
"""
from __future__ import annotations

import math

import numpy as np

from minigrad import ops
from minigrad.nn.layers import _uniform
from minigrad.nn.module import Module
from minigrad.nn.parameter import Parameter
from minigrad.ops.recurrent import CELL_GATES, recurrence, rnn_cell
from minigrad.tensor import Tensor, _raw


def _zeros_state(x, batch: int, width: int) -> Tensor:
    return Tensor(np.zeros((batch, width), dtype=x.dtype))


def lengths_to_mask(lengths, max_len: int) -> np.ndarray:
    """(b,) lengths -> (b, max_len) bool, True at the first ``lengths[i]`` positions of row i."""
    lengths = np.asarray(_raw(lengths))
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be one number per sequence, got shape {lengths.shape}")
    if lengths.size and (lengths.min() < 1 or lengths.max() > max_len):
        raise ValueError(f"lengths must be between 1 and the padded length {max_len}, got {lengths.min()} .. "
                         f"{lengths.max()}")
    return np.arange(max_len) < lengths[:, None]


class _Cell(Module):
    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        g, bound = CELL_GATES[self.kind] * hidden_size, 1.0 / math.sqrt(hidden_size)
        self.weight_ih = Parameter(_uniform((g, input_size), bound))
        self.weight_hh = Parameter(_uniform((g, hidden_size), bound))
        self.bias_ih = Parameter(_uniform((g,), bound))
        self.bias_hh = Parameter(_uniform((g,), bound))

    def _step(self, x, s, mask):
        gx = ops.linear(x, self.weight_ih, self.bias_ih)            # (b, G)
        return rnn_cell(gx, s, self.weight_hh, self.bias_hh, kind=self.kind, mask=mask)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(_Cell):
    """Elman cell: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh). x (b, in), h (b, H) -> h' (b, H).
    ``mask`` (b,) bool: rows where it is False keep h (padding)."""

    kind = "rnn"

    def forward(self, x, h=None, mask=None):
        if h is None:
            h = _zeros_state(x, x.shape[0], self.hidden_size)
        return self._step(x, h, mask)


class GRUCell(RNNCell):
    """Gated recurrent unit (Cho et al. 2014) in PyTorch's form and gate order (r, z, n):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h.
    x (b, in), h (b, H) -> h' (b, H)."""

    kind = "gru"


class LSTMCell(_Cell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with a forget gate), PyTorch's gate
    order (i, f, g, o): c' = f * c + i * g,  h' = o * tanh(c').
    x (b, in), state (h, c) each (b, H) -> (h', c')."""

    kind = "lstm"

    def forward(self, x, state=None, mask=None):
        b, hs = x.shape[0], self.hidden_size
        s = _zeros_state(x, b, 2 * hs) if state is None else ops.concat(list(state), axis=1)
        s1 = self._step(x, s, mask)
        return s1[:, :hs], s1[:, hs:]


class _Layer(Module):
    kind = "rnn"

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = False):
        super().__init__()
        self.input_size, self.hidden_size, self.bidirectional = input_size, hidden_size, bidirectional
        g, bound = CELL_GATES[self.kind] * hidden_size, 1.0 / math.sqrt(hidden_size)
        for suffix in self._suffixes():
            setattr(self, "weight_ih_l0" + suffix, Parameter(_uniform((g, input_size), bound)))
            setattr(self, "weight_hh_l0" + suffix, Parameter(_uniform((g, hidden_size), bound)))
            setattr(self, "bias_ih_l0" + suffix, Parameter(_uniform((g,), bound)))
            setattr(self, "bias_hh_l0" + suffix, Parameter(_uniform((g,), bound)))

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def _run(self, x, lengths, s0):
        """x (b, T, in) -> (output (b, T, D*H), final states [(b, S) per direction])."""
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__} expects (batch, time, features), got shape {tuple(x.shape)}")
        b, steps, _ = x.shape
        mask = None if lengths is None else lengths_to_mask(lengths, steps)
        width = (2 if self.kind == "lstm" else 1) * self.hidden_size
        outputs, finals = [], []
        for d, suffix in enumerate(self._suffixes()):
            p = lambda name: getattr(self, name + "_l0" + suffix)  # noqa: E731
            gx = ops.linear(x, p("weight_ih"), p("bias_ih"))        # (b, T, G): every step in one matmul
            s = _zeros_state(x, b, width) if s0 is None else s0[d]
            states = recurrence(gx, s, p("weight_hh"), p("bias_hh"), kind=self.kind, mask=mask, reverse=d == 1)
            finals.append(states[:, 0] if d == 1 else states[:, -1])   # held through padding, so the last
            outputs.append(states[..., :self.hidden_size])             # step is the final state
        out = outputs[0] if len(outputs) == 1 else ops.concat(outputs, axis=-1)
        if mask is not None:                                            # zeros at padding, as PyTorch's
            out = ops.where(mask[..., None], out, 0.0)                  # packed sequences give
        return out, finals

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + (", bidirectional=True" if self.bidirectional else "")


class RNN(_Layer):
    """An Elman RNN (tanh) over a batch of sequences, batch first.

    forward(x (b, T, in), lengths=None (b,), h0=None (D, b, H)) -> (output (b, T, D*H), h_n (D, b, H)),
    D = 2 when bidirectional. With ``lengths`` the sequences are right-padded: each stops at its
    length (the reverse direction starts there), ``h_n`` is the state after its last real step and
    ``output`` is zero at the padding."""

    kind = "rnn"

    def forward(self, x, lengths=None, h0=None):
        out, finals = self._run(x, lengths, None if h0 is None else [h0[d] for d in range(h0.shape[0])])
        return out, ops.stack(finals, axis=0)


class GRU(RNN):
    """A GRU (see :class:`GRUCell`) over a batch of sequences; the same interface as :class:`RNN`."""

    kind = "gru"


class LSTM(_Layer):
    """An LSTM (see :class:`LSTMCell`) over a batch of sequences, batch first.

    forward(x (b, T, in), lengths=None, state=None ((h0, c0), each (D, b, H)))
    -> (output (b, T, D*H), (h_n, c_n) each (D, b, H)); padding as in :class:`RNN`."""

    kind = "lstm"

    def forward(self, x, lengths=None, state=None):
        s0 = None
        if state is not None:
            h0, c0 = state
            s0 = [ops.concat([h0[d], c0[d]], axis=1) for d in range(h0.shape[0])]
        out, finals = self._run(x, lengths, s0)
        hs = self.hidden_size
        return out, (ops.stack([f[:, :hs] for f in finals], axis=0), ops.stack([f[:, hs:] for f in finals], axis=0))
