"""Tests for minigrad.optim: SGD / Adam / AdamW updates, parameter groups, checkpoints, clipping, schedules.

The expected parameters come from the published update rules written out below in plain float64
NumPy (textbook form, whole arrays, no in-place tricks), independently of the optimizers' code.
When torch is installed, extra tests compare against torch.optim directly.
"""
import json
import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad.optim.optimizer as optimizer_module
from minigrad.nn.parameter import Parameter
from minigrad.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    LambdaLR,
    Optimizer,
    StepLR,
    WarmupCosine,
    clip_grad_norm_,
    warmup_cosine_lr,
)

# --------------------------------------------------------------------------------------------------
# Reference update rules (float64, textbook form)
# --------------------------------------------------------------------------------------------------


def reference_adam(p0, grads, *, lr, betas, eps, weight_decay, decoupled):
    """Adam (L2 in the gradient) or AdamW (decoupled decay) with bias-corrected moments."""
    b1, b2 = betas
    p = np.asarray(p0, dtype=np.float64).copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, dtype=np.float64)
        if decoupled:
            p = p - lr * weight_decay * p
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


def reference_sgd(p0, grads, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """SGD as PyTorch defines it: the first momentum buffer is the gradient itself."""
    p = np.asarray(p0, dtype=np.float64).copy()
    buf = None
    for g in grads:
        d = np.asarray(g, dtype=np.float64) + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
    return p


def expected_after(cls, p0, grads, **options):
    """The reference rule matching optimizer class ``cls`` (Adam's betas and eps at their defaults)."""
    if cls is SGD:
        return reference_sgd(p0, grads, **options)
    return reference_adam(p0, grads, betas=(0.9, 0.999), eps=1e-8, decoupled=cls is AdamW, **options)


def run(opt_cls, p0, grads, **kwargs):
    """Apply ``opt_cls`` to one parameter with initial value ``p0`` and the given gradients."""
    p = Parameter(np.array(p0, copy=True))
    opt = opt_cls([p], **kwargs)
    for g in grads:
        p.grad = np.array(g, dtype=p.dtype, copy=True)
        opt.step()
    return p, opt


def random_problem(seed, shape, steps, dtype=np.float64):
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(shape).astype(dtype)
    # gradients bounded away from 0, so that Adam's g / sqrt(v) is well conditioned in float32
    grads = [(rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.1, 2.0, size=shape)).astype(dtype)
             for _ in range(steps)]
    return p0, grads


shapes = st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple)
adam_options = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.5),
    "betas": st.tuples(st.floats(0.0, 0.99), st.floats(0.0, 0.9999)),
    "eps": st.sampled_from([1e-8, 1e-6, 1e-3]),
    "weight_decay": st.sampled_from([0.0, 0.01, 0.1, 0.5]),
})
sgd_options = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 0.5),
    "momentum": st.sampled_from([0.0, 0.5, 0.9]),
    "dampening": st.sampled_from([0.0, 0.3]),
    "weight_decay": st.sampled_from([0.0, 0.01, 0.3]),
    "nesterov": st.booleans(),
}).filter(lambda o: not o["nesterov"] or (o["momentum"] > 0 and o["dampening"] == 0))


# --------------------------------------------------------------------------------------------------
# The update equations
# --------------------------------------------------------------------------------------------------


@given(shape=shapes, steps=st.integers(1, 6), options=adam_options, seed=st.integers(0, 2**32 - 1),
       cls=st.sampled_from([Adam, AdamW]))
def test_adam_and_adamw_match_the_published_rule_in_float64(shape, steps, options, seed, cls):
    p0, grads = random_problem(seed, shape, steps)
    p, _ = run(cls, p0, grads, **options)
    expected = reference_adam(p0, grads, decoupled=cls is AdamW, **options)
    np.testing.assert_allclose(p.data, expected, rtol=1e-12, atol=1e-12)


@given(shape=shapes, steps=st.integers(1, 6), options=sgd_options, seed=st.integers(0, 2**32 - 1))
def test_sgd_matches_the_published_rule_in_float64(shape, steps, options, seed):
    p0, grads = random_problem(seed, shape, steps)
    p, _ = run(SGD, p0, grads, **options)
    np.testing.assert_allclose(p.data, reference_sgd(p0, grads, **options), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [Adam, AdamW])
def test_adam_float32_matches_the_float64_rule_over_several_steps(cls):
    p0, grads = random_problem(0, (4, 5), steps=8, dtype=np.float32)
    options = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1)
    p, _ = run(cls, p0, grads, **options)
    expected = reference_adam(p0, grads, decoupled=cls is AdamW, **options)
    assert p.dtype == np.float32
    np.testing.assert_allclose(p.data, expected, rtol=2e-6, atol=2e-7)
    # AdamW and Adam differ here (decay of 0.1 on parameters of size ~1), so the test tells them apart
    other = reference_adam(p0, grads, decoupled=cls is not AdamW, **options)
    assert np.abs(p.data - other).max() > 1e-5


def test_first_adam_step_moves_each_parameter_by_lr_against_its_gradient_sign():
    # at t=1, m_hat = g and v_hat = g*g, so the step is lr * g / (|g| + eps) ~ lr * sign(g)
    g = np.array([3.0, -0.5, 1e-3, -40.0], dtype=np.float32)
    p, _ = run(AdamW, np.zeros(4, np.float32), [g], lr=0.1, weight_decay=0.0)
    g64 = g.astype(np.float64)
    np.testing.assert_allclose(p.data, -0.1 * g64 / (np.abs(g64) + 1e-8), rtol=1e-6)
    np.testing.assert_allclose(p.data[[0, 1, 3]], -0.1 * np.sign(g[[0, 1, 3]]), rtol=1e-6)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_quadratic_loss_through_autograd(cls):
    """Minimise sum((w - target)^2) with gradients from the engine; the trajectory follows the rule."""
    target = np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]])
    w0 = np.zeros((2, 3))
    options = dict(lr=0.05, weight_decay=0.01)
    if cls is SGD:
        options.update(momentum=0.9, nesterov=True)
    w = Parameter(w0.copy())
    opt = cls([w], **options)
    ref, grads = w0.copy(), []
    for _ in range(5):
        opt.zero_grad()
        loss = ((w - target) ** 2).sum()
        loss.backward()
        grads.append(2 * (ref - target))
        opt.step()
        ref = expected_after(cls, w0, grads, **options)
        np.testing.assert_allclose(w.data, ref, rtol=1e-12, atol=1e-12)
    assert np.abs(w.data - target).sum() < np.abs(w0 - target).sum()  # it went towards the minimum


@pytest.mark.parametrize("chunk", [1, 3, 16])
@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_updates_are_independent_of_the_chunk_size(cls, chunk):
    options = dict(lr=0.1, momentum=0.9, weight_decay=0.1) if cls is SGD else dict(lr=0.01, weight_decay=0.1)
    p0, grads = random_problem(1, (7, 5), steps=3)
    p_whole, _ = run(cls, p0, grads, **options)
    with mock.patch.object(optimizer_module, "CHUNK_SIZE", chunk):
        p_chunked, _ = run(cls, p0, grads, **options)
    np.testing.assert_array_equal(p_chunked.data, p_whole.data)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_non_contiguous_parameter_is_updated_in_place(cls):
    base = np.random.default_rng(2).standard_normal((5, 4))
    view = base.T  # Fortran-ordered view: the optimizer must write through it, not into a copy
    p0 = view.copy()
    p = Parameter(view)
    assert np.shares_memory(p.data, base) and not p.data.flags.c_contiguous
    options = dict(lr=0.1, momentum=0.9, weight_decay=0.1) if cls is SGD else dict(lr=0.1, weight_decay=0.1)
    opt = cls([p], **options)
    _, grads = random_problem(3, view.shape, steps=3)
    for g in grads:
        p.grad = g.copy()
        opt.step()
    np.testing.assert_allclose(base.T, expected_after(cls, p0, grads, **options), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# dtypes, skipping, zero_grad
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=np.float64(0.1), momentum=np.float64(0.9), dampening=np.float64(0.1),
                   weight_decay=np.float64(0.01)),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    lambda ps: Adam(ps, lr=np.float64(1e-3), betas=(np.float64(0.9), np.float64(0.99)),
                    eps=np.float64(1e-8), weight_decay=np.float64(0.1)),
    lambda ps: AdamW(ps, lr=np.float64(1e-3), betas=(np.float64(0.9), np.float64(0.99)),
                     eps=np.float64(1e-8), weight_decay=np.float64(0.1)),
])
def test_float32_stays_float32_and_updates_in_place(make):
    # NumPy float64 scalars as hyperparameters would promote float32 arrays under NumPy 2
    rng = np.random.default_rng(4)
    p = Parameter(rng.standard_normal((3, 4)).astype(np.float32))
    data = p.data
    opt = make([p])
    for _ in range(3):
        p.grad = rng.standard_normal((3, 4)).astype(np.float32)
        opt.step()
        opt.param_groups[0]["lr"] = np.float64(opt.param_groups[0]["lr"]) * 0.5  # as a scheduler might
    assert p.data is data and p.data.dtype == np.float32
    for value in opt.state[p].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32
    loaded = make([Parameter(data.copy())])
    loaded.load_state_dict(opt.state_dict())
    arrays = [v for s in loaded.state.values() for v in s.values() if isinstance(v, np.ndarray)]
    assert arrays and all(v.dtype == np.float32 for v in arrays)


def test_clip_keeps_float32():
    p = Parameter(np.ones(5, np.float32))
    p.grad = np.full(5, 10.0, np.float32)
    clip_grad_norm_([p], np.float64(1.0))
    assert p.grad.dtype == np.float32


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_parameters_without_grad_or_frozen_are_skipped(cls):
    a, b, c = (Parameter(np.ones(3)) for _ in range(3))
    c.requires_grad_(False)
    opt = cls([a, b, c], lr=0.1, weight_decay=0.1)
    a.grad = np.ones(3)
    c.grad = np.ones(3)  # a frozen parameter with a stale gradient must not move either
    opt.step()
    assert not np.array_equal(a.data, np.ones(3))
    np.testing.assert_array_equal(b.data, np.ones(3))
    np.testing.assert_array_equal(c.data, np.ones(3))
    assert b not in opt.state and c not in opt.state


def test_per_parameter_step_counts_follow_their_own_updates():
    a, b = Parameter(np.zeros(2)), Parameter(np.zeros(2))
    opt = AdamW([a, b], lr=0.1)
    a.grad = np.ones(2)
    opt.step()
    b.grad = np.ones(2)
    opt.step()
    assert opt.state[a]["step"] == 2 and opt.state[b]["step"] == 1
    # b's first update is bias-corrected as step 1 although it is the optimizer's second step
    np.testing.assert_allclose(b.data, reference_adam(np.zeros(2), [np.ones(2)], lr=0.1, betas=(0.9, 0.999),
                                                      eps=1e-8, weight_decay=0.01, decoupled=True))


def test_zero_grad():
    a, b = Parameter(np.ones(3, np.float32)), Parameter(np.ones(2, np.float32))
    opt = SGD([a, b], lr=0.1)
    a.grad = np.full(3, 2.0, np.float32)
    grad_array = a.grad
    opt.zero_grad(set_to_none=False)
    assert a.grad is grad_array and np.array_equal(a.grad, np.zeros(3)) and b.grad is None
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_returns_the_closure_loss():
    p = Parameter(np.array([2.0]))
    opt = SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 4.0
    np.testing.assert_allclose(p.data, [1.0])  # 2 - 0.25 * 2 * 2


# --------------------------------------------------------------------------------------------------
# Parameter groups and construction errors
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_parameter_groups_use_their_own_options(cls):
    weight0, bias0 = random_problem(5, (3, 2), 1)[0], random_problem(6, (2,), 1)[0]
    _, wgrads = random_problem(7, (3, 2), 4)
    _, bgrads = random_problem(8, (2,), 4)
    weight, bias = Parameter(weight0.copy()), Parameter(bias0.copy())
    extra = {"momentum": 0.9} if cls is SGD else {}
    opt = cls([{"params": [weight], "weight_decay": 0.1},
               {"params": [bias], "lr": 0.01, "weight_decay": 0.0}], lr=0.05, **extra)
    assert opt.param_groups[0]["lr"] == 0.05  # taken from the defaults
    for gw, gb in zip(wgrads, bgrads):
        weight.grad, bias.grad = gw.copy(), gb.copy()
        opt.step()
    if cls is SGD:
        ew = reference_sgd(weight0, wgrads, lr=0.05, weight_decay=0.1, **extra)
        eb = reference_sgd(bias0, bgrads, lr=0.01, weight_decay=0.0, **extra)
    else:
        common = dict(betas=(0.9, 0.999), eps=1e-8, decoupled=cls is AdamW)
        ew = reference_adam(weight0, wgrads, lr=0.05, weight_decay=0.1, **common)
        eb = reference_adam(bias0, bgrads, lr=0.01, weight_decay=0.0, **common)
    np.testing.assert_allclose(weight.data, ew, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bias.data, eb, rtol=1e-12, atol=1e-12)


def test_add_param_group_and_generators():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(3))
    opt = AdamW((p for p in [a]), lr=0.1)  # Module.parameters() may be a generator
    opt.add_param_group({"params": b, "weight_decay": 0.0})
    assert [len(g["params"]) for g in opt.param_groups] == [1, 1]
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[1]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": [a]})


@pytest.mark.parametrize("build, error, match", [
    (lambda p: SGD([], lr=0.1), ValueError, "empty parameter list"),
    (lambda p: SGD([p], lr=-1.0), ValueError, "learning rate"),
    (lambda p: AdamW([p], betas=(0.9, 1.0)), ValueError, "betas"),
    (lambda p: AdamW([p], eps=-1.0), ValueError, "eps"),
    (lambda p: Adam([p], weight_decay=-0.1), ValueError, "weight_decay"),
    (lambda p: SGD([p], lr=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda p: SGD([p], lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (lambda p: SGD([p, p], lr=0.1), ValueError, "more than once"),
    (lambda p: SGD({p}, lr=0.1), TypeError, "set"),
    (lambda p: SGD([("w", p)], lr=0.1), TypeError, "named_parameters"),
    (lambda p: SGD([p * 2], lr=0.1), ValueError, "not a leaf"),
    (lambda p: SGD([np.ones(2)], lr=0.1), TypeError, "not a Tensor"),
    (lambda p: SGD([{"lr": 0.1}], lr=0.1), ValueError, "'params'"),
    (lambda p: AdamW([{"params": [p], "lr": -2.0}]), ValueError, "learning rate"),
])
def test_construction_errors(build, error, match):
    with pytest.raises(error, match=match):
        build(Parameter(np.ones(2)))


def test_repr_lists_groups():
    text = repr(AdamW([Parameter(np.ones(2))], lr=0.5))
    assert "AdamW" in text and "lr: 0.5" in text and "Parameter Group 0" in text


# --------------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------------

CHECKPOINTED = [
    (AdamW, dict(lr=0.01, weight_decay=0.1)),
    (Adam, dict(lr=0.01, weight_decay=0.1)),
    (SGD, dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
]


def _model(seed):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal((4, 3)).astype(np.float32)),
            Parameter(rng.standard_normal(3).astype(np.float32)),
            Parameter(rng.standard_normal((2, 2)).astype(np.float32))]


def _groups(params):
    return [{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0}]


def _grads(seed, params, n):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(p.shape).astype(np.float32) for p in params] for _ in range(n)]


def _steps(opt, params, grads):
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g.copy()
        opt.step()


def _to_checkpoint_and_back(state_dict):
    """Save as a checkpoint would: arrays in an .npz-style dict, everything else as JSON."""
    arrays, plain = {}, {"state": {}, "param_groups": state_dict["param_groups"]}
    for index, entries in state_dict["state"].items():
        plain["state"][index] = {}
        for name, value in entries.items():
            if isinstance(value, np.ndarray):
                arrays[f"{index}.{name}"] = value
                plain["state"][index][name] = None
            else:
                plain["state"][index][name] = value
    plain = json.loads(json.dumps(plain))  # int keys become strings, tuples become lists
    for key, array in arrays.items():
        index, name = key.split(".", 1)
        plain["state"][index][name] = array.copy()
    return plain


@pytest.mark.parametrize("cls, options", CHECKPOINTED)
def test_resumed_optimizer_continues_bit_identically(cls, options):
    params = _model(0)
    grads = _grads(1, params, 6)
    opt = cls(_groups(params), **options)
    params[2].grad = None
    _steps(opt, params[:2], grads[:3])  # parameter 2 has no state yet when the checkpoint is taken
    saved_params = [p.data.copy() for p in params]
    opt.param_groups[0]["lr"] *= 0.5  # a scheduler step taken before the checkpoint was saved...
    saved = opt.state_dict()  # ...is part of the checkpoint

    resumed_params = [Parameter(d) for d in saved_params]
    resumed = cls(_groups(resumed_params), **options)
    resumed.load_state_dict(_to_checkpoint_and_back(saved))
    assert resumed.param_groups[0]["lr"] == opt.param_groups[0]["lr"]

    _steps(opt, params, grads[3:])  # uninterrupted
    _steps(resumed, resumed_params, grads[3:])
    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(p.data, q.data)
        assert q.dtype == np.float32


def test_state_dict_is_a_snapshot_and_load_copies():
    params = _model(0)
    opt = AdamW(params, lr=0.01)
    _steps(opt, params, _grads(1, params, 2))
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 2]
    assert sd["param_groups"][0]["params"] == [0, 1, 2]
    before = sd["state"][0]["exp_avg"].copy()
    _steps(opt, params, _grads(2, params, 1))
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], before)  # later steps leave it alone
    other = AdamW(_model(0), lr=0.01)
    other.load_state_dict(sd)
    sd["state"][0]["exp_avg"][...] = 123.0
    assert not np.any(other.state[other.param_groups[0]["params"][0]]["exp_avg"] == 123.0)


@pytest.mark.parametrize("mutate, match", [
    (lambda sd: sd["param_groups"].append({"params": []}), "has 3 parameter group"),
    (lambda sd: sd["param_groups"][0]["params"].pop(), "group 0 has 1 parameter.s. in the state dict but 2"),
    (lambda sd: sd["state"][1].update(exp_avg=np.zeros(7, np.float32)), r"shape \(7,\)"),
    (lambda sd: sd["state"][0].pop("exp_avg_sq"), "lacks"),
    (lambda sd: sd["state"].update({9: sd["state"][0]}), "parameter 9"),
    (lambda sd: sd.pop("state"), "'state' and 'param_groups'"),
    (lambda sd: sd["param_groups"][0].update(lr=-1.0), "learning rate"),
])
def test_load_state_dict_errors_leave_the_optimizer_unchanged(mutate, match):
    params = _model(0)
    opt = AdamW(params[:1] + params[1:], lr=0.01)
    _steps(opt, params, _grads(1, params, 2))
    sd = opt.state_dict()
    sd["param_groups"][0]["params"] = [0, 1]
    sd["param_groups"].append({**sd["param_groups"][0], "params": [2]})
    del sd["state"][2]  # parameter 2's state is optional; parameters 0 and 1 have state
    target_params = _model(0)
    target = AdamW([{"params": target_params[:2]}, {"params": target_params[2:]}], lr=0.01)
    target.load_state_dict(sd)  # the unmutated dict loads
    target = AdamW([{"params": target_params[:2]}, {"params": target_params[2:]}], lr=0.03)
    mutate(sd)
    with pytest.raises(ValueError, match=match):
        target.load_state_dict(sd)
    assert target.state == {} and target.param_groups[0]["lr"] == 0.03


def test_loading_sgd_state_into_adam_is_refused():
    params = _model(0)
    sgd = SGD(params, lr=0.1, momentum=0.9)
    _steps(sgd, params, _grads(1, params, 1))
    with pytest.raises(ValueError, match="different optimizer"):
        AdamW(_model(0)).load_state_dict(sgd.state_dict())


# --------------------------------------------------------------------------------------------------
# clip_grad_norm_
# --------------------------------------------------------------------------------------------------

grad_lists = st.lists(
    st.tuples(st.lists(st.integers(0, 6), max_size=3).map(tuple), st.integers(0, 2**32 - 1),
              st.floats(1e-3, 1e3)),
    min_size=1, max_size=5)


def _params_with_grads(spec, dtype=np.float64):
    params = []
    for shape, seed, scale in spec:
        p = Parameter(np.zeros(shape, dtype))
        p.grad = np.asarray(np.random.default_rng(seed).standard_normal(shape) * scale, dtype=dtype)
        params.append(p)
    return params


@given(spec=grad_lists, fraction=st.floats(0.01, 0.99), chunk=st.sampled_from([2, 5, 1 << 16]),
       norm_type=st.sampled_from([2.0, 1.0, 3.0, math.inf]))
def test_clip_grad_norm_property(spec, fraction, chunk, norm_type):
    params = _params_with_grads(spec)
    before = [p.grad.copy() for p in params]
    flat = np.concatenate([g.ravel() for g in before])
    expected_total = float(np.linalg.norm(flat, ord=norm_type)) if flat.size else 0.0
    max_norm = fraction * expected_total
    with mock.patch.object(optimizer_module, "CHUNK_SIZE", chunk):
        total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(expected_total, rel=1e-10, abs=1e-300)
    after = np.concatenate([p.grad.ravel() for p in params])
    if expected_total == 0.0:
        np.testing.assert_array_equal(after, flat)
        return
    assert np.linalg.norm(after, ord=norm_type) <= max_norm * (1 + 1e-9)
    scale = max_norm / (expected_total + 1e-6)  # one factor for every gradient: directions preserved
    np.testing.assert_allclose(after, flat * scale, rtol=1e-12, atol=0)


@given(spec=grad_lists, headroom=st.floats(1.01, 100.0))
def test_clip_grad_norm_is_a_no_op_below_the_limit(spec, headroom):
    params = _params_with_grads(spec, np.float32)
    before = [p.grad.copy() for p in params]
    norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in before))
    total = clip_grad_norm_(params, max_norm=headroom * (norm + 1e-3))
    for p, g in zip(params, before):
        np.testing.assert_array_equal(p.grad, g)
        assert p.grad.dtype == np.float32
    assert total >= 0.0


def test_clip_grad_norm_float32_sum_is_accurate_and_skips_missing_grads():
    rng = np.random.default_rng(0)
    a, b = Parameter(np.zeros(300_000, np.float32)), Parameter(np.zeros(3, np.float32))
    c = Parameter(np.zeros(2))
    a.grad = rng.standard_normal(300_000).astype(np.float32)
    b.grad = np.array([3.0, 4.0, 0.0], np.float32)
    exact = math.sqrt(float(np.sum(a.grad.astype(np.float64) ** 2)) + 25.0)
    total = clip_grad_norm_([a, b, c], max_norm=1.0)
    assert total == pytest.approx(exact, rel=1e-6)
    assert c.grad is None
    after = math.sqrt(float(np.sum(a.grad.astype(np.float64) ** 2) + np.sum(b.grad.astype(np.float64) ** 2)))
    assert after <= 1.0 + 1e-6
    assert clip_grad_norm_(c, 1.0) == 0.0  # no gradients at all: norm 0


def test_clip_grad_norm_non_finite():
    p = Parameter(np.zeros(3))
    p.grad = np.array([1.0, np.nan, 2.0])
    assert math.isnan(clip_grad_norm_([p], 1.0))
    assert p.grad[0] == 1.0  # left untouched so that the caller can skip the step
    assert math.isnan(clip_grad_norm_([p], 1.0, norm_type=math.inf))
    with pytest.raises(FloatingPointError, match="NaN or Inf"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([p], -1.0)


# --------------------------------------------------------------------------------------------------
# Learning-rate schedules
# --------------------------------------------------------------------------------------------------

schedules = st.builds(
    lambda total, warm_frac, peak, init_frac, min_frac: dict(
        total_steps=total, warmup_steps=int(warm_frac * total), peak_lr=peak,
        initial_lr=init_frac * peak, min_lr=min_frac * peak),
    st.integers(1, 300), st.floats(0.0, 1.0), st.floats(1e-6, 1.0), st.floats(0.0, 1.0), st.floats(0.0, 1.0))


@given(schedule=schedules)
def test_warmup_cosine_boundaries_and_monotonicity(schedule):
    warm, total = schedule["warmup_steps"], schedule["total_steps"]
    lrs = [warmup_cosine_lr(s, **schedule) for s in range(total + 5)]
    assert all(isinstance(lr, float) for lr in lrs)
    if warm > 0:
        assert lrs[0] == schedule["initial_lr"]
    if warm < total:
        assert lrs[warm] == pytest.approx(schedule["peak_lr"], rel=1e-12)
    assert lrs[total] == pytest.approx(schedule["min_lr"], rel=1e-12, abs=1e-18)
    assert all(lr == schedule["min_lr"] for lr in lrs[total:])  # stays at the minimum afterwards
    warmup, decay = lrs[: warm + 1], lrs[warm: total + 1]
    tol = 1e-12 * schedule["peak_lr"]
    assert all(b >= a - tol for a, b in zip(warmup, warmup[1:])) or warm == total
    assert all(b <= a + tol for a, b in zip(decay, decay[1:]))
    if warm < total:
        mid = warm + (total - warm) / 2
        if mid == int(mid):  # halfway through the decay, cos(pi/2) = 0: the average of peak and min
            expected = (schedule["peak_lr"] + schedule["min_lr"]) / 2
            assert lrs[int(mid)] == pytest.approx(expected, rel=1e-12)


def test_warmup_cosine_book_values():
    # appendix D's settings, computed by hand: increment = (0.01 - 0.0001) / 20
    kw = dict(peak_lr=0.01, total_steps=120, warmup_steps=20, initial_lr=0.0001, min_lr=0.0001)
    assert warmup_cosine_lr(0, **kw) == 0.0001
    assert warmup_cosine_lr(10, **kw) == pytest.approx(0.0001 + 10 * 0.000495)
    assert warmup_cosine_lr(20, **kw) == pytest.approx(0.01)
    assert warmup_cosine_lr(70, **kw) == pytest.approx(0.0001 + 0.0099 * 0.5)
    assert warmup_cosine_lr(45, **kw) == pytest.approx(0.0001 + 0.0099 * 0.5 * (1 + math.cos(math.pi / 4)))
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        warmup_cosine_lr(0, peak_lr=1.0, total_steps=5, warmup_steps=6)
    with pytest.raises(ValueError, match="step"):
        warmup_cosine_lr(-1, **kw)


def test_warmup_cosine_scheduler_sets_every_group_and_resumes():
    params = _model(0)
    opt = AdamW([{"params": params[:1], "lr": 0.01}, {"params": params[1:], "lr": 0.002}])
    kw = dict(warmup_steps=3, total_steps=10, initial_lr=1e-4, min_lr=1e-5)
    sched = WarmupCosine(opt, **kw)
    seen = []
    for step in range(12):
        seen.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == seen[-1]
        assert seen[-1] == [warmup_cosine_lr(step, peak_lr=peak, **kw) for peak in (0.01, 0.002)]
        sched.step()
    # resume at step 5 from checkpoints of both the optimizer and the scheduler
    opt2 = AdamW([{"params": _model(0)[:1], "lr": 0.01}, {"params": _model(0)[1:], "lr": 0.002}])
    sched2 = WarmupCosine(opt2, **kw)
    for _ in range(5):
        sched2.step()
    sd_opt, sd_sched = opt2.state_dict(), json.loads(json.dumps(sched2.state_dict()))
    params3 = _model(0)
    opt3 = AdamW([{"params": params3[:1], "lr": 0.01}, {"params": params3[1:], "lr": 0.002}])
    opt3.load_state_dict(sd_opt)
    sched3 = WarmupCosine(opt3, **kw)
    sched3.load_state_dict(sd_sched)
    assert sched3.get_last_lr() == seen[5]
    sched3.step()
    assert sched3.get_last_lr() == seen[6] and [g["lr"] for g in opt3.param_groups] == seen[6]


def test_other_schedules():
    opt = SGD([Parameter(np.ones(1))], lr=1.0)
    step_lr = StepLR(opt, step_size=2, gamma=0.5)
    values = []
    for _ in range(6):
        values.append(step_lr.get_last_lr()[0])
        step_lr.step()
    assert values == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]

    opt = SGD([Parameter(np.ones(1))], lr=1.0)
    cosine = CosineAnnealingLR(opt, T_max=4, eta_min=0.2)
    values = []
    for _ in range(5):
        values.append(cosine.get_last_lr()[0])
        cosine.step()
    np.testing.assert_allclose(values, [0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(5)])
    assert values[-1] == pytest.approx(0.2)

    opt = SGD([Parameter(np.ones(1))], lr=0.5)
    lam = LambdaLR(opt, lambda step: 1.0 / (step + 1))
    lam.step()
    lam.step()
    assert lam.get_last_lr() == [0.5 / 3] and opt.param_groups[0]["lr"] == 0.5 / 3
    assert "lr_lambdas" not in lam.state_dict() and lam.state_dict()["last_epoch"] == 2

    with pytest.raises(ValueError, match="initial_lr"):
        StepLR(SGD([Parameter(np.ones(1))], lr=1.0), step_size=1, last_epoch=3)


def test_optimizer_is_a_base_class():
    class Halve(Optimizer):
        def _update_group(self, group):
            for p, g in self._params_with_grad(group):
                p.data *= 0.5

    p = Parameter(np.ones(2))
    p.grad = np.ones(2)
    Halve([p], {"lr": 0.0}).step()
    np.testing.assert_array_equal(p.data, [0.5, 0.5])


# --------------------------------------------------------------------------------------------------
# Against torch.optim (only when torch is installed)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [
    ("AdamW", dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.999), eps=1e-6, weight_decay=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
])
def test_matches_torch_optim(name, options):
    torch = pytest.importorskip("torch")
    ours_cls = {"AdamW": AdamW, "Adam": Adam, "SGD": SGD}[name]
    theirs_cls = getattr(torch.optim, name)
    params = _model(3)
    theirs_params = [torch.nn.Parameter(torch.tensor(p.data.copy())) for p in params]
    ours = ours_cls([{"params": params[:2]},
                     {"params": params[2:], "weight_decay": 0.0, "lr": 0.02}], **options)
    theirs = theirs_cls([{"params": theirs_params[:2]},
                         {"params": theirs_params[2:], "weight_decay": 0.0, "lr": 0.02}], **options)
    for gs in _grads(4, params, 10):
        for p, tp, g in zip(params, theirs_params, gs):
            p.grad, tp.grad = g.copy(), torch.tensor(g.copy())
        ours.step()
        theirs.step()
    for p, tp in zip(params, theirs_params):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    params = _params_with_grads([((4, 5), 1, 3.0), ((7,), 2, 0.5), ((), 3, 10.0)], np.float32)
    theirs = [torch.nn.Parameter(torch.zeros(p.shape)) for p in params]
    for p, tp in zip(params, theirs):
        tp.grad = torch.tensor(p.grad.copy())
    total = clip_grad_norm_(params, 1.5)
    total_t = torch.nn.utils.clip_grad_norm_(theirs, 1.5)
    assert total == pytest.approx(float(total_t), rel=1e-6)
    for p, tp in zip(params, theirs):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kw, message", [
    (dict(warmup_steps=6, total_steps=5), "warmup_steps <= total_steps"),
    (dict(warmup_steps=-1, total_steps=5), "warmup_steps <= total_steps"),
    (dict(warmup_steps=1, total_steps=5, min_lr=-1e-3), "min_lr must be >= 0"),
    (dict(warmup_steps=1, total_steps=5, initial_lr=-1e-3), "min_lr must be >= 0"),
])
def test_warmup_cosine_scheduler_refuses_bad_settings_and_leaves_the_optimizer_alone(kw, message):
    opt = SGD(_model(0), lr=0.1)
    with pytest.raises(ValueError, match=message):
        WarmupCosine(opt, **kw)
    assert "initial_lr" not in opt.param_groups[0]
