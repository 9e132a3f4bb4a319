"""The mixture-of-experts feed-forward (gpt/architectures/moe.py) against a dense loop over
experts written here, its gradients, routing, load-balancing loss, and LoRA on its experts."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.nn import functional as F

from gpt.architectures import DecoderConfig, build_model
from gpt.architectures.moe import MoEFeedForward, _Combine, _Dispatch, route
from gpt.finetune.lora import ExpertLinearWithLoRA, add_lora, lora_settings, merge_lora
from gpt.train import calc_loss_batch

TOL = dict(atol=1e-7, rtol=1e-5)
seeds = st.integers(0, 2**32 - 1)


def randomize(module, seed, std=0.7):
    rng = np.random.default_rng(seed)
    for p in module.parameters():
        p.data[...] = rng.standard_normal(p.shape) * std
    return module


def dense_moe(moe, x, norm_topk_prob):
    """Every token through every expert, one at a time; keep the top k, weighted as transformers does:
    softmax over all E, take the top k, renormalise them when norm_topk_prob."""
    E, k = moe.num_experts, moe.top_k
    xs = x.reshape(-1, x.shape[-1])
    out = np.zeros_like(xs)
    counts = np.zeros(E, dtype=int)
    for n, token in enumerate(xs):
        logits = moe.gate.weight.data @ token
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        top = np.argsort(-probs)[:k]
        w = probs[top] / probs[top].sum() if norm_topk_prob else probs[top]
        for weight, e in zip(w, top):
            gate = moe.fc1.weight.data[e] @ token
            up = moe.fc2.weight.data[e] @ token
            out[n] += weight * (moe.fc3.weight.data[e] @ (gate / (1 + np.exp(-gate)) * up))
            counts[e] += 1
    return out.reshape(x.shape), counts


@settings(max_examples=15)
@given(experts=st.integers(1, 6), data=st.data(), norm_topk=st.booleans(), seed=seeds)
def test_moe_equals_a_dense_loop_over_experts(experts, data, norm_topk, seed):
    k = data.draw(st.integers(1, experts))
    mg.manual_seed(seed)
    moe = randomize(MoEFeedForward(5, 3, experts, k, norm_topk_prob=norm_topk).double(), seed)
    x = np.random.default_rng(seed).standard_normal((2, data.draw(st.integers(1, 6)), 5))
    want, counts = dense_moe(moe, x, norm_topk)
    np.testing.assert_allclose(moe(mg.tensor(x)).data, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(moe.last_tokens_per_expert, counts)     # the router's statistics


@settings(max_examples=8)
@given(experts=st.integers(2, 4), t=st.integers(1, 4), norm_topk=st.booleans(), seed=seeds)
def test_moe_gradients(experts, t, norm_topk, seed):
    mg.manual_seed(seed)
    moe = randomize(MoEFeedForward(3, 2, experts, 2, norm_topk_prob=norm_topk, aux_loss=True).double(), seed)
    x = mg.tensor(np.random.default_rng(seed).standard_normal((2, t, 3)), requires_grad=True)
    assert mg.gradcheck(lambda x_, *ps: moe(x_), x, *moe.parameters(), seed=seed, **TOL)

    def with_aux(x_, *ps):      # the load-balancing loss reaches the router
        y = moe(x_)
        return y.sum() * 0.1 + moe.aux_loss

    assert mg.gradcheck(with_aux, x, *moe.parameters(), seed=seed, **TOL)


@given(n=st.integers(1, 20), experts=st.integers(1, 5), seed=seeds)
def test_route_gives_every_assignment_its_own_slot_in_its_experts_rows(n, experts, seed):
    rng = np.random.default_rng(seed)
    k = rng.integers(1, experts + 1)
    ids = np.stack([rng.permutation(experts)[:k] for _ in range(n)])
    slots, counts, cap = route(ids, experts)
    assert len(np.unique(slots)) == n * k and cap == counts.max()
    np.testing.assert_array_equal(slots // cap, ids.reshape(-1))
    np.testing.assert_array_equal(counts, np.bincount(ids.reshape(-1), minlength=experts))


@given(seed=seeds)
def test_dispatch_and_combine_gradients(seed):
    rng = np.random.default_rng(seed)
    n, k, d, rows = 4, 2, 3, 11
    slots = rng.permutation(rows)[:n * k]
    x = mg.tensor(rng.standard_normal((n, d)), requires_grad=True)
    out = mg.tensor(rng.standard_normal((rows, d)), requires_grad=True)
    w = mg.tensor(rng.standard_normal((n, k)), requires_grad=True)
    assert mg.gradcheck(lambda x_: _Dispatch.apply(x_, slots=slots, k=k, rows=rows), x, seed=seed, **TOL)
    assert mg.gradcheck(lambda o, w_: _Combine.apply(o, w_, slots=slots), out, w, seed=seed, **TOL)
    # forward against the definitions
    buf = _Dispatch.apply(x, slots=slots, k=k, rows=rows).data
    np.testing.assert_array_equal(buf[slots], np.repeat(x.data, k, axis=0))
    assert np.all(np.delete(buf, slots, axis=0) == 0)
    y = _Combine.apply(out, w, slots=slots).data
    np.testing.assert_allclose(y, (w.data[:, :, None] * out.data[slots].reshape(n, k, d)).sum(1))


def test_load_balancing_loss_formula_and_that_it_reaches_the_training_loss():
    cfg = DecoderConfig(arch="qwen3-moe", vocab_size=11, context_length=8, emb_dim=8, n_heads=2, n_kv_heads=1,
                        n_layers=2, hidden_dim=8, qk_norm=True, n_experts=4, n_experts_per_token=2,
                        moe_hidden_dim=4, router_aux_loss_coef=0.5)
    mg.manual_seed(0)
    model = randomize(build_model(cfg), 0, std=0.3)
    ids = np.random.default_rng(0).integers(0, 11, (2, 8))
    targets = np.roll(ids, -1, axis=1)
    loss = calc_loss_batch(ids, targets, model)
    # Switch: E * sum_e f_e P_e per layer (f_e = tokens routed to e / tokens), averaged, times the coefficient
    per_layer = []
    for blk in model.trf_blocks:
        moe = blk.ff
        assert moe.last_tokens_per_expert.sum() == 16 * 2
        per_layer.append(moe.aux_loss.item())
    x = model.tok_emb(ids)      # layer 0's router input again, to check the formula
    h = model.trf_blocks[0].norm2(x + model.trf_blocks[0].att(model.trf_blocks[0].norm1(x), model.rope))
    probs = F.softmax(model.trf_blocks[0].ff.gate(h), -1).data.reshape(-1, 4)
    f = model.trf_blocks[0].ff.last_tokens_per_expert / 16
    np.testing.assert_allclose(per_layer[0], 4 * np.sum(f * probs.mean(0)), rtol=1e-5)
    model.eval()
    with mg.no_grad():
        plain = calc_loss_batch(ids, targets, model).item()
    assert model.aux_loss is None                              # evaluation: cross-entropy alone
    np.testing.assert_allclose(loss.item(), plain + 0.5 * np.mean(per_layer), rtol=1e-5)
    counts = model.tokens_per_expert()
    assert counts.shape == (2, 4) and np.all(counts.sum(1) == 32)


def test_lora_on_stacked_experts_trains_and_merges():
    cfg = DecoderConfig.from_preset("qwen3-moe-mini", vocab_size=20, emb_dim=16, n_heads=2, n_kv_heads=1, head_dim=8,
                                    n_layers=1, moe_hidden_dim=6, context_length=8)
    mg.manual_seed(1)
    model = build_model(cfg)
    ids = np.random.default_rng(1).integers(0, 20, (2, 8))
    before = model(ids).data
    add_lora(model, rank=2, alpha=4)
    ff = model.trf_blocks[0].ff
    assert isinstance(ff.fc1, ExpertLinearWithLoRA) and ff.fc1.lora.A.shape == (8, 16, 2)
    assert lora_settings(model) == {"rank": 2, "alpha": 4}
    np.testing.assert_allclose(model(ids).data, before, rtol=1e-6)    # B = 0: nothing changed yet
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert "trf_blocks.0.ff.fc1.lora.A" in trainable and not any(n.endswith("fc1.linear.weight") for n in trainable)
    rng = np.random.default_rng(2)
    for m in model.modules():
        if isinstance(m, ExpertLinearWithLoRA):
            m.lora.B.data[...] = rng.standard_normal(m.lora.B.shape).astype(np.float32) * 0.05
    model.train()
    F.cross_entropy(model(ids).flatten(0, 1), ids.reshape(-1)).backward()
    assert np.any(ff.fc3.lora.A.grad != 0) and ff.fc3.linear.weight.grad is None
    model.eval()
    with mg.no_grad():
        adapted = model(ids).data
    merge_lora(model)
    assert not any(isinstance(m, ExpertLinearWithLoRA) for m in model.modules())
    np.testing.assert_allclose(model(ids).data, adapted, rtol=1e-4, atol=1e-5)
