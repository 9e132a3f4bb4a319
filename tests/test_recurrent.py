"""The recurrent cells and layers (minigrad.ops.recurrent, minigrad.nn.recurrent).

Forwards against the published equations written out per gate in NumPy (separate matrices per gate,
a Python loop over time); gradients through several time steps, padding and both directions
against float64 central differences; float32 stays float32; padded sequences give what each
sequence gives alone.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.testing import assert_gradients_match

seeds = st.integers(0, 2**16)
TOL = dict(atol=1e-7, rtol=1e-6)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ---------------------------------------------------------------- the published equations, per gate
def rnn_reference(x, h, w_ih, w_hh, b_ih, b_hh):
    return np.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)


def gru_reference(x, h, w_ih, w_hh, b_ih, b_hh):
    """Cho et al. 2014 in PyTorch's form (reset gate after the product), gates r, z, n."""
    (W_ir, W_iz, W_in), (W_hr, W_hz, W_hn) = np.split(w_ih, 3), np.split(w_hh, 3)
    (b_ir, b_iz, b_in), (b_hr, b_hz, b_hn) = np.split(b_ih, 3), np.split(b_hh, 3)
    r = sigmoid(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = sigmoid(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n = np.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    return (1 - z) * n + z * h


def lstm_reference(x, hc, w_ih, w_hh, b_ih, b_hh):
    """Hochreiter & Schmidhuber with a forget gate, gates i, f, g, o."""
    h, c = hc
    (W_ii, W_if, W_ig, W_io), (W_hi, W_hf, W_hg, W_ho) = np.split(w_ih, 4), np.split(w_hh, 4)
    (b_ii, b_if, b_ig, b_io), (b_hi, b_hf, b_hg, b_ho) = np.split(b_ih, 4), np.split(b_hh, 4)
    i = sigmoid(x @ W_ii.T + b_ii + h @ W_hi.T + b_hi)
    f = sigmoid(x @ W_if.T + b_if + h @ W_hf.T + b_hf)
    g = np.tanh(x @ W_ig.T + b_ig + h @ W_hg.T + b_hg)
    o = sigmoid(x @ W_io.T + b_io + h @ W_ho.T + b_ho)
    c1 = f * c + i * g
    return o * np.tanh(c1), c1


REFERENCE = {"rnn": rnn_reference, "gru": gru_reference, "lstm": lstm_reference}
CELLS = {"rnn": nn.RNNCell, "gru": nn.GRUCell, "lstm": nn.LSTMCell}
LAYERS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def params(m, suffix=""):
    return [getattr(m, name + suffix).data for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def layer_reference(kind, layer, x, lengths):
    """Run the reference cell over each sequence alone, up to its length; zeros after it."""
    b, steps, _ = x.shape
    hs = layer.hidden_size
    outs, finals = [], []
    for d, suffix in enumerate(("_l0", "_l0_reverse")[: 1 + layer.bidirectional]):
        p = params(layer, suffix)
        out, fin = np.zeros((b, steps, hs)), []
        for i in range(b):
            state = (np.zeros(hs), np.zeros(hs)) if kind == "lstm" else np.zeros(hs)
            order = range(lengths[i] - 1, -1, -1) if d == 1 else range(lengths[i])
            for t in order:
                state = REFERENCE[kind](x[i, t], state, *p)
                out[i, t] = state[0] if kind == "lstm" else state
            fin.append(state)
        outs.append(out)
        finals.append(fin)
    return np.concatenate(outs, axis=-1), finals


# ---------------------------------------------------------------- forwards
@pytest.mark.parametrize("kind", CELLS)
@given(b=st.integers(1, 3), n_in=st.integers(1, 4), hs=st.integers(1, 4), seed=seeds)
def test_cell_forward_matches_the_published_equations(kind, b, n_in, hs, seed):
    mg.manual_seed(seed)
    cell = CELLS[kind](n_in, hs).double()
    rng = np.random.default_rng(seed)
    x, h, c = rng.standard_normal((b, n_in)), rng.standard_normal((b, hs)), rng.standard_normal((b, hs))
    if kind == "lstm":
        h1, c1 = cell(mg.tensor(x), (mg.tensor(h), mg.tensor(c)))
        eh, ec = lstm_reference(x, (h, c), *params(cell))
        np.testing.assert_allclose(h1.data, eh, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c1.data, ec, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_allclose(cell(mg.tensor(x), mg.tensor(h)).data, REFERENCE[kind](x, h, *params(cell)),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("bidirectional", [False, True])
@given(b=st.integers(1, 3), steps=st.integers(1, 5), hs=st.integers(1, 3), seed=seeds)
def test_layer_forward_runs_each_padded_sequence_as_if_alone(kind, bidirectional, b, steps, hs, seed):
    mg.manual_seed(seed)
    layer = LAYERS[kind](2, hs, bidirectional=bidirectional).double()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, steps, 2))
    lengths = rng.integers(1, steps + 1, size=b)
    x_padded = x.copy()
    x_padded[np.arange(steps) >= lengths[:, None]] = 1e3            # padding must not leak in
    out, final = layer(mg.tensor(x_padded), lengths)
    expected, finals = layer_reference(kind, layer, x, lengths)
    np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    h_n = final[0] if kind == "lstm" else final
    for d, fin in enumerate(finals):
        want = np.array([f[0] if kind == "lstm" else f for f in fin])
        np.testing.assert_allclose(h_n.data[d], want, rtol=1e-10, atol=1e-12)
    if kind == "lstm":
        np.testing.assert_allclose(final[1].data[0], np.array([f[1] for f in finals[0]]), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", CELLS)
@given(b=st.integers(1, 3), n_in=st.integers(1, 3), hs=st.integers(1, 2), steps=st.integers(1, 4), seed=seeds)
def test_cell_gradients_through_several_steps_with_a_mask(kind, b, n_in, hs, steps, seed):
    mg.manual_seed(seed)
    cell = CELLS[kind](n_in, hs).double()
    rng = np.random.default_rng(seed)
    xs = mg.tensor(rng.standard_normal((steps, b, n_in)), requires_grad=True)
    h0 = mg.tensor(rng.standard_normal((b, hs)), requires_grad=True)
    masks = rng.random((steps, b)) < 0.7

    def run(xs, h0, *ps):
        state = (h0, h0 * 0.5) if kind == "lstm" else h0
        for t in range(steps):
            state = cell(xs[t], state, mask=masks[t])
        return state[0] * state[1] + state[1] if kind == "lstm" else state

    assert_gradients_match(run, xs, h0, *cell.parameters(), seed=seed, **TOL)


@pytest.mark.parametrize("kind", LAYERS)
@given(b=st.integers(1, 3), steps=st.integers(1, 5), hs=st.integers(1, 2), bidirectional=st.booleans(),
       padded=st.booleans(), seed=seeds)
def test_layer_gradients_through_time(kind, b, steps, hs, bidirectional, padded, seed):
    mg.manual_seed(seed)
    layer = LAYERS[kind](2, hs, bidirectional=bidirectional).double()
    rng = np.random.default_rng(seed)
    x = mg.tensor(rng.standard_normal((b, steps, 2)), requires_grad=True)
    lengths = rng.integers(1, steps + 1, size=b) if padded else None

    def run(x, *ps):
        out, final = layer(x, lengths)
        h_n = final[0] * final[1] if kind == "lstm" else final
        return out.sum(axis=-1) + h_n.sum(axis=(0, 2))[:, None]     # every output and the final states

    assert_gradients_match(run, x, *layer.parameters(), seed=seed, **TOL)


def test_given_initial_states_get_gradients():
    mg.manual_seed(0)
    rng = np.random.default_rng(0)
    gru = nn.GRU(2, 3, bidirectional=True).double()
    x = mg.tensor(rng.standard_normal((2, 4, 2)), requires_grad=True)
    h0 = mg.tensor(rng.standard_normal((2, 2, 3)), requires_grad=True)
    assert_gradients_match(lambda x, h0, *ps: gru(x, np.array([4, 2]), h0)[0], x, h0, *gru.parameters(), **TOL)
    lstm = nn.LSTM(2, 3).double()
    c0 = mg.tensor(rng.standard_normal((1, 2, 3)), requires_grad=True)
    h0 = mg.tensor(rng.standard_normal((1, 2, 3)), requires_grad=True)
    assert_gradients_match(lambda x, h0, c0, *ps: lstm(x, None, (h0, c0))[1][1], x, h0, c0, *lstm.parameters(), **TOL)


# ---------------------------------------------------------------- dtypes, shapes, names, errors
@pytest.mark.parametrize("kind", LAYERS)
def test_float32_stays_float32_forward_and_backward(kind):
    mg.manual_seed(0)
    layer = LAYERS[kind](3, 4, bidirectional=True)
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32), requires_grad=True)
    out, _ = layer(x, np.array([5, 2]))
    assert out.dtype == np.float32 and out.shape == (2, 5, 8)
    out.sum().backward()
    assert x.grad.dtype == np.float32 and all(p.grad.dtype == np.float32 for p in layer.parameters())
    cell = CELLS[kind](3, 4)
    state = cell(x[:, 0])
    assert (state[0] if kind == "lstm" else state).dtype == np.float32


def test_parameter_names_and_shapes_are_pytorchs():
    gru = nn.GRU(5, 7, bidirectional=True)
    shapes = {k: v.shape for k, v in gru.state_dict().items()}
    assert shapes == {"weight_ih_l0": (21, 5), "weight_hh_l0": (21, 7), "bias_ih_l0": (21,), "bias_hh_l0": (21,),
                      "weight_ih_l0_reverse": (21, 5), "weight_hh_l0_reverse": (21, 7),
                      "bias_ih_l0_reverse": (21,), "bias_hh_l0_reverse": (21,)}
    assert nn.LSTMCell(5, 7).weight_hh.shape == (28, 7) and nn.RNNCell(5, 7).weight_ih.shape == (7, 5)


def test_bad_lengths_and_shapes_are_reported():
    gru = nn.GRU(2, 3)
    x = mg.tensor(np.zeros((2, 4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="between 1 and the padded length 4"):
        gru(x, np.array([5, 1]))
    with pytest.raises(ValueError, match="batch, time, features"):
        gru(x[0])
    with pytest.raises(ValueError, match="gates of width 9"):
        mg.rnn_cell(mg.tensor(np.zeros((2, 6))), mg.tensor(np.zeros((2, 3))), mg.tensor(np.zeros((6, 3))),
                    mg.tensor(np.zeros(6)), kind="gru")


# ---------------------------------------------------------------------- against PyTorch (skipped without it)
@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_layers_equal_pytorchs_outputs_and_gradients(kind, bidirectional):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    rng = np.random.default_rng(7)
    b, steps, n_in, hidden = 3, 5, 4, 6
    lengths = np.array([5, 2, 4])
    x = rng.standard_normal((b, steps, n_in))
    ours = getattr(nn, kind)(n_in, hidden, bidirectional=bidirectional)
    ours.double()
    theirs = getattr(torch.nn, kind)(n_in, hidden, batch_first=True, bidirectional=bidirectional).double()
    with torch.no_grad():                                   # the same names, shapes and gate order
        for name, p in ours.named_parameters():
            getattr(theirs, name).copy_(torch.from_numpy(p.data))

    xt = mg.tensor(x, requires_grad=True, dtype=np.float64)
    out, final = ours(xt, lengths=lengths)
    h_n = final[0] if kind == "LSTM" else final
    upstream = rng.standard_normal(out.shape)
    ((out * mg.tensor(upstream)).sum() + h_n.sum()).backward()

    x_torch = torch.from_numpy(x).requires_grad_(True)
    packed = pack_padded_sequence(x_torch, torch.from_numpy(lengths), batch_first=True, enforce_sorted=False)
    out_t, final_t = theirs(packed)
    out_t, _ = pad_packed_sequence(out_t, batch_first=True, total_length=steps)
    h_t = final_t[0] if kind == "LSTM" else final_t
    ((out_t * torch.from_numpy(upstream)).sum() + h_t.sum()).backward()

    np.testing.assert_allclose(out.data, out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.data, h_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad, x_torch.grad.numpy(), rtol=1e-9, atol=1e-11)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, getattr(theirs, name).grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
