"""Recurrent cells as fused ops: one step (``rnn_cell``), or a whole sequence (``recurrence``).

Three cells, each a ``*_step`` / ``*_step_backward`` pair of plain NumPy functions (llm.c style:
the backward is a mirror of the forward), with every gate product fused into one matrix product
per step, ``h W_hh^T`` for all gates at once. The input projection ``gx = x W_ih^T + b_ih`` is not
part of the step: a layer computes it for every time step in one matmul before the loop.

    rnn  (Elman):   h' = tanh(gx + h W^T + b)
    gru  (Cho et al. 2014, PyTorch's gate order r, z, n and its form, the reset gate applied
          after the product, as cuDNN does; Cho et al. apply it before):
                    [a_r, a_z, a_n] = gx,  [g_r, g_z, g_n] = h W^T + b
                    r = sigmoid(a_r + g_r),  z = sigmoid(a_z + g_z),  n = tanh(a_n + r * g_n)
                    h' = (1 - z) * n + z * h
    lstm (Hochreiter & Schmidhuber 1997 with the forget gate of Gers et al. 2000; PyTorch's gate
          order i, f, g, o):   [a_i, a_f, a_g, a_o] = gx + h W^T + b
                    i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g)
                    c' = f * c + i * g,  h' = o * tanh(c')

The state ``s`` is h (b, H), or for the LSTM [h, c] side by side (b, 2H), so that one op has one
output. A boolean ``mask`` (b,) (False = padding) keeps the old state on the masked rows:
s' = where(mask, cell(s), s), which is how a padded batch of different lengths runs in one loop.

Shapes: b = batch, T = time steps, H = hidden size, G = gates * H (H, 3H, 4H), S = H or 2H.
"""
from __future__ import annotations

import numpy as np

from minigrad.function import Function

CELL_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    z = np.exp(-np.abs(x))                      # <= 1: neither branch overflows
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


# ---------------------------------------------------------------- one step of each cell, forward/backward
# step(gx (b, G), s (b, S), w (G, H), b (G,)) -> (s' (b, S), cache)
# step_backward(g (b, S), cache, w, dw, db) -> (dgx (b, G), ds (b, S)); adds into dw, db in place.

def rnn_step(gx, s, w, b):
    h1 = np.tanh(gx + s @ w.T + b)
    return h1, (s, h1)


def rnn_step_backward(g, cache, w, dw, db):
    h, h1 = cache
    da = g * (1 - h1 * h1)                       # d tanh(a) = 1 - tanh^2
    dw += da.T @ h                               # a = gx + h W^T + b:  dW = da^T h,  dh = da W
    db += da.sum(axis=0)
    return da, da @ w


def gru_step(gx, s, w, b):
    hs = s.shape[1]
    gh = s @ w.T + b                              # (b, 3H): all three gate products in one matmul
    rz = _sigmoid(gx[:, :2 * hs] + gh[:, :2 * hs])
    r, z = rz[:, :hs], rz[:, hs:]
    gh_n = gh[:, 2 * hs:]
    n = np.tanh(gx[:, 2 * hs:] + r * gh_n)
    h1 = n + z * (s - n)                          # (1 - z) n + z h
    return h1, (s, r, z, n, gh_n)


def gru_step_backward(g, cache, w, dw, db):
    h, r, z, n, gh_n = cache
    # h' = (1-z) n + z h:  dz = g (h - n),  dn = g (1 - z),  dh gets g z directly
    da_n = g * (1 - z) * (1 - n * n)              # n = tanh(a_n + r g_n)
    da_r = da_n * gh_n * r * (1 - r)              # through r * g_n, sigmoid' = r (1 - r)
    da_z = g * (h - n) * z * (1 - z)
    dgx = np.concatenate([da_r, da_z, da_n], axis=1)
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)   # g_n enters multiplied by r
    dw += dgh.T @ h                               # gh = h W^T + b
    db += dgh.sum(axis=0)
    return dgx, g * z + dgh @ w


def lstm_step(gx, s, w, b):
    hs = s.shape[1] // 2
    h, c = s[:, :hs], s[:, hs:]
    a = gx + h @ w.T + b                          # (b, 4H): the four gate products in one matmul
    i_f = _sigmoid(a[:, :2 * hs])
    i, f, o = i_f[:, :hs], i_f[:, hs:], _sigmoid(a[:, 3 * hs:])
    gg = np.tanh(a[:, 2 * hs:3 * hs])
    c1 = f * c + i * gg
    tc = np.tanh(c1)
    return np.concatenate([o * tc, c1], axis=1), (h, c, i, f, gg, o, tc)


def lstm_step_backward(g, cache, w, dw, db):
    h, c, i, f, gg, o, tc = cache
    hs = h.shape[1]
    g_h, g_c = g[:, :hs], g[:, hs:]
    # h' = o tanh(c'):  dc' = g_c + g_h o (1 - tanh^2 c'),  do = g_h tanh(c')
    dc1 = g_c + g_h * o * (1 - tc * tc)
    # c' = f c + i g:  di = dc' g,  df = dc' c,  dg = dc' i,  dc = dc' f;  then through each activation
    da = np.concatenate([dc1 * gg * i * (1 - i), dc1 * c * f * (1 - f), dc1 * i * (1 - gg * gg),
                         g_h * tc * o * (1 - o)], axis=1)
    dw += da.T @ h                                # a = gx + h W^T + b
    db += da.sum(axis=0)
    return da, np.concatenate([da @ w, dc1 * f], axis=1)


_STEPS = {"rnn": (rnn_step, rnn_step_backward), "gru": (gru_step, gru_step_backward),
          "lstm": (lstm_step, lstm_step_backward)}


def _masked(s1, s, m):
    """where(mask, s', s) for a (b,) mask, or s' when there is none."""
    return s1 if m is None else np.where(m[:, None], s1, s)


class RecurrentCell(Function):
    """One step s -> s' of cell ``kind``. gx (b, G), s (b, S), w (G, H), b (G,) -> s' (b, S).

    With a mask: s' = where(m, cell(s), s), so ds = g * (1 - m) + (cell's ds of g * m)."""

    def forward(self, gx, s, w, b, kind, mask):
        step = _STEPS[kind][0]
        s1, self.cache = step(gx, s, w, b)
        self.kind, self.mask = kind, mask
        return _masked(s1, s, mask)

    def backward(self, grad):
        w = self.parents[2].data
        dw, db = np.zeros_like(w), np.zeros(w.shape[0], dtype=w.dtype)
        g = grad if self.mask is None else grad * self.mask[:, None]
        dgx, ds = _STEPS[self.kind][1](g, self.cache, w, dw, db)
        if self.mask is not None:
            ds += grad * ~self.mask[:, None]
        return dgx, ds, dw, db


class Recurrence(Function):
    """The cell run over a whole sequence in one node (backpropagation through time inside it).

    gx (b, T, G): the input projections of every step; s0 (b, S); w (G, H); b (G,)
    -> states (b, T, S), states[:, t] = the state after step t. ``mask`` (b, T) bool holds the
    state where False; ``reverse`` runs t = T-1 .. 0 (the backward half of a bidirectional layer).
    Backward walks the steps the other way: ds_{t-1} = (cell's ds at step t) + grad[:, t-1].
    """

    def forward(self, gx, s0, w, b, kind, mask, reverse):
        step = _STEPS[kind][0]
        steps = range(gx.shape[1] - 1, -1, -1) if reverse else range(gx.shape[1])
        out = np.empty(gx.shape[:2] + s0.shape[1:], dtype=s0.dtype)
        self.caches, s = [], s0
        for t in steps:
            s1, cache = step(gx[:, t], s, w, b)
            s = _masked(s1, s, None if mask is None else mask[:, t])
            out[:, t] = s
            self.caches.append(cache)
        self.kind, self.mask, self.steps = kind, mask, list(steps)
        return out

    def backward(self, grad):
        step_backward = _STEPS[self.kind][1]
        w = self.parents[2].data
        dw, db = np.zeros_like(w), np.zeros(w.shape[0], dtype=w.dtype)
        dgx = np.zeros(grad.shape[:2] + (w.shape[0],), dtype=grad.dtype)
        ds = np.zeros_like(grad[:, 0])
        for t, cache in zip(reversed(self.steps), reversed(self.caches)):
            g = grad[:, t] + ds                      # from the output at t and from the later steps
            m = None if self.mask is None else self.mask[:, t][:, None]
            dgx[:, t], ds = step_backward(g if m is None else g * m, cache, w, dw, db)
            if m is not None:
                ds += g * ~m
        if self.last_use:
            self.caches = []
        return dgx, ds, dw, db


def _check(kind, gx, s, w):
    if kind not in CELL_GATES:
        raise ValueError(f"unknown cell {kind!r}; choose one of: {', '.join(CELL_GATES)}")
    hidden = w.shape[1]
    if w.shape[0] != CELL_GATES[kind] * hidden or gx.shape[-1] != w.shape[0]:
        raise ValueError(f"{kind} cell with hidden size {hidden} needs gates of width {CELL_GATES[kind] * hidden}, "
                         f"got weight {tuple(w.shape)} and input projection {tuple(gx.shape)}")
    state = 2 * hidden if kind == "lstm" else hidden
    if s.shape[-1] != state:
        raise ValueError(f"{kind} state must have {state} columns, got {tuple(s.shape)}")


def rnn_cell(gx, s, weight_hh, bias_hh, kind: str = "gru", mask=None):
    """One step of cell ``kind`` ("rnn", "gru", "lstm") from the input projection gx (b, G) and the
    state s (b, S); ``mask`` (b,) bool keeps s where False."""
    _check(kind, gx, s, weight_hh)
    m = None if mask is None else np.asarray(getattr(mask, "data", mask), dtype=bool)
    return RecurrentCell.apply(gx, s, weight_hh, bias_hh, kind=kind, mask=m)


def recurrence(gx, s0, weight_hh, bias_hh, kind: str = "gru", mask=None, reverse: bool = False):
    """Run cell ``kind`` over gx (b, T, G) from s0 (b, S): every state, (b, T, S), in one node."""
    _check(kind, gx, s0, weight_hh)
    m = None if mask is None else np.asarray(getattr(mask, "data", mask), dtype=bool)
    return Recurrence.apply(gx, s0, weight_hh, bias_hh, kind=kind, mask=m, reverse=bool(reverse))
