"""Tests for appendix E's LoRA (gpt/finetune/lora.py): the initialisation bound, the forward formula
against NumPy, float64 gradient checks, what replace_linear_with_lora wraps and freezes, the book's
trainable-parameter count for GPT-2 small, training that moves only A and B, and merge_lora giving
the unmerged model's logits."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.optim import AdamW

from gpt.finetune.classify import calc_loss_batch, prepare_for_classification, replace_output_head
from gpt.finetune.lora import (
    LinearWithLoRA,
    LoRALayer,
    lora_settings,
    merge_lora,
    replace_linear_with_lora,
)
from gpt.model import GPTConfig, GPTModel, count_parameters

TINY = GPTConfig(vocab_size=97, context_length=12, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0,
                 qkv_bias=True)


def tiny_model(seed=0, **overrides):
    mg.manual_seed(seed)
    cfg = GPTConfig(**{**TINY.to_dict(), **overrides})
    return GPTModel(cfg)


def linears(model):
    return [m for m in model.modules() if type(m) is nn.Linear]


# --------------------------------------------------------------------------------------------------
# LoRALayer and LinearWithLoRA
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 4, 16, 64])
def test_A_is_uniform_within_one_over_sqrt_rank_and_B_is_zero(rank):
    """kaiming_uniform_(A, a=sqrt(5)) on (in_dim, rank): fan_in = rank, bound = 1/sqrt(rank)."""
    mg.manual_seed(rank)
    layer = LoRALayer(4096 // rank * 8, 3, rank, alpha=2)
    a, bound = layer.A.data, 1 / math.sqrt(rank)
    assert a.shape == (4096 // rank * 8, rank) and a.dtype == np.float32
    assert np.abs(a).max() <= bound
    assert np.abs(a).max() > 0.99 * bound                       # 32k draws reach the edge
    assert abs(a.mean()) < 0.02 * bound
    assert a.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)   # the std of U(-b, b)
    assert layer.B.data.shape == (rank, 3) and not layer.B.data.any()


def test_A_matches_torchs_kaiming_uniform_bound():
    torch = pytest.importorskip("torch")
    for in_dim, rank in [(768, 16), (64, 4), (10, 1)]:
        t = torch.empty(in_dim, rank)
        fan_in = torch.nn.init._calculate_fan_in_and_fan_out(t)[0]
        gain = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        torch_bound = math.sqrt(3) * gain / math.sqrt(fan_in)       # what kaiming_uniform_(t, a=sqrt(5)) uses
        ours = LoRALayer(in_dim, 3, rank, alpha=1).A.data
        assert np.abs(ours).max() <= torch_bound * (1 + 1e-6)
        assert np.abs(ours).max() > 0.5 * torch_bound              # the same range, not a narrower one


@given(rank=st.integers(1, 4), alpha=st.sampled_from([0.5, 1, 8, 16]), batch=st.integers(1, 3),
       tokens=st.integers(1, 4), in_dim=st.integers(1, 6), out_dim=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_forward_is_linear_plus_scaled_low_rank_update(rank, alpha, batch, tokens, in_dim, out_dim, seed):
    rng = np.random.default_rng(seed)
    mg.manual_seed(seed)
    layer = LinearWithLoRA(nn.Linear(in_dim, out_dim), rank, alpha)
    layer.lora.B.data[...] = rng.standard_normal((rank, out_dim))
    x = rng.standard_normal((batch, tokens, in_dim)).astype(np.float32)
    w, b = layer.linear.weight.data, layer.linear.bias.data
    a, bm = layer.lora.A.data.astype(np.float64), layer.lora.B.data.astype(np.float64)
    expected = x @ w.T.astype(np.float64) + b + (alpha / rank) * (x @ a @ bm)
    y = layer(mg.tensor(x))
    assert y.shape == (batch, tokens, out_dim) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-5)


def test_a_new_wrapper_computes_exactly_what_the_linear_did():
    mg.manual_seed(3)
    linear = nn.Linear(7, 5)
    x = mg.randn(2, 3, 7)
    before = linear(x).data.copy()
    assert np.array_equal(LinearWithLoRA(linear, 4, 8)(x).data, before)    # B = 0


@given(rank=st.integers(1, 3), alpha=st.sampled_from([1.0, 3.0, 16.0]), in_dim=st.integers(1, 4),
       out_dim=st.integers(1, 4), rows=st.integers(1, 3), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_gradients_of_linear_with_lora_in_float64(rank, alpha, in_dim, out_dim, rows, bias, seed):
    """d/dx, d/dA, d/dB against central differences; the frozen weight and bias get no gradient."""
    rng = np.random.default_rng(seed)
    mg.manual_seed(seed)
    layer = LinearWithLoRA(nn.Linear(in_dim, out_dim, bias=bias), rank, alpha).double()
    layer.linear.requires_grad_(False)
    layer.lora.B.data[...] = rng.standard_normal((rank, out_dim))           # B = 0 would hide dA
    x = mg.tensor(rng.standard_normal((rows, 2, in_dim)), requires_grad=True)
    A, B = layer.lora.A, layer.lora.B
    assert mg.gradcheck(lambda x, A, B: layer(x), x, A, B, atol=1e-7, rtol=1e-6)
    layer.zero_grad()
    layer(x).sum().backward()
    assert layer.linear.weight.grad is None
    assert not bias or layer.linear.bias.grad is None
    assert A.grad is not None and B.grad is not None and A.grad.dtype == np.float64


def test_rank_and_alpha_are_checked():
    for rank in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="rank"):
            LoRALayer(3, 3, rank, 1)
    with pytest.raises(ValueError, match="alpha"):
        LoRALayer(3, 3, 2, float("nan"))
    with pytest.raises(TypeError, match="nn.Linear"):
        LinearWithLoRA(nn.LayerNorm(3), 2, 2)


# --------------------------------------------------------------------------------------------------
# replace_linear_with_lora
# --------------------------------------------------------------------------------------------------


def test_every_linear_is_wrapped_and_frozen_and_only_A_and_B_train():
    model = tiny_model()
    originals = linears(model)
    model.requires_grad_(False)
    assert replace_linear_with_lora(model, 2, 4) is model
    wrappers = [m for m in model.modules() if isinstance(m, LinearWithLoRA)]
    assert len(wrappers) == len(originals) == 2 * 6 + 1     # q, k, v, out_proj, two ff layers per block; head
    assert {id(w.linear) for w in wrappers} == {id(m) for m in originals}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.endswith((".lora.A", ".lora.B")) for name in trainable)
    assert len(trainable) == 2 * len(wrappers)
    assert lora_settings(model) == {"rank": 2, "alpha": 4}


def test_wrapping_freezes_the_wrapped_layers_even_without_freezing_the_model_first():
    model = tiny_model()
    replace_linear_with_lora(model, 2, 2)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters() if ".linear." in n or n.startswith("out_head.linear")}
    assert model.tok_emb.weight.requires_grad and model.final_norm.scale.requires_grad


def test_a_linear_itself_is_returned_wrapped_and_a_second_replacement_is_refused():
    wrapped = replace_linear_with_lora(nn.Linear(3, 2), 1, 1)
    assert isinstance(wrapped, LinearWithLoRA) and not wrapped.linear.weight.requires_grad
    model = tiny_model()
    replace_linear_with_lora(model, 2, 2)
    with pytest.raises(ValueError, match="already has LoRA"):
        replace_linear_with_lora(model, 2, 2)


@pytest.mark.parametrize("rank", [1, 3, 8])
def test_trainable_count_is_rank_times_in_plus_out_per_linear(rank):
    model = tiny_model()
    prepare_for_classification(model, 2, lora_rank=rank, lora_alpha=rank)
    d, blocks = TINY.emb_dim, TINY.n_layers
    per_block = 4 * rank * (d + d) + rank * (d + 4 * d) + rank * (4 * d + d)
    assert count_parameters(model, trainable_only=True) == blocks * per_block + rank * (d + 2)


def test_gpt2_small_with_a_two_class_head_has_the_books_2666528_trainable_lora_parameters():
    """Appendix E: GPT-2 small as loaded from its weights (qkv_bias, tied head), a 2-class head,
    everything frozen, LoRA rank 16 / alpha 16 on every Linear including the head."""
    mg.manual_seed(123)
    model = GPTModel(GPTConfig.from_preset("gpt2-small", qkv_bias=True, tie_weights=True, drop_rate=0.0))
    assert count_parameters(model) == 124_439_808
    replace_output_head(model, 2)
    model.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 0
    replace_linear_with_lora(model, rank=16, alpha=16)
    assert count_parameters(model, trainable_only=True) == 2_666_528


# --------------------------------------------------------------------------------------------------
# Training and merging
# --------------------------------------------------------------------------------------------------


def lora_classifier(seed=0, rank=2, alpha=4, **overrides):
    model = tiny_model(seed, **overrides)
    prepare_for_classification(model, 3, lora_rank=rank, lora_alpha=alpha)
    return model


def train_a_few_steps(model, steps=3, seed=0):
    rng = np.random.default_rng(seed)
    opt = AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    for _ in range(steps):
        x = rng.integers(0, TINY.vocab_size, (4, 8))
        y = rng.integers(0, 3, 4)
        opt.zero_grad()
        calc_loss_batch(x, y, model).backward()
        opt.step()


def test_training_moves_only_the_lora_matrices():
    model = lora_classifier()
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    train_a_few_steps(model)
    for name, p in model.named_parameters():
        changed = not np.array_equal(before[name], p.data)
        assert changed == name.endswith((".lora.A", ".lora.B")), name


@pytest.mark.parametrize("tied", [False, True])
def test_merged_model_gives_the_same_logits_without_lora_layers(tied):
    model = lora_classifier(tie_weights=tied)
    train_a_few_steps(model, steps=4)
    rng = np.random.default_rng(5)
    for m in model.modules():                       # make every update clearly non-zero
        if isinstance(m, LoRALayer):
            m.B.data[...] = rng.standard_normal(m.B.data.shape) * 0.3
    x = rng.integers(0, TINY.vocab_size, (3, TINY.context_length))
    model.eval()
    with mg.no_grad():
        before = model(x).data.copy()
    frozen_before = {n: p.requires_grad for n, p in model.named_parameters() if ".linear." in n}
    assert merge_lora(model) is model
    assert not any(isinstance(m, (LinearWithLoRA, LoRALayer)) for m in model.modules())
    with mg.no_grad():
        after = model(x).data
    assert after.dtype == np.float32
    np.testing.assert_allclose(after, before, atol=1e-5, rtol=0)
    assert np.abs(before).max() > 0.1                # the check is not trivially about zeros
    # back to a plain model's parameter names, with the same frozen flags
    plain = tiny_model()
    replace_output_head(plain, 3)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in plain.named_parameters()]
    for name, flag in frozen_before.items():
        assert dict(model.named_parameters())[name.replace(".linear.", ".")].requires_grad == flag


def test_merging_a_tied_language_model_head_leaves_the_embedding_alone():
    model = tiny_model(tie_weights=True)
    replace_linear_with_lora(model, 2, 2)
    for m in model.modules():
        if isinstance(m, LoRALayer):
            m.B.data[...] = 0.5
    emb = model.tok_emb.weight.data.copy()
    x = np.arange(6)[None]
    with mg.no_grad():
        before = model(x).data.copy()
    merge_lora(model)
    assert np.array_equal(model.tok_emb.weight.data, emb)
    assert model.out_head.weight is not model.tok_emb.weight and not model.cfg.tie_weights
    with mg.no_grad():
        np.testing.assert_allclose(model(x).data, before, atol=1e-5, rtol=0)


def test_merged_weight_is_w_plus_scaled_AB_transposed():
    mg.manual_seed(1)
    layer = LinearWithLoRA(nn.Linear(5, 3), rank=2, alpha=6)
    layer.lora.B.data[...] = np.arange(6, dtype=np.float32).reshape(2, 3)
    expected = layer.linear.weight.data + 3.0 * (layer.lora.A.data @ layer.lora.B.data).T
    merged = merge_lora(layer)
    assert isinstance(merged, nn.Linear)
    np.testing.assert_allclose(merged.weight.data, expected, rtol=1e-6, atol=1e-6)
