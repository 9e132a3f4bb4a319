"""Indexing (slices, ints, integer arrays with repeated indices, boolean masks), concat / stack /
split / chunk, where and masked_fill."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import arrays, assert_gradients_match, broadcastable_shapes, shapes, tensors

seeds = st.integers(0, 2**32 - 1)
small = shapes(min_dims=1, max_dims=3, max_side=4)


# ---------------------------------------------------------------- getitem
@st.composite
def basic_index(draw, shape):
    """A tuple mixing ints, slices (any start/stop/step, also negative), None and Ellipsis."""
    parts = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "full"]))
        if kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            start = draw(st.none() | st.integers(-n - 1, n + 1))
            stop = draw(st.none() | st.integers(-n - 1, n + 1))
            step = draw(st.none() | st.sampled_from([1, 2, -1, -2]))
            parts.append(slice(start, stop, step))
        else:
            parts.append(slice(None))
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    keep = draw(st.integers(0, len(parts)))
    parts = parts[:keep]  # trailing axes left out are taken whole
    if draw(st.booleans()):
        parts.append(Ellipsis)
    return tuple(parts)


@given(x=tensors(small), data=st.data(), seed=seeds)
def test_getitem_basic_gradient_and_forward(x, data, seed):
    index = data.draw(basic_index(x.shape), label="index")
    np.testing.assert_array_equal(x[index].data, x.data[index])
    assert_gradients_match(lambda t: t[index], x, seed=seed)


@st.composite
def integer_array_index(draw, shape):
    """Integer arrays (with repeats and negative ids) for one or two leading axes."""
    n_axes = draw(st.integers(1, min(2, len(shape))))
    length = draw(st.integers(1, 6))
    arrays_ = tuple(np.array(draw(st.lists(st.integers(-shape[i], shape[i] - 1), min_size=length,
                                           max_size=length))) for i in range(n_axes))
    return arrays_[0] if n_axes == 1 else arrays_


@given(x=tensors(small), data=st.data(), seed=seeds)
def test_getitem_integer_arrays_gradient(x, data, seed):
    index = data.draw(integer_array_index(x.shape), label="index")
    np.testing.assert_array_equal(x[index].data, x.data[index])
    assert_gradients_match(lambda t: t[index], x, seed=seed)


@given(x=arrays((5, 2)), ids=st.lists(st.integers(0, 4), min_size=1, max_size=12), seed=seeds)
def test_getitem_repeated_indices_accumulate(x, ids, seed):
    """Row r's gradient is the sum of the upstream gradients of every position that picked r."""
    ids = np.array(ids)
    g = np.random.default_rng(seed).standard_normal((len(ids), 2))
    t = mg.tensor(x, requires_grad=True)
    t[ids].backward(g)
    expected = np.zeros((5, 2))
    for position, row in enumerate(ids):
        expected[row] += g[position]
    np.testing.assert_allclose(t.grad, expected, rtol=1e-12, atol=1e-15)


def test_getitem_repeated_index_example():
    t = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    t[[0, 0, 2, 0]].sum().backward()
    np.testing.assert_array_equal(t.grad, [3.0, 0.0, 1.0])


@given(x=tensors(small), data=st.data(), seed=seeds)
def test_getitem_boolean_mask(x, data, seed):
    """A mask over all axes or over the leading ones (as a Tensor or an array)."""
    n_mask_axes = data.draw(st.integers(1, x.ndim), label="mask axes")
    mask = data.draw(arrays(x.shape[:n_mask_axes], dtype=bool, elements=st.booleans()), label="mask")
    np.testing.assert_array_equal(x[mask].data, x.data[mask])
    np.testing.assert_array_equal(x[mg.tensor(mask)].data, x.data[mask])
    assert_gradients_match(lambda t: t[mask], x, seed=seed)
    t = mg.tensor(x.data, requires_grad=True)
    t[mask].sum().backward()
    np.testing.assert_array_equal(t.grad, np.broadcast_to(
        mask.reshape(mask.shape + (1,) * (x.ndim - n_mask_axes)), x.shape).astype(float))


@given(x=tensors((3, 4)), seed=seeds)
def test_getitem_mixed_advanced_index(x, seed):
    rows = np.array([2, 0, 2])
    assert_gradients_match(lambda t: t[rows, 1:], x, seed=seed)
    assert_gradients_match(lambda t: t[:, [3, 3, 1]], x, seed=seed)
    assert_gradients_match(lambda t: t[1, [0, 0]], x, seed=seed)


# ---------------------------------------------------------------- concat / stack / split / chunk
@st.composite
def concat_case(draw):
    """2-3 tensors equal in every axis but ``axis``."""
    shape = draw(small)
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    parts = []
    for n in sizes:
        s = list(shape)
        s[axis] = n
        parts.append(draw(tensors(tuple(s))))
    return parts, axis


@given(case=concat_case(), seed=seeds)
def test_concat_gradient_and_forward(case, seed):
    parts, axis = case
    np.testing.assert_array_equal(mg.concat(parts, axis).data, np.concatenate([p.data for p in parts], axis))
    np.testing.assert_array_equal(mg.cat(parts, axis=axis).data, np.concatenate([p.data for p in parts], axis))
    assert_gradients_match(lambda *ps: mg.concat(ps, axis), *parts, seed=seed)


@given(data=st.data(), seed=seeds)
def test_stack_gradient_and_forward(data, seed):
    shape = data.draw(shapes(max_dims=3, max_side=3), label="shape")
    n = data.draw(st.integers(1, 3), label="n")
    parts = [data.draw(tensors(shape), label=f"part{i}") for i in range(n)]
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)), label="axis")
    np.testing.assert_array_equal(mg.stack(parts, axis).data, np.stack([p.data for p in parts], axis))
    assert_gradients_match(lambda *ps: mg.stack(ps, axis), *parts, seed=seed)


def weighted_concat(pieces, axis):
    """Join the pieces back with a different weight each, so every piece's gradient differs."""
    return mg.concat([p * float(i + 1) for i, p in enumerate(pieces)], axis)


@given(x=tensors(small), data=st.data(), seed=seeds)
def test_split_and_chunk(x, data, seed):
    axis = data.draw(st.integers(-x.ndim, x.ndim - 1), label="axis")
    n = x.shape[axis]
    size = data.draw(st.integers(1, n + 1), label="split size")
    pieces = x.split(size, axis)
    expected = np.split(x.data, list(range(size, n, size)), axis=axis)
    assert len(pieces) == len(expected)
    for p, e in zip(pieces, expected):
        np.testing.assert_array_equal(p.data, e)
    assert_gradients_match(lambda t: weighted_concat(mg.split(t, size, axis), axis), x, seed=seed)

    cut = data.draw(st.integers(0, n), label="cut")
    sections = [cut, n - cut]
    pieces = mg.split(x, sections, axis)
    assert [p.shape[axis] for p in pieces] == sections
    assert_gradients_match(lambda t: weighted_concat(mg.split(t, sections, axis), axis), x, seed=seed)

    chunks = data.draw(st.integers(1, 4), label="chunks")
    pieces = x.chunk(chunks, axis)
    # like torch.chunk: pieces of ceil(n / chunks), the last one smaller
    step = -(-n // chunks)
    assert [p.shape[axis] for p in pieces] == [min(step, n - s) for s in range(0, n, step)]
    assert_gradients_match(lambda t: weighted_concat(mg.chunk(t, chunks, axis), axis), x, seed=seed)


def test_split_sizes_must_add_up():
    with pytest.raises(ValueError, match="add up"):
        mg.split(mg.tensor(np.ones(5)), [2, 2])


# ---------------------------------------------------------------- where / masked_fill
@given(shapes3=broadcastable_shapes(n=3, max_dims=3, max_side=3), data=st.data(), seed=seeds)
def test_where_gradient_and_forward(shapes3, data, seed):
    sc, sa, sb = shapes3
    cond = data.draw(arrays(sc, dtype=bool, elements=st.booleans()), label="condition")
    a = data.draw(tensors(sa), label="a")
    b = data.draw(tensors(sb), label="b")
    np.testing.assert_array_equal(mg.where(cond, a, b).data, np.where(cond, a.data, b.data))
    assert_gradients_match(lambda u, v: mg.where(cond, u, v), a, b, seed=seed)
    assert_gradients_match(lambda u: mg.where(mg.tensor(cond), u, 0.5), a, seed=seed)


@st.composite
def mask_for(draw, shape):
    """A boolean mask that broadcasts to ``shape`` (fewer leading axes, size-1 axes)."""
    ndim = draw(st.integers(0, len(shape)))
    mshape = tuple(1 if draw(st.booleans()) else n for n in shape[len(shape) - ndim:])
    return draw(arrays(mshape, dtype=bool, elements=st.booleans()))


@given(x=tensors(small), data=st.data(), value=st.floats(-5, 5), seed=seeds)
def test_masked_fill_gradient_and_forward(x, data, value, seed):
    # gradcheck needs a finite fill value: with -1e9 the objective's rounding error (1e9 * 1e-16)
    # divided by the step (1e-6) swamps the derivative; -inf makes it NaN.
    mask = data.draw(mask_for(x.shape), label="mask")
    y = x.masked_fill(mask, value)
    np.testing.assert_array_equal(y.data, np.where(mask, value, x.data))
    assert_gradients_match(lambda t: mg.masked_fill(t, mask, value), x, seed=seed)
    t = mg.tensor(x.data, requires_grad=True)
    t.masked_fill(mg.tensor(mask), -np.inf).backward(np.ones(x.shape))
    np.testing.assert_array_equal(t.grad, np.broadcast_to(~mask, x.shape).astype(float))


def test_causal_mask_with_minus_infinity():
    scores = mg.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    mask = np.triu(np.ones((3, 3), dtype=bool), k=1)
    masked = scores.masked_fill(mask, -np.inf)
    assert np.all(np.isneginf(masked.data[mask])) and np.all(np.isfinite(masked.data[~mask]))
