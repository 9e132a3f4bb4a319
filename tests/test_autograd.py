"""The engine: the book's Appendix A example, deep graphs, accumulation, grad modes, retained
graphs, hooks, memory release, custom Functions, and the Tensor API."""
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import arrays, assert_gradients_match, shapes, tensors


# ---------------------------------------------------------------- the book's Appendix A example
def test_appendix_a_logistic_regression_example():
    """Book, appendix A.4: one logistic-regression neuron and its binary cross-entropy loss."""
    y = mg.tensor([1.0])
    x1 = mg.tensor([1.1])
    w1 = mg.tensor([2.2], requires_grad=True)
    b = mg.tensor([0.0], requires_grad=True)
    z = x1 * w1 + b
    a = mg.sigmoid(z)
    loss = -(y * mg.log(a) + (1 - y) * mg.log(1 - a)).mean()
    loss.backward()
    assert loss.item() == pytest.approx(0.0852, abs=5e-5)
    assert w1.grad[0] == pytest.approx(-0.0898, abs=5e-5)
    assert b.grad[0] == pytest.approx(-0.0817, abs=5e-5)
    # the closed form: dL/dz = a - y, so dL/dw1 = (a - y) x1 and dL/db = a - y
    a_value = 1 / (1 + np.exp(-2.42))
    assert b.grad[0] == pytest.approx(a_value - 1.0, rel=1e-5)
    assert w1.grad[0] == pytest.approx((a_value - 1.0) * 1.1, rel=1e-5)
    assert loss.dtype == np.float32 and w1.grad.dtype == np.float32


# ---------------------------------------------------------------- deep graphs
def deep_chain(step, n=100_000):
    """x and the result of applying ``step`` n times. The cyclic garbage collector is paused while
    building: it would only rescan the 100,000 live (cycle-free) nodes again and again."""
    x = mg.tensor(np.array(1.0), requires_grad=True)
    y = x
    gc.disable()
    try:
        for _ in range(n):
            y = step(y)
    finally:
        gc.enable()
    return x, y


def test_chain_of_100k_ops_backpropagates():
    """The topological sort is iterative: no RecursionError however deep the graph."""
    x, y = deep_chain(lambda t: t * 1.00001)
    y.backward()
    np.testing.assert_allclose(x.grad, 1.00001**100_000, rtol=1e-9)


def test_dropping_a_deep_unbackpropagated_graph_is_safe():
    x, y = deep_chain(lambda t: t + 1.0)
    assert y.item() == 100_001.0
    alive = weakref.ref(y.grad_fn.parents[0])
    del y  # deallocating 100,000 nested nodes must not overflow the C stack
    assert alive() is None


# ---------------------------------------------------------------- accumulation and graph reuse
def test_gradients_accumulate_across_backward_calls():
    w = mg.tensor([1.0, -2.0], requires_grad=True)
    (w * 3.0).sum().backward()
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad, [3.0 + 2.0, 3.0 - 4.0])
    w.zero_grad()
    assert w.grad is None


def test_backward_twice_needs_retain_graph():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    loss = (x.exp() * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_retain_graph_allows_a_second_backward_that_doubles_the_gradient():
    x = mg.tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)
    logits = mg.stack([x, x * x, mg.tanh(x)], axis=1)
    loss = mg.cross_entropy(logits, np.array([0, 2, 1])) + mg.layer_norm(x.reshape(1, 3)).sum()
    loss.backward(retain_graph=True)
    first = x.grad.copy()
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad, 2 * first, rtol=1e-12)
    loss.backward()  # a third pass without retain_graph is still allowed, and frees the graph
    np.testing.assert_allclose(x.grad, 3 * first, rtol=1e-12)
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_same_tensor_used_twice_accumulates():
    x = mg.tensor([3.0, -1.0], requires_grad=True)
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [6.0, -2.0])


@given(x=tensors(shapes(max_dims=2, max_side=3), min_value=0.2, max_value=2.0), seed=st.integers(0, 2**32 - 1))
def test_diamond_graph(x, seed):
    """x feeds two branches that meet again: both branches' gradients reach x."""
    def diamond(t):
        a = t * 2.0
        b = mg.log(t) + t
        return a * b + a / b
    assert_gradients_match(diamond, x, seed=seed)
    t = mg.tensor(x.data, requires_grad=True)
    diamond(t).sum().backward()
    v = x.data
    a, b = 2 * v, np.log(v) + v
    da, db = 2.0, 1 / v + 1
    np.testing.assert_allclose(t.grad, da * b + a * db + da / b - a * db / b**2, rtol=1e-12)


def test_scalar_used_many_times_accumulates():
    """0-d gradients are summed as arrays, not NumPy scalars (whose += is not in place)."""
    x = mg.tensor(np.array(2.0), requires_grad=True)
    (x * 3.0 + x * x + x + x / 4.0).backward()
    assert x.grad.item() == pytest.approx(3.0 + 4.0 + 1.0 + 0.25)
    assert isinstance(x.grad, np.ndarray)


# ---------------------------------------------------------------- grad modes
def test_no_grad_records_nothing():
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    with mg.no_grad():
        assert not mg.is_grad_enabled()
        y = (w * 2.0).exp().sum()
        assert y.grad_fn is None and not y.requires_grad and y.is_leaf
        with mg.enable_grad():
            z = (w * 2.0).sum()
            assert z.grad_fn is not None and z.requires_grad
        assert not mg.is_grad_enabled()
    assert mg.is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    z.backward()
    np.testing.assert_allclose(w.grad, [2.0, 2.0])


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with mg.no_grad():
            1 / 0
    assert mg.is_grad_enabled()
    mg.set_grad_enabled(False)
    try:
        assert (mg.tensor([1.0], requires_grad=True) * 2.0).grad_fn is None
    finally:
        mg.set_grad_enabled(True)


def test_inputs_without_requires_grad_get_no_gradient():
    x = mg.tensor([1.0, 2.0])
    w = mg.tensor([3.0, 4.0], requires_grad=True)
    frozen = mg.tensor([5.0, 6.0], requires_grad=False)
    (x * w + frozen * w).sum().backward()
    assert x.grad is None and frozen.grad is None
    np.testing.assert_allclose(w.grad, [6.0, 8.0])
    assert (x * frozen).grad_fn is None and not (x * frozen).requires_grad


# ---------------------------------------------------------------- retain_grad, hooks, detach
def test_retain_grad_on_a_non_leaf():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    h.retain_grad()
    other = x * 2.0
    (h * h + other).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert other.grad is None  # non-leaves do not keep .grad unless asked
    np.testing.assert_allclose(x.grad, 2 * h.data * 3.0 + 2.0)


def test_register_hook_observes_and_replaces_gradients():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    seen = []
    remove_observer = h.register_hook(lambda g: seen.append(g.copy()))
    h.register_hook(lambda g: g * 10.0)  # replaces the gradient flowing on to x
    leaf_seen = []
    x.register_hook(lambda g: leaf_seen.append(g.copy()))
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * h.data)
    np.testing.assert_allclose(x.grad, 2 * h.data * 10.0 * 2.0)
    np.testing.assert_allclose(leaf_seen[0], x.grad)

    remove_observer()
    remove_observer()  # removing twice is harmless


def test_removed_hook_is_not_called():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    remove = x.register_hook(lambda g: calls.append(1))
    (x * 2.0).sum().backward()
    remove()
    (x * 2.0).sum().backward()
    assert calls == [1]
    np.testing.assert_allclose(x.grad, [4.0, 4.0])


def test_hooks_need_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.tensor([1.0]).register_hook(lambda g: g)
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.tensor([1.0]).retain_grad()


def test_detach_cuts_the_graph_and_shares_data():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2.0).detach()
    assert d.grad_fn is None and not d.requires_grad and d.is_leaf
    y = x * d  # d is a constant here
    y.sum().backward()
    np.testing.assert_allclose(x.grad, d.data)
    e = x.detach()
    assert np.shares_memory(e.data, x.data)


# ---------------------------------------------------------------- .grad arrays
def test_leaf_grads_are_writable_contiguous_and_never_shared():
    a = mg.tensor(np.ones((2, 3)), requires_grad=True)
    b = mg.tensor(np.ones((2, 3)), requires_grad=True)
    c = mg.tensor(np.ones((3, 2)), requires_grad=True)  # reaches the loss through a transpose
    d = mg.tensor(np.ones(3), requires_grad=True)  # broadcast: its gradient is a reduction
    e = mg.tensor(np.ones((2, 3)), requires_grad=True)  # reaches the loss through a sum (read-only view)
    (a + b + c.T + d).sum().backward()
    e.sum().backward()
    grads = [a.grad, b.grad, c.grad, d.grad, e.grad]
    for g in grads:
        assert g.flags.writeable and g.flags.c_contiguous
    for i, g in enumerate(grads):
        for h in grads[i + 1:]:
            assert not np.shares_memory(g, h)
    a.grad[...] = 5.0  # an optimizer may update grads in place
    np.testing.assert_array_equal(b.grad, np.ones((2, 3)))


def test_add_of_two_leaves_gives_each_its_own_grad_array():
    """Add passes the same (writable) upstream array to both inputs: only one may keep it."""
    a = mg.tensor(np.zeros((2, 3)), requires_grad=True)
    b = mg.tensor(np.zeros((2, 3)), requires_grad=True)
    (a + b).backward(np.ones((2, 3)))
    assert not np.shares_memory(a.grad, b.grad)
    a.grad[0, 0] = 5.0
    assert b.grad[0, 0] == 1.0
    h = a * 1.0  # a retained non-leaf gradient and the leaf's are distinct arrays too
    h.retain_grad()
    a.zero_grad()
    (h + 0.0).backward(np.ones((2, 3)))
    assert not np.shares_memory(h.grad, a.grad)


def test_leaf_grad_does_not_alias_the_upstream_array():
    x = mg.tensor(np.ones((2, 2)), requires_grad=True)
    upstream = np.full((4,), 2.0)
    x.reshape(4).backward(upstream)
    upstream[...] = -1.0
    np.testing.assert_array_equal(x.grad, np.full((2, 2), 2.0))


def test_retained_non_leaf_grad_is_not_shared_with_leaves():
    x = mg.tensor(np.ones(3), requires_grad=True)
    h = x + 0.0
    h.retain_grad()
    h.sum().backward()
    assert not np.shares_memory(h.grad, x.grad)


# ---------------------------------------------------------------- memory: release and no cycles
def test_saved_arrays_are_released_after_backward():
    x = mg.tensor(np.ones((2, 3)), requires_grad=True)
    h = mg.tanh(x * 2.0)
    s = mg.softmax(h)
    loss = (s * h).sum()
    mul = loss.grad_fn.parents[0].grad_fn  # the Mul that saved s and h
    nodes = [mul, s.grad_fn, h.grad_fn]
    assert all(node.saved_tensors for node in nodes)
    loss.backward()
    for node in nodes + [loss.grad_fn]:
        assert node.saved_tensors == () and node.parents is None


def test_intermediate_tensors_are_freed_by_backward():
    """Once backward has walked past it, nothing keeps an activation alive (no reference cycle)."""
    x = mg.tensor(np.ones(4), requires_grad=True)
    h = x * 2.0
    alive = weakref.ref(h)
    loss = mg.exp(h).sum()
    del h
    assert alive() is not None  # the graph holds it until backward
    loss.backward()
    assert alive() is None  # freed by reference counting alone, while `loss` is still alive
    np.testing.assert_allclose(x.grad, 2 * np.exp(2.0))


def test_retain_graph_keeps_intermediates_until_the_output_is_dropped():
    x = mg.tensor(np.ones(4), requires_grad=True)
    h = x * 2.0
    alive = weakref.ref(h)
    loss = mg.exp(h).sum()
    del h
    loss.backward(retain_graph=True)
    assert alive() is not None
    del loss
    assert alive() is None  # no cycle: dropping the output frees the whole graph


@pytest.mark.parametrize("how", ["backward", "retain_graph", "no backward"])
def test_graphs_create_no_reference_cycles(how):
    gc.collect()
    gc.disable()
    try:
        x = mg.tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
        w = mg.tensor(np.ones((5, 3)), requires_grad=True)
        h = mg.gelu(mg.linear(x, w))
        h.retain_grad()
        h.register_hook(lambda g: g)
        loss = mg.cross_entropy(mg.layer_norm(h) @ np.ones((5, 2)), np.array([0, 1, -100, 1]))
        if how == "backward":
            loss.backward()
        elif how == "retain_graph":
            loss.backward(retain_graph=True)
        del x, w, h, loss
        assert gc.collect() == 0
    finally:
        gc.enable()


# ---------------------------------------------------------------- custom Function
class Cube(mg.Function):
    """y = x^3, dy/dx = 3x^2: a user-defined op."""

    def forward(self, x):
        self.save_for_backward(x)
        return x**3

    def backward(self, grad):
        (x,) = self.saved_tensors
        return 3 * x * x * grad


class ScaledAdd(mg.Function):
    """y = a + scale * b with a keyword option; returns None for inputs that need no gradient."""

    def forward(self, a, b, scale):
        self.scale = scale
        return a + scale * b

    def backward(self, grad):
        return (grad if self.needs_input_grad[0] else None,
                grad * self.scale if self.needs_input_grad[1] else None)


@given(x=tensors(shapes(max_dims=2, max_side=3)), seed=st.integers(0, 2**32 - 1))
def test_custom_function(x, seed):
    assert_gradients_match(Cube.apply, x, seed=seed)
    np.testing.assert_allclose(Cube.apply(x).data, x.data**3)
    assert type(Cube.apply(x).grad_fn).__name__ == "Cube"


def test_custom_function_with_options_and_broadcast_inputs():
    a = mg.tensor(np.ones((2, 3)), requires_grad=True)
    b = mg.tensor(np.ones(3), requires_grad=True)
    frozen = mg.tensor(np.ones(3))
    y = ScaledAdd.apply(a, b, scale=2.5)
    np.testing.assert_allclose(y.data, np.full((2, 3), 3.5))
    y.sum().backward()  # b's (2, 3) gradient is summed to (3,) by the engine
    np.testing.assert_allclose(b.grad, np.full(3, 5.0))
    assert ScaledAdd.apply(a, frozen, scale=1.0).grad_fn.needs_input_grad == (True, False)
    assert_gradients_match(lambda u, v: ScaledAdd.apply(u, v, scale=-0.5),
                           mg.tensor(np.ones((2, 3)), requires_grad=True),
                           mg.tensor(np.arange(3.0), requires_grad=True))


def test_wrong_number_of_gradients_is_reported():
    class Bad(mg.Function):
        def forward(self, a, b):
            return a + b

        def backward(self, grad):
            return grad

    y = Bad.apply(mg.tensor([1.0], requires_grad=True), mg.tensor([2.0], requires_grad=True))
    with pytest.raises(RuntimeError, match="returned 1 gradients for 2 inputs"):
        y.backward(np.ones(1))


# ---------------------------------------------------------------- backward arguments
def test_backward_of_a_non_scalar_needs_a_gradient():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2.0).backward(np.ones(3))
    (x * 2.0).backward(mg.tensor([1.0, -1.0]))
    np.testing.assert_allclose(x.grad, [2.0, -2.0])


# ---------------------------------------------------------------- Tensor API
def test_tensor_basics():
    t = mg.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], name="t")
    assert t.shape == (2, 3) and t.ndim == 2 and t.dtype == np.float32 and t.size == 6 and len(t) == 2
    assert t.T.shape == (3, 2)
    np.testing.assert_array_equal(t.T.data, t.data.T)
    assert isinstance(t.numpy(), np.ndarray) and t.numpy() is t.data
    assert mg.tensor([[2.5]]).item() == 2.5 and isinstance(mg.tensor([[2.5]]).item(), float)
    with pytest.raises(ValueError, match="one element"):
        t.item()
    assert t.tolist() == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert t.is_leaf and t.grad is None and not t.requires_grad


def test_tensor_repr():
    assert repr(mg.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert "requires_grad=True" in repr(mg.tensor([1.0], requires_grad=True))
    assert "dtype=float64" in repr(mg.tensor(np.array([1.0])))
    w = mg.tensor([1.0, 2.0], requires_grad=True, name="w")
    r = repr(w * 2.0)
    assert r.startswith("tensor([2., 4.]") and "grad_fn=Mul" in r
    assert "name='w'" in repr(w)


def test_python_floats_become_float32_and_float64_arrays_stay_float64():
    assert mg.tensor(1.5).dtype == np.float32
    assert mg.tensor([1.5, 2.0]).dtype == np.float32
    assert mg.Tensor([1.5]).dtype == np.float32
    assert mg.tensor(np.array([1.5])).dtype == np.float64
    assert mg.Tensor(np.zeros(2)).dtype == np.float64
    assert mg.tensor(np.float64(1.5)).dtype == np.float64
    assert mg.tensor([1, 2]).dtype.kind == "i"
    assert mg.tensor([1.0], dtype=np.float64).dtype == np.float64
    assert mg.as_tensor(0.1).dtype == np.float32 and mg.as_tensor(np.float64(0.1)).dtype == np.float64
    assert mg.Tensor([np.float16(1.5)]).dtype == mg.tensor([np.float16(1.5)]).dtype == np.float16
    # a constant meeting a float64 tensor takes float64 straight from the Python float, not via float32
    assert mg.as_tensor(0.1, like=mg.tensor(np.zeros(1))).data == np.float64(0.1)
    with pytest.raises(TypeError, match="floating-point"):
        mg.tensor([1, 2], requires_grad=True)


def test_tensor_copies_its_input():
    data = np.ones(3, dtype=np.float32)
    t = mg.tensor(data)
    data[0] = 5.0
    assert t.data[0] == 1.0


def test_op_results_are_arrays_even_when_0_d():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    for y in ((x * x).sum(), x.max(), x.mean(), x[0] + x[1], mg.gelu(x[0])):
        assert isinstance(y.data, np.ndarray) and y.shape == ()


def test_creation_helpers():
    assert mg.zeros(2, 3).shape == (2, 3) and mg.zeros((2, 3)).dtype == np.float32
    assert np.all(mg.zeros(2).data == 0) and np.all(mg.ones(2, 2).data == 1)
    assert mg.ones(3, dtype=np.float64).dtype == np.float64
    assert mg.zeros(2, requires_grad=True).requires_grad
    like = mg.tensor(np.ones((2, 2)))
    assert mg.zeros_like(like).shape == (2, 2) and mg.zeros_like(like).dtype == np.float64
    assert np.all(mg.zeros_like(like).data == 0) and np.all(mg.ones_like(like).data == 1)
    np.testing.assert_array_equal(mg.full((2,), 7.0).data, [7.0, 7.0])
    np.testing.assert_array_equal(mg.arange(4).data, [0, 1, 2, 3])
    assert mg.arange(4).dtype == np.int64
    assert mg.arange(0.0, 1.0, 0.25).dtype == np.float32
    np.testing.assert_array_equal(mg.arange(2, 8, 3).data, [2, 5])


def test_random_helpers_take_a_generator():
    a = mg.randn(3, 4, rng=np.random.default_rng(5))
    b = mg.randn(3, 4, rng=np.random.default_rng(5))
    assert a.shape == (3, 4) and a.dtype == np.float32
    np.testing.assert_array_equal(a.data, b.data)
    u = mg.rand((1000,), rng=np.random.default_rng(1))
    assert u.dtype == np.float32 and u.data.min() >= 0.0 and u.data.max() < 1.0
    assert mg.randn(2, dtype=np.float64, rng=np.random.default_rng(0)).dtype == np.float64
    big = mg.randn(20_000, rng=np.random.default_rng(2)).data
    assert abs(big.mean()) < 0.05 and abs(big.std() - 1.0) < 0.05


def test_manual_seed_makes_runs_reproducible():
    mg.manual_seed(123)
    first = (mg.randn(5).data.copy(), mg.rand(5).data.copy())
    mg.manual_seed(123)
    second = (mg.randn(5).data, mg.rand(5).data)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    mg.manual_seed(124)
    assert not np.array_equal(mg.randn(5).data, first[0])


def test_comparisons_give_boolean_tensors_without_gradients():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    m = x > 1.5
    assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal(m.data, [False, True, True])
    np.testing.assert_array_equal((x <= 2.0).data, [True, True, False])
    np.testing.assert_array_equal(x.eq(2.0).data, [False, True, False])


@given(x=arrays(shapes(max_dims=3, max_side=4), dtype=np.float32))
def test_unbroadcast_sums_back_to_the_input_shape(x):
    """unbroadcast is the adjoint of broadcasting: <broadcast(v), g> == <v, unbroadcast(g)>."""
    target = tuple(1 if i % 2 else n for i, n in enumerate(x.shape))[1:] if x.ndim else ()
    v = np.random.default_rng(0).standard_normal(target)
    g = x.astype(np.float64)
    reduced = mg.unbroadcast(g, target)
    assert reduced.shape == target
    np.testing.assert_allclose(np.sum(np.broadcast_to(v, g.shape) * g), np.sum(v * reduced), rtol=1e-9, atol=1e-9)
