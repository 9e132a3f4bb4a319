"""Module-level gradient checks: every layer's backward against central differences, in float64.

Each check builds a small module from a seed, converts it with ``.double()`` and calls
``minigrad.gradcheck(lambda x, *ps: model(x), x, *model.parameters())``: gradcheck perturbs the
float64 parameters in place, so the numeric gradient sees them through the module even though the
lambda ignores ``ps``. Shapes, values, ids and targets are drawn by hypothesis; the upstream
gradient is random (gradcheck's ``seed``), never all ones.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import GradcheckError, gradcheck, nn
from minigrad.function import Function
from minigrad.ops import cross_entropy

seeds = st.integers(0, 2**16)
dims = st.integers(1, 4)

# Tighter than gradcheck's defaults (atol=1e-5, rtol=1e-3), which would let a 0.1% error in a
# backward pass through: in float64 with eps=1e-6 the central difference is good to ~1e-9.
TOL = dict(atol=1e-7, rtol=1e-6)


def randn(rng, shape, requires_grad=True):
    return mg.tensor(rng.standard_normal(shape), dtype=np.float64, requires_grad=requires_grad)


def check_module(module, *inputs, seed=0):
    """gradcheck ``module(*inputs)`` w.r.t. every input that requires grad and every parameter."""
    n = len(inputs)
    params = list(module.parameters())
    assert params and all(p.dtype == np.float64 for p in params)
    assert gradcheck(lambda *args: module(*args[:n]), *inputs, *params, seed=seed, **TOL)
    assert all(p.grad is not None and p.grad.shape == p.shape for p in params)


# ---------------------------------------------------------------------- Linear
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("ndim", [2, 3])
@given(batch=st.lists(dims, min_size=2, max_size=2), n_in=dims, n_out=dims, seed=seeds)
def test_linear_gradients(ndim, bias, batch, n_in, n_out, seed):
    mg.manual_seed(seed)
    lin = nn.Linear(n_in, n_out, bias=bias).double()
    x = randn(np.random.default_rng(seed), tuple(batch[: ndim - 1]) + (n_in,))
    check_module(lin, x, seed=seed)


# ---------------------------------------------------------------------- Embedding
@given(vocab=st.integers(1, 5), dim=dims, extra=st.integers(1, 6), two_d=st.booleans(), seed=seeds)
def test_embedding_gradient_accumulates_repeated_ids(vocab, dim, extra, two_d, seed):
    mg.manual_seed(seed)
    emb = nn.Embedding(vocab, dim).double()
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=vocab + extra)  # more ids than rows: some id repeats
    assert len(np.unique(ids)) < ids.size
    if two_d and ids.size % 2 == 0:
        ids = ids.reshape(2, -1)
    check_module(emb, ids, seed=seed)

    # and exactly: row v of the gradient is the sum of the upstream rows at the positions of id v
    emb.zero_grad()
    upstream = rng.standard_normal(ids.shape + (dim,))
    emb(ids).backward(upstream)
    expected = np.zeros((vocab, dim))
    np.add.at(expected, ids.reshape(-1), upstream.reshape(-1, dim))
    np.testing.assert_allclose(emb.weight.grad, expected, rtol=1e-12, atol=1e-12)


def test_tied_embedding_and_head_gradient():
    """One Parameter used twice (GPT-2's weight tying) gets the sum of both uses' gradients."""

    class TiedLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok_emb = nn.Embedding(6, 3)
            self.out_head = nn.Linear(3, 6, bias=False)
            self.out_head.weight = self.tok_emb.weight

        def forward(self, ids):
            return self.out_head(self.tok_emb(ids))

    mg.manual_seed(0)
    lm = TiedLM().double()
    assert len(list(lm.parameters())) == 1
    check_module(lm, np.array([[1, 4, 1], [0, 5, 5]]))


# ---------------------------------------------------------------------- LayerNorm
@given(batch=st.lists(dims, min_size=1, max_size=2), dim=st.integers(2, 5), affine=st.booleans(),
       scale=st.sampled_from([0.1, 1.0, 10.0]), seed=seeds)
def test_layer_norm_gradients(batch, dim, affine, scale, seed):
    rng = np.random.default_rng(seed)
    ln = nn.LayerNorm(dim, elementwise_affine=affine).double()
    x = randn(rng, tuple(batch) + (dim,))
    x.data *= scale
    if not affine:
        assert list(ln.parameters()) == []
        assert gradcheck(ln, x, seed=seed, **TOL)
        return
    ln.weight.data[...] = rng.standard_normal(dim)  # not ones and zeros: every term of dx matters
    ln.bias.data[...] = rng.standard_normal(dim)
    check_module(ln, x, seed=seed)


# ---------------------------------------------------------------------- Dropout (fixed mask)
@given(shape=st.lists(dims, min_size=1, max_size=3), p=st.sampled_from([0.2, 0.5]), seed=seeds)
def test_dropout_gradient_with_a_fixed_mask(shape, p, seed):
    drop = nn.Dropout(p)

    def f(x):
        drop.rng = np.random.default_rng(seed)  # the same mask on every call
        return drop(x)

    x = randn(np.random.default_rng(seed), tuple(shape))
    assert gradcheck(f, x, seed=seed, **TOL)


# ---------------------------------------------------------------------- an MLP with cross-entropy
class MLP(nn.Module):
    """Linear -> GELU -> Linear, as the GPT's feed-forward block, ending in class logits."""

    def __init__(self, n_in, n_hidden, n_classes):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_in, n_hidden), nn.GELU(), nn.Linear(n_hidden, n_classes))

    def forward(self, x):
        return self.layers(x)


@given(rows=st.lists(dims, min_size=1, max_size=2), n_in=dims, n_hidden=dims, n_classes=st.integers(2, 4),
       data=st.data(), seed=seeds)
def test_mlp_cross_entropy_with_ignore_index(rows, n_in, n_hidden, n_classes, data, seed):
    mg.manual_seed(seed)
    mlp = MLP(n_in, n_hidden, n_classes).double()
    rng = np.random.default_rng(seed)
    x = randn(rng, tuple(rows) + (n_in,))  # (N, in) or (B, T, in)
    n = int(np.prod(rows))
    targets = np.array(data.draw(st.lists(st.integers(-1, n_classes - 1), min_size=n, max_size=n)))
    targets[targets == -1] = -100          # some targets ignored ...
    if np.all(targets == -100):
        targets[0] = 0                     # ... but not all of them
    targets = targets.reshape(rows)
    assert gradcheck(lambda x, *ps: cross_entropy(mlp(x), targets), x, *mlp.parameters(), seed=seed, **TOL)

    # the ignored rows contribute nothing: same loss and gradients as dropping them
    keep = targets != -100
    mlp.zero_grad()
    loss = cross_entropy(mlp(x), targets)
    loss.backward()
    grads = [p.grad.copy() for p in mlp.parameters()]
    mlp.zero_grad()
    kept = cross_entropy(mlp(mg.tensor(x.data[keep])), targets[keep])
    kept.backward()
    np.testing.assert_allclose(loss.item(), kept.item(), rtol=1e-12)
    for g, p in zip(grads, mlp.parameters()):
        np.testing.assert_allclose(g, p.grad, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------- the checks can fail
class _OffByOnePercent(Function):
    """y = x * w with a backward for w that is 1% too large."""

    def forward(self, x, w):
        self.save_for_backward(x, w)
        return x * w

    def backward(self, grad):
        x, w = self.saved_tensors
        return grad * w, 1.01 * (grad * x).sum(axis=0)


class _Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.array([0.5, -1.5, 2.0]))

    def forward(self, x):
        return _OffByOnePercent.apply(x, self.w)


def test_a_wrong_parameter_gradient_is_caught():
    x = randn(np.random.default_rng(0), (4, 3))
    m = _Broken()
    with pytest.raises(GradcheckError, match="input 1"):  # the parameter, not x (input 0)
        gradcheck(lambda x, *ps: m(x), x, *m.parameters())
    np.testing.assert_array_equal(m.w.data, [0.5, -1.5, 2.0])  # perturbations were undone


def test_a_float32_module_is_not_silently_checked():
    """Forgetting ``model.double()`` must fail loudly, not pass a check that looked at nothing."""
    mg.manual_seed(0)
    lin = nn.Linear(3, 2)
    x = randn(np.random.default_rng(0), (2, 3), requires_grad=False)
    with pytest.raises(GradcheckError):
        gradcheck(lambda x, *ps: lin(x), x, *lin.parameters())
