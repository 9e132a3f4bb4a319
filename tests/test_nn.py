"""minigrad.nn: the Module machinery (registration, traversal, state dicts, modes, dtypes, repr)
and the forward pass of every layer against a direct NumPy formula.

Gradients of the layers are checked against central differences in tests/test_nn_gradients.py.
"""
from __future__ import annotations

import copy
import math
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.ops import cross_entropy
from tests.cli_helpers import subprocess_env


# ---------------------------------------------------------------------- helpers
class TwoLayer(nn.Module):
    """A small model with a bare Parameter, two sub-modules and a plain attribute."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(np.full(3, 2.0, dtype=np.float32))
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 2, bias=False)
        self.note = "not a parameter"
        self.array = np.zeros(5, dtype=np.float32)  # a plain array is neither parameter nor buffer
        self.tensor = mg.tensor([1.0, 2.0])          # nor is a plain tensor

    def forward(self, x):
        return self.fc2(self.fc1(x) * self.scale)


def names(module) -> list[str]:
    return [n for n, _ in module.named_parameters()]


def gelu_np(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def layer_norm_np(x, w=None, b=None, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)  # biased: divide by n
    y = (x - mu) / np.sqrt(var + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y


def backward_sum(out):
    out.sum().backward()


# ---------------------------------------------------------------------- registration
def test_attribute_assignment_registers_parameters_and_submodules_in_order():
    m = TwoLayer()
    assert names(m) == ["scale", "fc1.weight", "fc1.bias", "fc2.weight"]
    params = list(m.parameters())
    assert params[0] is m.scale and params[1] is m.fc1.weight and params[3] is m.fc2.weight
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in params)
    assert [n for n, _ in m.named_children()] == ["fc1", "fc2"]
    assert list(m.children()) == [m.fc1, m.fc2]
    assert list(m.parameters(recurse=False)) == [m.scale]
    assert m.num_parameters() == 3 + 4 * 3 + 3 + 3 * 2


def test_reassignment_replaces_and_keeps_the_position():
    m = TwoLayer()
    old = m.fc1
    m.fc1 = nn.Linear(4, 3, bias=False)
    assert names(m) == ["scale", "fc1.weight", "fc2.weight"]  # same place, old bias gone
    assert all(p is not old.weight and p is not old.bias for p in m.parameters())
    new_scale = nn.Parameter(np.ones(3, dtype=np.float32))
    m.scale = new_scale
    assert list(m.parameters())[0] is new_scale and names(m)[0] == "scale"
    assert list(m.state_dict()) == ["scale", "fc1.weight", "fc2.weight"]


def test_assigning_another_kind_moves_the_name_between_registries():
    m = TwoLayer()
    m.fc2 = nn.Parameter(np.zeros(2, dtype=np.float32))  # module -> parameter
    assert "fc2" not in dict(m.named_children())
    assert "fc2" in names(m) and "fc2.weight" not in names(m)
    m.fc2 = None                                          # parameter -> nothing
    assert "fc2" not in names(m) and m.fc2 is None
    del m.fc1
    assert names(m) == ["scale"]
    assert not hasattr(m, "fc1")


def test_a_plain_tensor_on_a_parameter_name_is_rejected_not_silently_unregistered():
    m = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="weight"):
        m.weight = mg.tensor(np.zeros((2, 2), dtype=np.float32))
    assert names(m) == ["weight", "bias"]


def test_linear_without_bias_registers_none():
    lin = nn.Linear(3, 2, bias=False)
    assert lin.bias is None
    assert names(lin) == ["weight"]
    assert list(lin.state_dict()) == ["weight"]
    x = np.ones((1, 3), dtype=np.float32)
    np.testing.assert_allclose(lin(mg.tensor(x)).data, x @ lin.weight.data.T, rtol=1e-6)


def test_assigning_before_super_init_explains_the_fix():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=re.escape("super().__init__()")):
        Broken()


def test_forward_is_required_and_call_runs_forward_with_args_and_kwargs():
    with pytest.raises(NotImplementedError, match="Module"):
        nn.Module()(1)

    class Affine(nn.Module):
        def forward(self, x, *, shift=0.0):
            return x * 2 + shift

    assert Affine()(3.0, shift=1.0) == 7.0


def test_tied_parameters_appear_once_and_collect_both_gradients():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(5, 3)
            self.head = nn.Linear(3, 5, bias=False)
            self.head.weight = self.emb.weight  # weight tying, as GPT-2 does

    m = Tied()
    assert names(m) == ["emb.weight"]
    assert list(m.state_dict()) == ["emb.weight"]
    assert m.num_parameters() == 15
    ids = np.array([0, 2, 2])
    w = m.emb.weight.data.copy()
    upstream = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    (m.head(m.emb(ids)) * mg.tensor(upstream)).sum().backward()
    # y = E[ids] E^T: dE = (g^T h) from the head + scatter(g E) into the rows of ids
    h = w[ids]
    expected = upstream.T @ h
    np.add.at(expected, ids, upstream @ w)
    np.testing.assert_allclose(m.emb.weight.grad, expected, rtol=1e-5, atol=1e-6)


def test_modules_and_named_modules_depth_first_each_once():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(nn.Sequential(shared, nn.ReLU()), shared, nn.GELU())
    named = list(net.named_modules())
    assert [n for n, _ in named] == ["", "0", "0.0", "0.1", "2"]
    assert [type(m).__name__ for _, m in named] == ["Sequential", "Sequential", "Linear", "ReLU", "GELU"]
    assert list(net.modules()) == [m for _, m in named]
    assert names(net) == ["0.0.weight", "0.0.bias"]
    assert [n for n, _ in net.named_modules(prefix="model")][:2] == ["model", "model.0"]


# ---------------------------------------------------------------------- state dicts
def test_state_dict_keys_and_values_are_the_parameter_arrays():
    m = TwoLayer()
    sd = m.state_dict()
    assert list(sd) == ["scale", "fc1.weight", "fc1.bias", "fc2.weight"]
    for (name, p), (key, value) in zip(m.named_parameters(), sd.items()):
        assert name == key and value is p.data  # no copy, as torch's detached views
        assert value.dtype == np.float32


def test_load_state_dict_strict_names_every_bad_key_in_one_error_and_loads_nothing():
    m = TwoLayer()
    before = {k: v.copy() for k, v in m.state_dict().items()}
    bad = {k: np.full_like(v, 7.0) for k, v in before.items()}
    del bad["fc1.bias"], bad["fc2.weight"]
    bad["fc3.weight"] = np.zeros((2, 2))
    bad["extra"] = np.zeros(1)
    bad["scale"] = np.zeros(4)
    with pytest.raises(ValueError) as info:
        m.load_state_dict(bad)
    msg = str(info.value)
    assert "\n" not in msg
    for key in ("fc1.bias", "fc2.weight", "fc3.weight", "extra", "scale"):
        assert key in msg, key
    assert "(3,)" in msg and "(4,)" in msg  # both shapes of the mis-shaped key
    assert "fc1.weight" not in msg           # the good key is not reported
    for k, v in m.state_dict().items():      # nothing was loaded
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_non_strict_returns_missing_and_unexpected_and_loads_the_rest():
    m = TwoLayer()
    old_fc2 = m.fc2.weight.data.copy()
    partial = {"scale": np.arange(3, dtype=np.float32), "fc1.weight": np.ones((3, 4), dtype=np.float32),
               "fc1.bias": np.zeros(3, dtype=np.float32), "head.weight": np.ones(2, dtype=np.float32)}
    missing, unexpected = m.load_state_dict(partial, strict=False)
    assert missing == ["fc2.weight"] and unexpected == ["head.weight"]
    np.testing.assert_array_equal(m.scale.data, [0, 1, 2])
    np.testing.assert_array_equal(m.fc1.weight.data, np.ones((3, 4)))
    np.testing.assert_array_equal(m.fc2.weight.data, old_fc2)
    assert m.load_state_dict(m.state_dict()) == ([], [])


def test_load_state_dict_non_strict_still_rejects_a_mis_shaped_key():
    m = TwoLayer()
    with pytest.raises(ValueError, match=r"fc1\.bias.*\(3,\).*\(5,\)"):
        m.load_state_dict({"fc1.bias": np.zeros(5)}, strict=False)


def test_load_state_dict_copies_in_place_keeping_dtype_and_identity():
    m = TwoLayer()
    arrays = {n: p.data for n, p in m.named_parameters()}
    params = dict(m.named_parameters())
    rng = np.random.default_rng(1)
    source = {k: rng.standard_normal(v.shape) for k, v in m.state_dict().items()}  # float64
    source["fc1.weight"] = np.asfortranarray(source["fc1.weight"])                 # any layout
    source["scale"] = mg.tensor(source["scale"])                                   # a Tensor also works
    m.load_state_dict(source)
    for name, p in m.named_parameters():
        assert p is params[name] and p.data is arrays[name]   # same Parameter, same array
        assert p.dtype == np.float32
        expected = source[name].data if isinstance(source[name], mg.Tensor) else source[name]
        np.testing.assert_allclose(p.data, expected.astype(np.float32), rtol=0)


def test_state_dict_round_trip_reproduces_the_outputs():
    mg.manual_seed(3)
    a = TwoLayer()
    mg.manual_seed(4)
    b = TwoLayer()
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32))
    assert not np.allclose(a(x).data, b(x).data)
    b.load_state_dict({k: v.copy() for k, v in a.state_dict().items()})
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_buffers_persistent_and_non_persistent():
    class WithBuffers(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.register_buffer("mask", np.tril(np.ones((3, 3), dtype=np.float32)))
            self.register_buffer("cache", np.zeros(4, dtype=np.float32), persistent=False)

    m = WithBuffers()
    assert list(m.state_dict()) == ["fc.weight", "fc.bias", "mask"]
    assert names(m) == ["fc.weight", "fc.bias"]                     # buffers are not parameters
    assert [n for n, _ in m.named_buffers()] == ["mask", "cache"]
    assert m.state_dict()["mask"] is m.mask
    m.load_state_dict({"fc.weight": np.eye(2), "fc.bias": np.zeros(2), "mask": np.full((3, 3), 5.0)})
    np.testing.assert_array_equal(m.mask, np.full((3, 3), 5.0))
    assert m.mask.dtype == np.float32
    with pytest.raises(ValueError, match="missing keys: mask"):
        m.load_state_dict({"fc.weight": np.eye(2), "fc.bias": np.zeros(2)})

    # re-assigning a buffer updates it (it stays in the state dict) ...
    m.mask = np.ones((3, 3), dtype=np.float32)
    assert m.state_dict()["mask"] is m.mask
    # ... and re-registering a non-persistent buffer as persistent makes it persistent
    m.register_buffer("cache", np.ones(4, dtype=np.float32))
    assert list(m.state_dict()) == ["fc.weight", "fc.bias", "mask", "cache"]
    m.double()
    assert m.mask.dtype == np.float64 and m.state_dict()["mask"].dtype == np.float64


def test_deepcopy_gives_an_independent_module_with_the_same_registrations():
    mg.manual_seed(0)
    m = TwoLayer()
    twin = copy.deepcopy(m)
    assert names(twin) == names(m)
    x = mg.tensor(np.ones((2, 4), dtype=np.float32))
    np.testing.assert_array_equal(twin(x).data, m(x).data)
    twin.fc1.weight.data += 1.0                    # a copy, not a view
    assert not np.array_equal(twin(x).data, m(x).data)
    backward_sum(twin(x))
    assert twin.fc1.weight.grad is not None and m.fc1.weight.grad is None


# ---------------------------------------------------------------------- modes, gradients, dtypes
def test_train_and_eval_reach_every_submodule():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.LayerNorm(2)))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net[1].train()
    assert not net.training and not net[0].training and net[1].training and net[1][0].training
    assert net.train() is net and all(m.training for m in net.modules())
    assert not net.train(False).training


def test_zero_grad_clears_every_parameter_gradient():
    m = TwoLayer()
    backward_sum(m(mg.tensor(np.ones((2, 4), dtype=np.float32))))
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_requires_grad_false_freezes_only_that_module():
    mg.manual_seed(0)
    m = TwoLayer()
    x = mg.tensor(np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32))
    backward_sum(m(x))
    reference = {n: p.grad.copy() for n, p in m.named_parameters()}
    m.zero_grad()

    assert m.fc1.requires_grad_(False) is m.fc1
    backward_sum(m(x))
    assert m.fc1.weight.grad is None and m.fc1.bias.grad is None
    for n in ("scale", "fc2.weight"):  # the rest still learn, with unchanged gradients
        np.testing.assert_allclose(dict(m.named_parameters())[n].grad, reference[n], rtol=1e-6)
    assert m.num_parameters(trainable_only=True) == 3 + 6

    m.requires_grad_(False)
    out = m(x)
    assert not out.requires_grad
    m.requires_grad_(True)
    assert all(p.requires_grad for p in m.parameters())


def test_to_double_and_float_convert_parameters_and_outputs():
    m = TwoLayer()
    assert all(p.dtype == np.float32 for p in m.parameters())
    values = {n: p.data.copy() for n, p in m.named_parameters()}
    params = list(m.parameters())
    assert m.double() is m
    assert list(m.parameters()) == params  # the same Parameter objects, new arrays
    for n, p in m.named_parameters():
        assert p.dtype == np.float64
        np.testing.assert_array_equal(p.data, values[n])
    x = mg.tensor(np.ones((2, 4)))  # float64 input
    out = m(x)
    assert out.dtype == np.float64
    backward_sum(out)
    assert all(p.grad.dtype == np.float64 for p in m.parameters())
    m.to(np.float32)
    assert all(p.dtype == np.float32 and p.grad is None for p in m.parameters())
    assert m(mg.tensor(np.ones((2, 4), dtype=np.float32))).dtype == np.float32
    m.to("float64")
    assert all(p.dtype == np.float64 for p in m.parameters())
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters())


def test_apply_visits_every_module_once_children_before_parents():
    inner = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    net = nn.Sequential(inner, nn.Linear(2, 1))
    seen = []
    assert net.apply(seen.append) is net
    assert sorted(map(id, seen)) == sorted(map(id, net.modules()))
    assert seen.index(inner[0]) < seen.index(inner) < seen.index(net)
    assert seen.index(net[1]) < seen.index(net)

    def zero_biases(module):
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data[...] = 0.0

    net.apply(zero_biases)
    assert all(not np.any(p.data) for n, p in net.named_parameters() if n.endswith("bias"))


def test_repr_is_a_tree_like_pytorchs():
    net = nn.Sequential(
        nn.Linear(4, 8),
        nn.Sequential(nn.GELU(), nn.Linear(8, 2, bias=False)),
        nn.Dropout(0.1),
        nn.LayerNorm(2),
        nn.Embedding(10, 3),
        nn.ReLU(),
    )
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=8, bias=True)\n"
        "  (1): Sequential(\n"
        "    (0): GELU()\n"
        "    (1): Linear(in_features=8, out_features=2, bias=False)\n"
        "  )\n"
        "  (2): Dropout(p=0.1)\n"
        "  (3): LayerNorm((2,), eps=1e-05)\n"
        "  (4): Embedding(10, 3)\n"
        "  (5): ReLU()\n"
        ")"
    )
    assert repr(TwoLayer()).splitlines()[1] == "  (fc1): Linear(in_features=4, out_features=3, bias=True)"
    assert repr(nn.Parameter(np.zeros(2, dtype=np.float32))).startswith("Parameter containing:\ntensor(")


# ---------------------------------------------------------------------- seeding
def _init_values(seed):
    mg.manual_seed(seed)
    net = nn.Sequential(nn.Embedding(7, 4), nn.Linear(4, 5), nn.LayerNorm(5), nn.Linear(5, 3))
    return [p.data.copy() for p in net.parameters()]


@given(st.integers(0, 2**32 - 1))
def test_manual_seed_makes_parameter_init_reproducible(seed):
    a, b = _init_values(seed), _init_values(seed)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    c = _init_values(seed + 1)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[1], c[1])


# ---------------------------------------------------------------------- Linear
batch_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple)


@given(batch=batch_shapes, n_in=st.integers(1, 6), n_out=st.integers(1, 6), bias=st.booleans(),
       seed=st.integers(0, 1000))
def test_linear_forward_matches_x_wt_plus_b(batch, n_in, n_out, bias, seed):
    mg.manual_seed(seed)
    lin = nn.Linear(n_in, n_out, bias=bias)
    x = np.random.default_rng(seed).standard_normal(batch + (n_in,)).astype(np.float32)
    y = lin(mg.tensor(x))
    expected = x.astype(np.float64) @ lin.weight.data.T.astype(np.float64)
    if bias:
        expected = expected + lin.bias.data
    assert y.shape == batch + (n_out,) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-5)


@given(n_in=st.integers(1, 300), n_out=st.integers(1, 40))
def test_linear_init_shapes_dtype_and_bounds(n_in, n_out):
    lin = nn.Linear(n_in, n_out)
    assert lin.weight.shape == (n_out, n_in) and lin.bias.shape == (n_out,)
    assert lin.weight.dtype == np.float32 and lin.bias.dtype == np.float32
    bound = 1 / math.sqrt(n_in)
    for p in (lin.weight, lin.bias):
        assert np.all(np.abs(p.data) <= bound * (1 + 1e-6))  # up to float32 rounding


def test_linear_init_fills_its_bounds_uniformly():
    mg.manual_seed(0)
    w = nn.Linear(100, 200).weight.data  # 20,000 draws of U(-0.1, 0.1)
    assert w.max() > 0.099 and w.min() < -0.099
    assert abs(w.mean()) < 0.002 and abs(w.std() - 0.1 / math.sqrt(3)) < 0.002


# ---------------------------------------------------------------------- Embedding
@given(vocab=st.integers(1, 10), dim=st.integers(1, 5), ids_shape=batch_shapes, seed=st.integers(0, 1000))
def test_embedding_forward_is_a_row_lookup(vocab, dim, ids_shape, seed):
    mg.manual_seed(seed)
    emb = nn.Embedding(vocab, dim)
    ids = np.random.default_rng(seed).integers(0, vocab, size=ids_shape)
    out = emb(ids)
    assert out.shape == ids_shape + (dim,) and out.dtype == np.float32
    np.testing.assert_array_equal(out.data, emb.weight.data[ids])
    np.testing.assert_array_equal(emb(mg.tensor(ids)).data, emb.weight.data[ids])  # Tensor ids too


def test_embedding_init_is_standard_normal_float32_and_rejects_bad_ids():
    mg.manual_seed(0)
    emb = nn.Embedding(100, 50)
    w = emb.weight.data
    assert w.shape == (100, 50) and w.dtype == np.float32
    assert abs(w.mean()) < 0.05 and abs(w.std() - 1) < 0.05
    with pytest.raises(ValueError, match="100"):
        emb(np.array([3, 100]))
    with pytest.raises(ValueError, match="-1"):
        emb(np.array([-1]))


# ---------------------------------------------------------------------- LayerNorm
@given(shape=batch_shapes, dim=st.integers(2, 8), scale=st.sampled_from([1e-3, 1.0, 100.0]),
       seed=st.integers(0, 1000))
def test_layer_norm_forward_matches_numpy(shape, dim, scale, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape + (dim,)) * scale + rng.standard_normal()).astype(np.float32)
    ln = nn.LayerNorm(dim)
    assert ln.weight.dtype == np.float32 and ln.eps == 1e-5
    np.testing.assert_array_equal(ln.weight.data, np.ones(dim))
    np.testing.assert_array_equal(ln.bias.data, np.zeros(dim))
    ln.weight.data[...] = rng.standard_normal(dim)
    ln.bias.data[...] = rng.standard_normal(dim)
    y = ln(mg.tensor(x))
    assert y.dtype == np.float32
    # tolerance relative to |x - mean| / sqrt(var + eps), which float32 gets to ~1e-6 of its size
    expected = layer_norm_np(x.astype(np.float64), ln.weight.data, ln.bias.data)
    np.testing.assert_allclose(y.data, expected, rtol=1e-4, atol=1e-4)

    plain = nn.LayerNorm(dim, elementwise_affine=False)
    assert list(plain.parameters()) == [] and plain.weight is None and plain.bias is None
    np.testing.assert_allclose(plain(mg.tensor(x)).data, layer_norm_np(x.astype(np.float64)),
                               rtol=1e-4, atol=1e-4)


def test_layer_norm_eps_is_inside_the_square_root():
    # rows with variance 1e-6 (std 1e-3): eps=1e-5 dominates, so the output is ~0.3 not 1
    x = np.array([[1.0 - 1e-3, 1.0 + 1e-3]])
    y = nn.LayerNorm(2).double()(mg.tensor(x)).data
    np.testing.assert_allclose(y, [[-1e-3 / math.sqrt(1e-6 + 1e-5), 1e-3 / math.sqrt(1e-6 + 1e-5)]], rtol=1e-9)
    np.testing.assert_array_equal(nn.LayerNorm(3)(mg.tensor(np.full((2, 3), 5.0, np.float32))).data, 0.0)


def test_layer_norm_normalized_shape_as_a_one_axis_tuple_or_refused():
    ln = nn.LayerNorm((3,))  # PyTorch's spelling of the same layer
    assert ln.weight.shape == (3,) and repr(ln) == "LayerNorm((3,), eps=1e-05)"
    x = np.array([[1.0, 2.0, 4.0]], dtype=np.float32)
    np.testing.assert_allclose(ln(mg.tensor(x)).data, layer_norm_np(x), rtol=1e-5)
    # normalising over several trailing axes is not implemented: refuse rather than normalise one
    with pytest.raises(ValueError, match=re.escape("(2, 3)")):
        nn.LayerNorm((2, 3))


def test_layer_norm_without_bias():
    ln = nn.LayerNorm(3, bias=False)
    assert names(ln) == ["weight"]
    x = np.array([[1.0, 2.0, 4.0]], dtype=np.float32)
    np.testing.assert_allclose(ln(mg.tensor(x)).data, layer_norm_np(x), rtol=1e-5)


# ---------------------------------------------------------------------- Dropout
def test_dropout_is_identity_in_eval_and_for_p_zero():
    x = mg.tensor(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    drop = nn.Dropout(0.5).eval()
    np.testing.assert_array_equal(drop(x).data, x.data)
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).data, x.data)   # training, p = 0
    assert nn.Dropout(0.0).training
    assert np.all(nn.Dropout(1.0)(x).data == 0)
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="probability"):
            nn.Dropout(p)


@given(p=st.sampled_from([0.1, 0.25, 0.5, 0.8]), seed=st.integers(0, 2**31))
def test_dropout_zeroes_about_p_and_scales_the_survivors(p, seed):
    mg.manual_seed(seed)
    drop = nn.Dropout(p)
    x = np.random.default_rng(seed).uniform(1.0, 2.0, size=(200, 100)).astype(np.float32)  # no zeros
    y = drop(mg.tensor(x))
    assert y.dtype == np.float32
    dropped = y.data == 0
    n = x.size
    # 20,000 Bernoulli(p) draws: the fraction is within 5 standard deviations of p
    assert abs(dropped.mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y.data[~dropped], x[~dropped] / (1 - p), rtol=1e-6)
    # inverted scaling keeps the expected value: y_i - x_i = x_i (mask_i / (1-p) - 1) has mean 0 and
    # variance x_i^2 p / (1-p), so the means differ by sampling noise only
    noise = math.sqrt(np.mean(x.astype(np.float64) ** 2) * p / (1 - p) / n)
    assert abs(y.data.mean(dtype=np.float64) - x.mean(dtype=np.float64)) < 5 * noise
    # the gradient uses the same mask and scale as the forward pass
    xt = mg.tensor(x, requires_grad=True)
    out = drop(xt)
    out.sum().backward()
    np.testing.assert_array_equal(xt.grad == 0, out.data == 0)
    np.testing.assert_allclose(xt.grad[out.data != 0], 1 / (1 - p), rtol=1e-6)


def test_dropout_masks_are_reproducible_with_manual_seed():
    def masks(seed):
        mg.manual_seed(seed)
        net = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5), nn.Dropout(0.5))
        x = mg.tensor(np.ones((16, 8), dtype=np.float32))
        return [net[1](x).data == 0, net[1](x).data == 0, net[2](x).data == 0]

    a, b = masks(11), masks(11)
    for m1, m2 in zip(a, b):
        np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(a[0], a[1])   # successive calls draw new masks
    assert not np.array_equal(a[0], a[2])   # each layer has its own stream
    c = masks(12)
    assert not np.array_equal(a[0], c[0])


# ---------------------------------------------------------------------- activations
@given(shape=batch_shapes, seed=st.integers(0, 1000))
def test_activation_modules_match_numpy(shape, seed):
    x = (np.random.default_rng(seed).standard_normal(shape + (5,)) * 3).astype(np.float32)
    t = mg.tensor(x)
    x64 = x.astype(np.float64)
    cases = [
        (nn.GELU(), gelu_np(x64)),
        (nn.ReLU(), np.maximum(x64, 0)),
        (nn.Sigmoid(), 1 / (1 + np.exp(-x64))),
        (nn.Tanh(), np.tanh(x64)),
        (nn.Identity(), x64),
    ]
    for module, expected in cases:
        y = module(t)
        assert y.dtype == np.float32 and list(module.parameters()) == []
        np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-6, err_msg=type(module).__name__)


def test_gelu_uses_gpt2_constants():
    # values from the tanh formula, computed by hand: gelu(1) = 0.5 (1 + tanh(0.7978845608 * 1.044715))
    y = nn.GELU()(mg.tensor(np.array([-3.0, -1.0, 0.0, 1.0, 2.0]))).data
    np.testing.assert_allclose(y, [-0.0036373920817729943, -0.15880800939172324, 0.0,
                                   0.8411919906082768, 1.954597694087775], rtol=1e-12)


# ---------------------------------------------------------------------- containers
def test_sequential_composes_indexes_and_registers():
    mg.manual_seed(0)
    a, b, c = nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2)
    seq = nn.Sequential(a, b, c)
    x = mg.tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32))
    np.testing.assert_array_equal(seq(x).data, c(b(a(x))).data)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    assert names(seq) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    tail = seq[1:]  # a slice is a Sequential too (PyTorch's), keeping the names
    assert isinstance(tail, nn.Sequential) and list(tail) == [b, c]
    assert names(tail) == ["2.weight", "2.bias"]
    np.testing.assert_array_equal(tail(a(x)).data, seq(x).data)
    assert nn.Sequential()(x) is x


def test_module_list_append_extend_setitem_and_order():
    layers = nn.ModuleList([nn.Linear(1, 1), nn.Linear(2, 2)])
    assert len(layers) == 2 and layers[1].in_features == 2 and layers[-1] is layers[1]
    assert layers.append(nn.Linear(3, 3)) is layers
    layers.extend([nn.Linear(4, 4)])
    assert [m.in_features for m in layers] == [1, 2, 3, 4]
    assert names(layers) == [f"{i}.{p}" for i in range(4) for p in ("weight", "bias")]

    relu = nn.ReLU()
    layers[1] = relu                          # replace in place: the order is kept
    assert layers[1] is relu and len(layers) == 4
    assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Linear", "Linear"]
    assert names(layers) == ["0.weight", "0.bias", "2.weight", "2.bias", "3.weight", "3.bias"]
    layers[-1] = nn.Identity()
    assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Linear", "Identity"]
    assert [m for m in layers[1:3]] == [layers[1], layers[2]]

    class Stack(nn.Module):  # the usual use: a list of blocks inside a model
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    s = Stack()
    assert names(s)[:2] == ["blocks.0.weight", "blocks.0.bias"] and len(names(s)) == 6
    x = mg.tensor(np.ones((1, 2), dtype=np.float32))
    np.testing.assert_array_equal(s(x).data, s.blocks[2](s.blocks[1](s.blocks[0](x))).data)


def test_module_dict_registers_under_its_keys():
    d = nn.ModuleDict({"enc": nn.Linear(2, 3), "act": nn.ReLU()})
    d["dec"] = nn.Linear(3, 2)
    assert list(d) == ["enc", "act", "dec"] and list(d.keys()) == ["enc", "act", "dec"]
    assert len(d) == 3 and "act" in d and "nope" not in d
    assert d["dec"].out_features == 2
    assert names(d) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    d["enc"] = nn.Linear(2, 3, bias=False)
    assert list(d) == ["enc", "act", "dec"]
    assert names(d) == ["enc.weight", "dec.weight", "dec.bias"]
    assert [k for k, _ in d.items()] == list(d.keys()) and list(d.values())[1] is d["act"]
    with pytest.raises(KeyError):
        d["nope"]


# ---------------------------------------------------------------------- a tiny training step
def test_mlp_loss_decreases_with_manual_sgd():
    """An end-to-end sanity check of the pieces together (no optimizer: plain p -= lr * grad)."""
    mg.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Linear(16, 3))
    rng = np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((32, 4)).astype(np.float32))
    y = (x.data[:, 0] > 0).astype(np.int64) + (x.data[:, 1] > 0)
    losses = []
    for _ in range(50):
        net.zero_grad()
        loss = cross_entropy(net(x), y)
        loss.backward()
        losses.append(loss.item())
        for p in net.parameters():
            p.data -= 0.5 * p.grad
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.dtype == np.float32 for p in net.parameters())


def test_import_minigrad_reaches_nn_optim_and_testing_as_torch_does():
    # a fresh interpreter: in this one the test modules have imported the packages already
    code = ("import sys, minigrad\n"
            "assert minigrad.nn.Linear and minigrad.optim.AdamW and minigrad.nn.functional\n"
            "assert 'hypothesis' not in sys.modules   # testing is imported on first use only\n"
            "assert minigrad.testing.assert_gradients_match\n"
            "try:\n    minigrad.no_such_thing\nexcept AttributeError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "module 'minigrad' has no attribute 'no_such_thing'"


# ---------------------------------------------------------------------- forward hooks
def test_forward_hooks_see_replace_and_go():
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = mg.tensor(np.random.randn(5, 3).astype(np.float32))
    base = model(x).data
    seen = []
    handle = model[0].register_forward_hook(lambda m, args, out: seen.append((m, args[0], out.data.copy())))
    model(x)
    assert len(seen) == 1 and seen[0][0] is model[0] and seen[0][1] is x
    np.testing.assert_allclose(seen[0][2], x.data @ model[0].weight.data.T + model[0].bias.data, rtol=1e-6)
    handle.remove()
    handle.remove()                                   # a second remove does nothing
    model(x)
    assert len(seen) == 1
    with model[2].register_forward_hook(lambda m, args, out: out * 0):
        assert np.all(model(x).data == 0)             # a hook's return value replaces the output
    np.testing.assert_array_equal(model(x).data, base)
    order = []
    model.register_forward_hook(lambda m, a, o: order.append(1))
    model.register_forward_hook(lambda m, a, o: order.append(2))
    model(x)
    assert order == [1, 2]                            # in the order they were registered
    with pytest.raises(TypeError, match="callable"):
        model.register_forward_hook("not a function")


def test_forward_hooks_carry_gradients():
    lin = nn.Linear(2, 1)
    x = mg.tensor(np.ones((1, 2), dtype=np.float32), requires_grad=True)
    with lin.register_forward_hook(lambda m, args, out: out * 3):
        lin(x).sum().backward()
    np.testing.assert_allclose(x.grad, 3 * lin.weight.data)


# ---------------------------------------------------------------------- skip_init
def test_skip_init_allocates_without_drawing_and_restores_the_switch():
    mg.manual_seed(3)
    drawn = nn.Linear(5, 4).weight.data.copy()
    mg.manual_seed(3)
    with nn.skip_init():
        assert nn.skipping_init()
        lin, emb, norm = nn.Linear(5, 4), nn.Embedding(7, 3), nn.LayerNorm(3)
        with nn.skip_init():
            pass
        assert nn.skipping_init()                      # a nested block leaves the outer one on
    assert not nn.skipping_init()
    assert (lin.weight.shape, lin.bias.shape, emb.weight.shape) == ((4, 5), (4,), (7, 3))
    assert lin.weight.dtype == emb.weight.dtype == np.float32
    np.testing.assert_array_equal(norm.weight.data, np.ones(3, np.float32))    # fixed starts are kept
    # nothing was drawn: the generator is where manual_seed left it
    np.testing.assert_array_equal(nn.Linear(5, 4).weight.data, drawn)
    with pytest.raises(RuntimeError):
        with nn.skip_init():
            raise RuntimeError("boom")
    assert not nn.skipping_init()                      # switched off again after an exception
