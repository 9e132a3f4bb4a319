"""cross_entropy (fused with log_softmax): logits (N, C) and (B, T, C), ignore_index rows,
reductions mean / sum / none, and a batch in which every row is ignored."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.testing import assert_gradients_match, tensors

seeds = st.integers(0, 2**32 - 1)


@st.composite
def ce_case(draw, min_valid=0):
    """Logits (N, C) or (B, T, C) and integer targets, some rows set to ``ignore_index``."""
    lead = draw(st.sampled_from([(draw(st.integers(1, 5)),), (draw(st.integers(1, 3)), draw(st.integers(1, 3)))]))
    n_classes = draw(st.integers(1, 4))
    logits = draw(tensors(lead + (n_classes,), min_value=-6, max_value=6))
    ignore_index = draw(st.sampled_from([-100, -1, n_classes + 3]))
    size = int(np.prod(lead))
    targets = np.array(draw(st.lists(st.integers(0, n_classes - 1), min_size=size, max_size=size)))
    ignored = np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    ignored[:min(min_valid, size)] = False
    targets = np.where(ignored, ignore_index, targets).reshape(lead)
    return logits, targets, ignore_index


def reference_losses(logits, targets, ignore_index):
    """Per-row -log softmax(logits)[target] (0 for ignored rows) and the mask of counted rows."""
    x = logits.reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    valid = t != ignore_index
    log_p = x - np.max(x, axis=1, keepdims=True)
    log_p = log_p - np.log(np.sum(np.exp(log_p), axis=1, keepdims=True))
    losses = np.where(valid, -log_p[np.arange(len(t)), np.where(valid, t, 0)], 0.0)
    return losses.reshape(targets.shape), valid.reshape(targets.shape)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@given(case=ce_case(min_valid=1), seed=seeds)
def test_gradient(reduction, case, seed):
    logits, targets, ignore_index = case
    assert_gradients_match(
        lambda x: mg.cross_entropy(x, targets, ignore_index=ignore_index, reduction=reduction), logits, seed=seed)


@given(case=ce_case(min_valid=1))
def test_forward_is_mean_negative_log_likelihood_of_counted_rows(case):
    logits, targets, ignore_index = case
    losses, valid = reference_losses(logits.data, targets, ignore_index)
    mean = mg.cross_entropy(logits, targets, ignore_index=ignore_index)
    assert mean.shape == ()
    np.testing.assert_allclose(mean.item(), losses[valid].mean(), rtol=1e-12)
    np.testing.assert_allclose(mg.cross_entropy(logits, targets, ignore_index, "sum").item(), losses.sum(), rtol=1e-12,
                               atol=1e-15)
    per_row = mg.cross_entropy(logits, mg.tensor(targets), ignore_index, "none")
    assert per_row.shape == targets.shape
    np.testing.assert_allclose(per_row.data, losses, rtol=1e-12, atol=1e-15)


@given(case=ce_case(min_valid=1), seed=seeds)
def test_gradient_formula(case, seed):
    """d mean / d logits = (softmax - onehot) / n_counted on counted rows, 0 on ignored ones."""
    logits, targets, ignore_index = case
    x = mg.tensor(logits.data, requires_grad=True)
    mg.cross_entropy(x, targets, ignore_index=ignore_index).backward()
    flat = logits.data.reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    valid = t != ignore_index
    p = np.exp(flat - flat.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(t)), np.where(valid, t, 0)] -= 1
    expected = p * valid[:, None] / valid.sum()
    np.testing.assert_allclose(x.grad, expected.reshape(logits.shape), rtol=1e-10, atol=1e-15)


def test_ignored_rows_do_not_count_in_the_mean():
    logits = np.array([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0], [9.0, -9.0, 3.0]])
    all_rows = mg.cross_entropy(mg.tensor(logits[:2]), np.array([0, 1])).item()
    with_ignored = mg.cross_entropy(mg.tensor(logits), np.array([0, 1, -100])).item()
    assert with_ignored == pytest.approx(all_rows, rel=1e-6)
    expected = (-np.log(np.exp(2) / (np.exp(2) + 1 + np.exp(-1))) + np.log(3)) / 2
    assert all_rows == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_ignored_batch(reduction):
    """No counted rows: mean is NaN (0/0, as in PyTorch), sum 0, none all zeros; the gradient is 0."""
    x = mg.tensor(np.random.default_rng(0).standard_normal((2, 3, 4)), requires_grad=True)
    targets = np.full((2, 3), -100)
    loss = mg.cross_entropy(x, targets, reduction=reduction)
    if reduction == "mean":
        assert np.isnan(loss.item())
        loss.backward()
    else:
        assert np.all(loss.data == 0.0)
        loss.backward(np.ones(loss.shape))
    np.testing.assert_array_equal(x.grad, np.zeros((2, 3, 4)))


def test_bad_targets_are_user_errors():
    logits = mg.tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="out of range"):
        mg.cross_entropy(logits, np.array([0, 3]))
    with pytest.raises(ValueError, match="targets of shape"):
        mg.cross_entropy(logits, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integers"):
        mg.cross_entropy(logits, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="reduction"):
        mg.cross_entropy(logits, np.array([0, 1]), reduction="avg")


def test_ignored_row_with_minus_infinity_does_not_poison_the_loss():
    """An ignored row may hold anything, -inf included: it must not turn the mean into NaN."""
    logits = mg.tensor(np.array([[-np.inf, 1.0], [0.5, 0.2]]), requires_grad=True)
    loss = mg.cross_entropy(logits, np.array([-100, 1]))
    expected = -(0.2 - np.log(np.exp(0.5) + np.exp(0.2)))
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    loss.backward()
    assert np.all(logits.grad[0] == 0.0) and np.all(np.isfinite(logits.grad))
