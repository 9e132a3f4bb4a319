"""reshape / view / flatten / unsqueeze / squeeze and transpose / permute / swapaxes / .T:
each backward must put every gradient element back where its input element came from."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import assert_gradients_match, shapes, tensors

seeds = st.integers(0, 2**32 - 1)
small = shapes(max_dims=4, max_side=3)


def prime_factors(n):
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


@st.composite
def reshape_case(draw):
    """A tensor and a different shape with the same number of elements (maybe with one -1)."""
    x = draw(tensors(small))
    factors = draw(st.permutations(prime_factors(x.size)))
    ndim = draw(st.integers(1, 4))
    slots = [1] * ndim
    for f in factors:
        slots[draw(st.integers(0, ndim - 1))] *= f
    if draw(st.booleans()):
        slots[draw(st.integers(0, ndim - 1))] = -1
    return x, tuple(slots)


@given(case=reshape_case(), seed=seeds)
def test_reshape_gradient(case, seed):
    x, shape = case
    assert_gradients_match(lambda t: mg.reshape(t, shape), x, seed=seed)
    assert_gradients_match(lambda t: t.view(*shape), x, seed=seed)


@given(case=reshape_case())
def test_reshape_forward(case):
    x, shape = case
    np.testing.assert_array_equal(x.reshape(shape).data, x.data.reshape(shape))
    np.testing.assert_array_equal(x.view(shape).data, x.data.reshape(shape))
    np.testing.assert_array_equal(x.reshape(*shape).data, x.data.reshape(shape))


@given(x=tensors(shapes(min_dims=1, max_dims=4, max_side=3)), data=st.data(), seed=seeds)
def test_flatten_gradient_and_forward(x, data, seed):
    start = data.draw(st.integers(-x.ndim, x.ndim - 1), label="start")
    end = data.draw(st.integers(start % x.ndim, x.ndim - 1), label="end")
    expected_shape = x.shape[:start % x.ndim] + (int(np.prod(x.shape[start % x.ndim:end + 1])),) + x.shape[end + 1:]
    y = x.flatten(start, end)
    assert y.shape == expected_shape
    np.testing.assert_array_equal(y.data, x.data.reshape(expected_shape))
    assert_gradients_match(lambda t: mg.flatten(t, start, end), x, seed=seed)


@given(x=tensors(small), data=st.data(), seed=seeds)
def test_unsqueeze_and_squeeze(x, data, seed):
    axis = data.draw(st.integers(-x.ndim - 1, x.ndim), label="axis")
    y = x.unsqueeze(axis)
    np.testing.assert_array_equal(y.data, np.expand_dims(x.data, axis))
    np.testing.assert_array_equal(mg.squeeze(y, axis).data, x.data)
    np.testing.assert_array_equal(mg.squeeze(x).data, np.squeeze(x.data))
    assert_gradients_match(lambda t: mg.unsqueeze(t, axis), x, seed=seed)
    assert_gradients_match(lambda t: mg.squeeze(mg.unsqueeze(t, axis) * 2.0, axis), x, seed=seed)
    assert_gradients_match(mg.squeeze, x, seed=seed)


@given(x=tensors(small), data=st.data(), seed=seeds)
def test_permute_gradient_and_forward(x, data, seed):
    axes = tuple(data.draw(st.permutations(range(x.ndim)), label="axes"))
    np.testing.assert_array_equal(x.permute(axes).data, np.transpose(x.data, axes))
    np.testing.assert_array_equal(x.permute(*axes).data if axes else x.data, np.transpose(x.data, axes))
    assert_gradients_match(lambda t: mg.permute(t, axes), x, seed=seed)


@given(x=tensors(shapes(min_dims=1, max_dims=4, max_side=3)), data=st.data(), seed=seeds)
def test_swapaxes_and_transpose(x, data, seed):
    a = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis0")
    b = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis1")
    expected = np.swapaxes(x.data, a, b)
    np.testing.assert_array_equal(mg.swapaxes(x, a, b).data, expected)
    np.testing.assert_array_equal(mg.transpose(x, a, b).data, expected)
    np.testing.assert_array_equal(x.transpose(a, b).data, expected)
    assert_gradients_match(lambda t: mg.swapaxes(t, a, b), x, seed=seed)
    assert_gradients_match(lambda t: t.transpose(a, b), x, seed=seed)


@given(x=tensors(small), seed=seeds)
def test_T_reverses_the_axes(x, seed):
    np.testing.assert_array_equal(x.T.data, x.data.T)
    assert_gradients_match(lambda t: t.T, x, seed=seed)


@given(x=tensors((2, 3, 4)), seed=seeds)
def test_chain_of_views_gradient(x, seed):
    """Non-contiguous gradients flowing through several views still land in the right places."""
    assert_gradients_match(lambda t: t.permute(2, 0, 1).reshape(4, 6).T[1:, ::2].flatten(), x, seed=seed)
