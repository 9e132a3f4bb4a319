"""matmul (2-D, batched, broadcast batch axes, 1-D operands) and the fused linear layer."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import arrays, assert_gradients_match, broadcastable_shapes, tensors

seeds = st.integers(0, 2**32 - 1)
side = st.integers(1, 3)


@st.composite
def matmul_operands(draw):
    """Float64 operands covering every case of NumPy's ``@``.

    Each operand is either 1-D (k,) or (batch..., rows, cols); the two batch shapes broadcast
    against each other (size-1 axes, different ranks, or no batch at all).
    """
    n, k, m = draw(side), draw(side), draw(side)
    batch_a, batch_b = draw(broadcastable_shapes(n=2, max_dims=2, max_side=3))
    a_1d, b_1d = draw(st.booleans()), draw(st.booleans())
    shape_a = (k,) if a_1d else batch_a + (n, k)
    shape_b = (k,) if b_1d else batch_b + (k, m)
    return draw(tensors(shape_a)), draw(tensors(shape_b))


@given(operands=matmul_operands(), seed=seeds)
def test_matmul_gradient(operands, seed):
    assert_gradients_match(mg.matmul, *operands, seed=seed)


@given(operands=matmul_operands())
def test_matmul_forward(operands):
    a, b = operands
    np.testing.assert_allclose((a @ b).data, a.data @ b.data, rtol=1e-12, atol=1e-12)
    assert (a @ b).shape == np.matmul(a.data, b.data).shape
    np.testing.assert_allclose(mg.matmul(a, b).data, np.einsum("...ij,...jk->...ik",
                               np.atleast_2d(a.data), b.data if b.ndim > 1 else b.data[:, None])
                               .reshape((a @ b).shape), rtol=1e-12, atol=1e-12)


@given(a=tensors((2, 3, 4, 2)), b=tensors((2, 3)), seed=seeds)
def test_matmul_gradient_batched_times_matrix(a, b, seed):
    """(..., n, k) @ (k, m): forward and weight gradient run as single 2-D products."""
    assert_gradients_match(mg.matmul, a, b, seed=seed)


@given(a=tensors((2, 2, 3)), b=tensors((2, 4)), seed=seeds)
def test_matmul_gradient_transposed_operand(a, b, seed):
    """A non-contiguous left operand (a transposed view) takes the general path."""
    assert_gradients_match(lambda x, w: mg.swapaxes(x, -1, -2) @ w, a, b, seed=seed)


@given(a=arrays((3, 2)), b=arrays((2, 4)))
def test_matmul_with_a_plain_array(a, b):
    x = mg.tensor(a, requires_grad=True)
    np.testing.assert_allclose((x @ b).data, a @ b, rtol=1e-12)
    np.testing.assert_allclose((b.T @ x.T).data, b.T @ a.T, rtol=1e-12)
    (x @ b).sum().backward()
    np.testing.assert_allclose(x.grad, np.ones((3, 4)) @ b.T, rtol=1e-12)


# ---------------------------------------------------------------- linear: x @ W.T + b
@st.composite
def linear_operands(draw):
    """x (in,), (N, in) or (B, T, in); W (out, in); b (out,) or None."""
    n_in, n_out = draw(side), draw(side)
    lead = draw(st.sampled_from([(), (draw(side),), (draw(side), draw(side))]))
    x = draw(tensors(lead + (n_in,)))
    w = draw(tensors((n_out, n_in)))
    b = draw(st.one_of(st.none(), tensors((n_out,))))
    return x, w, b


@given(operands=linear_operands(), seed=seeds)
def test_linear_gradient(operands, seed):
    x, w, b = operands
    if b is None:
        assert_gradients_match(mg.linear, x, w, seed=seed)
    else:
        assert_gradients_match(mg.linear, x, w, b, seed=seed)


@given(operands=linear_operands())
def test_linear_forward(operands):
    x, w, b = operands
    expected = x.data @ w.data.T + (0.0 if b is None else b.data)
    np.testing.assert_allclose(mg.linear(x, w, b).data, expected, rtol=1e-12, atol=1e-12)
    assert mg.linear(x, w, b).shape == x.shape[:-1] + (w.shape[0],)


def test_linear_does_not_need_gradients_for_frozen_weights():
    x = mg.tensor(np.ones((2, 3)), requires_grad=True)
    w = mg.tensor(np.full((4, 3), 0.5))  # frozen
    b = mg.tensor(np.zeros(4), requires_grad=True)
    mg.linear(x, w, b).sum().backward()
    assert w.grad is None
    np.testing.assert_allclose(x.grad, np.full((2, 3), 2.0))
    np.testing.assert_allclose(b.grad, np.full(4, 2.0))
