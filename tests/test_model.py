"""Chapter 4's GPT: the layers and the whole model against a NumPy forward pass written from the
book's equations, float64 gradient checks down to every parameter for the five position kinds,
causality, the book's parameter counts, the config and its errors, and float32 throughout.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from gpt.model import (
    GELU,
    PRESETS,
    FeedForward,
    GPTConfig,
    GPTModel,
    LayerNorm,
    TransformerBlock,
    count_parameters,
    flops_per_token,
    model_summary,
)
from gpt.positions import T5RelativeBias, relative_position_bucket
from minigrad.nn import functional as F

KINDS = ("learned", "rope", "alibi", "t5", "none")
seeds = st.integers(0, 2**16)
TOL = dict(atol=1e-7, rtol=1e-5)

# the book's GPT_CONFIG_124M (section 4.1)
GPT_CONFIG_124M = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
                   "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False}


def tiny_config(**overrides) -> GPTConfig:
    base = dict(vocab_size=11, context_length=5, emb_dim=8, n_heads=2, n_layers=2, drop_rate=0.0)
    return GPTConfig(**{**base, **overrides})


# ---------------------------------------------------------------------- a NumPy GPT (picoGPT style)
def np_layer_norm(x, scale, shift):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)          # biased variance, as the book
    return scale * (x - mean) / np.sqrt(var + 1e-5) + shift


def np_gelu(x):
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))


def np_linear(x, lin):
    y = x @ lin.weight.data.T
    return y if lin.bias is None else y + lin.bias.data


def np_rope(x, start=0):
    """Rotate pairs (x_i, x_{i+hd/2}) at position p by p * 10000^(-2i/hd). x: (b, H, T, hd)."""
    hd, t = x.shape[-1], x.shape[-2]
    theta = 10000.0 ** (-np.arange(0, hd, 2) / hd)
    angle = np.arange(start, start + t)[:, None] * theta[None, :]
    cos, sin = np.cos(angle), np.sin(angle)
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


def np_position_bias(model, t):
    """score(i, j) += bias[h, i, j], written from the papers: ALiBi's -m_h (i - j) with
    m_h = 2^(-8h/H) (H a power of two here), T5's table[bucket(j - i), h]; 0 for the others."""
    i, j = np.arange(t)[:, None], np.arange(t)[None, :]
    cfg = model.cfg
    if cfg.pos_emb == "alibi":
        m = 2.0 ** (-8.0 * np.arange(1, cfg.n_heads + 1) / cfg.n_heads)
        return -m[:, None, None] * (i - j)        # above the diagonal it is masked anyway
    if cfg.pos_emb == "t5":
        table = model.rel_pos_bias.relative_attention_bias.weight.data   # (buckets, H)
        buckets = relative_position_bucket(j - i, bidirectional=False, num_buckets=cfg.num_buckets,
                                           max_distance=cfg.t5_max_distance)
        return table[buckets].transpose(2, 0, 1)
    return 0.0


def np_mha(x, att, rope, bias=0.0):
    b, t, d = x.shape
    h = att.num_heads

    def heads(y):  # (b, T, d) -> (b, H, T, hd)
        return y.reshape(b, t, h, d // h).transpose(0, 2, 1, 3)

    q, k, v = (heads(np_linear(x, lin)) for lin in (att.W_query, att.W_key, att.W_value))
    if rope:
        q, k = np_rope(q), np_rope(k)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d // h) + bias
    s = np.where(np.triu(np.ones((t, t), dtype=bool), 1), -np.inf, s)
    w = np.exp(s - s.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    return np_linear((w @ v).transpose(0, 2, 1, 3).reshape(b, t, d), att.out_proj)


def np_feed_forward(x, ff):
    return np_linear(np_gelu(np_linear(x, ff.layers[0])), ff.layers[2])


def np_block(x, blk, rope, bias=0.0):
    x = x + np_mha(np_layer_norm(x, blk.norm1.scale.data, blk.norm1.shift.data), blk.att, rope, bias)
    return x + np_feed_forward(np_layer_norm(x, blk.norm2.scale.data, blk.norm2.shift.data), blk.ff)


def np_gpt(model, ids):
    x = model.tok_emb.weight.data[ids]
    if model.cfg.pos_emb == "learned":
        x = x + model.pos_emb.weight.data[: ids.shape[1]]
    bias = np_position_bias(model, ids.shape[1])
    for blk in model.trf_blocks:
        x = np_block(x, blk, model.cfg.pos_emb == "rope", bias)
    x = np_layer_norm(x, model.final_norm.scale.data, model.final_norm.shift.data)
    return x @ model.out_head.weight.data.T


def param_count(cfg: GPTConfig) -> int:
    """Parameters of a GPTModel, from its config alone (no model built)."""
    d, v = cfg.emb_dim, cfg.vocab_size
    attention = 4 * d * d + d + (3 * d if cfg.qkv_bias else 0)   # W_query/W_key/W_value, out_proj (+ biases)
    feed_forward = 8 * d * d + 4 * d + d
    block = attention + feed_forward + 2 * 2 * d                    # + two LayerNorms
    embeddings = v * d + (cfg.context_length * d if cfg.pos_emb == "learned" else 0)
    embeddings += cfg.num_buckets * cfg.n_heads if cfg.pos_emb == "t5" else 0     # T5's bias table
    head = 0 if cfg.tie_weights else v * d
    return embeddings + cfg.n_layers * block + 2 * d + head


# ---------------------------------------------------------------------- layers: forward
@given(shape=st.sampled_from([(3,), (2, 5), (2, 3, 4)]), seed=seeds)
def test_layer_norm_matches_formula(shape, seed):
    rng = np.random.default_rng(seed)
    ln = LayerNorm(shape[-1])
    assert ln.eps == 1e-5
    np.testing.assert_array_equal(ln.scale.data, 1)
    np.testing.assert_array_equal(ln.shift.data, 0)
    ln.scale.data[...] = rng.standard_normal(shape[-1])
    ln.shift.data[...] = rng.standard_normal(shape[-1])
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    out = ln(mg.tensor(x))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.data, np_layer_norm(x.astype(np.float64), ln.scale.data, ln.shift.data),
                               rtol=1e-4, atol=1e-5)


def test_layer_norm_output_has_mean_zero_and_unit_biased_variance():
    """Section 4.2: after normalising, each row has mean 0 and variance 1 (unbiased=False)."""
    x = mg.tensor(np.random.default_rng(123).standard_normal((2, 5)), dtype=np.float32)
    out = LayerNorm(5)(x).data
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-6)
    np.testing.assert_allclose(out.var(-1), 1, atol=1e-3)   # eps makes it a hair below 1


def test_gelu_is_the_tanh_approximation():
    x = np.linspace(-3, 3, 101)
    np.testing.assert_allclose(GELU()(mg.tensor(x, dtype=np.float64)).data, np_gelu(x), rtol=1e-12, atol=1e-15)
    assert GELU()(mg.tensor(x, dtype=np.float32)).dtype == np.float32


def test_feed_forward_shapes_and_formula():
    mg.manual_seed(0)
    ff = FeedForward(tiny_config())
    assert ff.layers[0].weight.shape == (32, 8) and ff.layers[2].weight.shape == (8, 32)
    x = np.random.default_rng(0).standard_normal((2, 3, 8)).astype(np.float32)
    out = ff(mg.tensor(x))
    assert out.shape == (2, 3, 8)
    np.testing.assert_allclose(out.data, np_feed_forward(x.astype(np.float64), ff), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@given(b=st.integers(1, 2), t=st.integers(1, 5), tied=st.booleans(), bias=st.booleans(), seed=seeds)
def test_gpt_model_matches_numpy_forward(kind, b, t, tied, bias, seed):
    mg.manual_seed(seed)
    model = GPTModel(tiny_config(pos_emb=kind, tie_weights=tied, qkv_bias=bias, num_buckets=4, max_distance=4))
    randomize_t5_table(model, seed)
    ids = np.random.default_rng(seed).integers(0, 11, (b, t))
    logits = model(ids)
    assert logits.shape == (b, t, 11) and logits.dtype == np.float32
    np.testing.assert_allclose(logits.data, np_gpt(model, ids), rtol=1e-4, atol=1e-4)
    # a Tensor of ids works the same; last_only runs the head on the last position only
    np.testing.assert_array_equal(model(mg.tensor(ids)).data, logits.data)
    np.testing.assert_allclose(model(ids, last_only=True).data, logits.data[:, -1:], rtol=1e-5, atol=1e-6)


def test_transformer_block_keeps_the_shape_and_matches_formula():
    """Section 4.5: a (2, 4, 768) input comes out (2, 4, 768); here at a small width."""
    mg.manual_seed(1)
    blk = TransformerBlock(tiny_config())
    x = np.random.default_rng(1).standard_normal((2, 4, 8)).astype(np.float32)
    out = blk(mg.tensor(x))
    assert out.shape == (2, 4, 8)
    np.testing.assert_allclose(out.data, np_block(x.astype(np.float64), blk, False), rtol=1e-4, atol=1e-5)


def test_dropout_is_active_in_training_and_off_in_eval():
    mg.manual_seed(0)
    model = GPTModel(tiny_config(drop_rate=0.5))
    ids = np.array([[1, 2, 3, 4]])
    a, b = model(ids).data, model(ids).data
    assert not np.allclose(a, b)  # two different dropout masks
    model.eval()
    np.testing.assert_array_equal(model(ids).data, model(ids).data)
    np.testing.assert_allclose(model(ids).data, np_gpt(model, ids), rtol=1e-4, atol=1e-4)


def randomize_t5_table(model, seed):
    """T5's table starts at zero; tests draw it so that a wrong bucket or head shows."""
    if model.rel_pos_bias is not None:
        w = model.rel_pos_bias.relative_attention_bias.weight
        w.data[...] = np.random.default_rng(seed).standard_normal(w.shape)


# ---------------------------------------------------------------------- gradients (float64)
def check_module(module, x, seed):
    module.double()
    params = list(module.parameters())
    assert mg.gradcheck(lambda x_, *ps: module(x_), x, *params, seed=seed, **TOL)
    assert all(p.grad is not None for p in params)


@given(t=st.integers(1, 3), d=st.integers(1, 5), seed=seeds)
def test_layer_norm_gradients(t, d, seed):
    rng = np.random.default_rng(seed)
    ln = LayerNorm(d).double()
    ln.scale.data[...] = rng.standard_normal(d)
    ln.shift.data[...] = rng.standard_normal(d)
    check_module(ln, mg.tensor(rng.standard_normal((2, t, d)), dtype=np.float64, requires_grad=True), seed)


@settings(max_examples=8)
@given(t=st.integers(1, 3), seed=seeds)
def test_feed_forward_gradients(t, seed):
    mg.manual_seed(seed)
    x = mg.tensor(np.random.default_rng(seed).standard_normal((2, t, 4)), dtype=np.float64, requires_grad=True)
    check_module(FeedForward(tiny_config(emb_dim=4)), x, seed)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=2)
@given(t=st.integers(1, 4), bias=st.booleans(), seed=seeds)
def test_transformer_block_gradients(kind, t, bias, seed):
    mg.manual_seed(seed)
    cfg = tiny_config(emb_dim=4, qkv_bias=bias, context_length=4)
    blk = TransformerBlock(cfg).double()
    rope, bias, table = None, None, None
    if kind == "rope":
        from gpt.positions import RotaryEmbedding
        rope = RotaryEmbedding(cfg.head_dim, cfg.context_length)
    if kind == "alibi":
        from gpt.positions import ALiBi
        bias = ALiBi(cfg.n_heads)(0, t, t, dtype=np.float64)
    if kind == "t5":   # the table is a parameter of the check too
        table = T5RelativeBias(cfg.n_heads, num_buckets=4, max_distance=4).double()
        table.relative_attention_bias.weight.data[...] = np.random.default_rng(seed).standard_normal((4, cfg.n_heads))
    x = mg.tensor(np.random.default_rng(seed).standard_normal((2, t, 4)), dtype=np.float64, requires_grad=True)
    params = list(blk.parameters()) + (list(table.parameters()) if table is not None else [])

    def run(x_, *ps):
        return blk(x_, rope=rope, attn_bias=table(0, t, t) if table is not None else bias)

    assert mg.gradcheck(run, x, *params, seed=seed, **TOL)


@pytest.mark.parametrize("kind,tied,n_layers", [
    ("learned", False, 2), ("rope", False, 1), ("none", False, 1), ("learned", True, 1),
    ("alibi", False, 2), ("t5", False, 2),
])
def test_gpt_model_gradients_end_to_end(kind, tied, n_layers):
    """Cross-entropy loss of a tiny GPT -> every parameter, against central differences."""
    mg.manual_seed(7)
    cfg = tiny_config(vocab_size=7, context_length=4, emb_dim=4, n_layers=n_layers, pos_emb=kind,
                      tie_weights=tied, qkv_bias=True, num_buckets=4, max_distance=3)
    model = GPTModel(cfg).double()
    randomize_t5_table(model, 7)
    params = list(model.parameters())
    assert count_parameters(model) == param_count(cfg) == sum(p.size for p in params)
    rng = np.random.default_rng(7)
    ids, targets = rng.integers(0, 7, (2, 4)), rng.integers(0, 7, (2, 4))

    def loss(*ps):
        logits = model(ids)
        return F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1))

    assert mg.gradcheck(loss, *params, **TOL)
    assert all(p.grad is not None and np.any(p.grad != 0) for p in params)


# ---------------------------------------------------------------------- causality
@given(kind=st.sampled_from(KINDS), t=st.integers(2, 5), cut=st.integers(0, 3), layers=st.integers(1, 2),
       seed=seeds, data=st.data())
def test_logits_never_depend_on_later_tokens(kind, t, cut, layers, seed, data):
    cut = min(cut, t - 2)
    mg.manual_seed(seed)
    model = GPTModel(tiny_config(pos_emb=kind, n_layers=layers))
    ids = np.array(data.draw(st.lists(st.integers(0, 10), min_size=t, max_size=t)))[None]
    tail = data.draw(st.lists(st.integers(0, 10), min_size=t - cut - 1, max_size=t - cut - 1))
    changed = ids.copy()
    changed[0, cut + 1:] = tail
    a, b = model(ids).data, model(changed).data
    np.testing.assert_array_equal(a[:, :cut + 1], b[:, :cut + 1])


def test_later_tokens_do_change_later_logits():
    """The counterpart of causality: the model does read its input (guards a vacuous pass above)."""
    mg.manual_seed(0)
    model = GPTModel(tiny_config())
    a, b = model(np.array([[1, 2, 3]])).data, model(np.array([[1, 2, 4]])).data
    assert not np.allclose(a[:, 2], b[:, 2])


# ---------------------------------------------------------------------- float32 throughout
def _arrays_of(ctx):
    for value in vars(ctx).values():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, np.ndarray):
                yield item


@pytest.mark.parametrize("kind", KINDS)
def test_float32_model_creates_no_float64_arrays(kind):
    mg.manual_seed(0)
    model = GPTModel(tiny_config(pos_emb=kind, tie_weights=(kind == "none")))
    model.train()
    ids = np.array([[1, 2, 3, 4, 5], [5, 4, 3, 2, 1]])
    logits = model(ids)
    assert logits.dtype == np.float32
    loss = F.cross_entropy(logits.flatten(0, 1), np.roll(ids, -1, 1).reshape(-1))
    assert loss.dtype == np.float32
    # every array of the graph: activations, saved arrays, masks and rotation tables
    seen, stack, n_nodes = set(), [loss], 0
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        assert t.data.dtype != np.float64, f"a float64 tensor in the graph, made by {type(t.grad_fn).__name__}"
        if t.grad_fn is not None:
            n_nodes += 1
            for arr in _arrays_of(t.grad_fn):
                assert arr.dtype != np.float64, f"{type(t.grad_fn).__name__} keeps a float64 array"
            stack.extend(t.grad_fn.parents)
    assert n_nodes > 20
    loss.backward()
    for name, p in model.named_parameters():
        assert p.dtype == np.float32 and p.grad is not None and p.grad.dtype == np.float32, name


# ---------------------------------------------------------------------- parameter counts
@pytest.fixture(scope="module")
def gpt2_small():
    mg.manual_seed(0)
    return GPTModel(GPTConfig.from_preset("gpt2-small"))


def test_gpt2_small_parameter_counts(gpt2_small):
    """Section 4.6: 163,009,536 parameters; 124,412,160 with the output head tied to tok_emb."""
    model = gpt2_small
    assert count_parameters(model) == 163_009_536 == param_count(model.cfg)
    assert model.tok_emb.weight.shape == (50257, 768) and model.out_head.weight.shape == (50257, 768)
    block = model.trf_blocks[0]
    assert count_parameters(block.att) == 2_360_064
    assert count_parameters(block.ff) == 4_722_432
    summary = model_summary(model)
    assert summary["parameters"] == 163_009_536
    assert summary["parameters_without_head"] == 124_412_160
    assert summary["size_mb"] == pytest.approx(621.83, abs=0.01)   # the book's 621.83 MB
    # tying the head to the token embedding (what tie_weights=True does) leaves one copy
    untied_head = model.out_head.weight
    model.out_head.weight = model.tok_emb.weight
    try:
        assert count_parameters(model) == 124_412_160
        assert model_summary(model)["parameters_without_head"] == 124_412_160
    finally:
        model.out_head.weight = untied_head


@given(d_heads=st.sampled_from([(4, 1), (4, 2), (6, 3), (8, 2)]), layers=st.integers(1, 3),
       vocab=st.integers(1, 20), ctx=st.integers(1, 8), bias=st.booleans(), tied=st.booleans(),
       kind=st.sampled_from(KINDS))
def test_parameter_formula_matches_built_models(d_heads, layers, vocab, ctx, bias, tied, kind):
    d, heads = d_heads
    cfg = GPTConfig(vocab_size=vocab, context_length=ctx, emb_dim=d, n_heads=heads, n_layers=layers,
                    qkv_bias=bias, tie_weights=tied, pos_emb=kind)
    model = GPTModel(cfg)
    assert count_parameters(model) == param_count(cfg)
    assert (model.out_head.weight is model.tok_emb.weight) == tied


@pytest.mark.parametrize("name,dims,book,hf", [
    # (emb_dim, n_layers, n_heads); the book's untied counts; Hugging Face's (tied, qkv biases)
    ("gpt2-small", (768, 12, 12), 163_009_536, 124_439_808),
    ("gpt2-medium", (1024, 24, 16), 406_212_608, 354_823_168),
    ("gpt2-large", (1280, 36, 20), 838_220_800, 774_030_080),
    ("gpt2-xl", (1600, 48, 25), 1_637_792_000, 1_557_611_200),
])
def test_gpt2_presets(name, dims, book, hf):
    cfg = GPTConfig.from_preset(name)
    assert (cfg.emb_dim, cfg.n_layers, cfg.n_heads) == dims
    assert (cfg.vocab_size, cfg.context_length, cfg.qkv_bias) == (50257, 1024, False)
    assert param_count(cfg) == book
    assert param_count(dataclasses.replace(cfg, tie_weights=True, qkv_bias=True)) == hf


def test_flops_per_token():
    cfg = GPTConfig.from_preset("gpt2-small")
    d, n_layers, t = 768, 12, 1024
    # every weight of a matrix product does one multiply and one add per token
    matmul_weights = n_layers * 12 * d * d + 50257 * d
    forward = flops_per_token(cfg)
    assert forward == 2 * matmul_weights + n_layers * 4 * t * d
    assert flops_per_token(cfg, training=True) == 3 * forward
    assert flops_per_token(GPT_CONFIG_124M) == forward   # the book's dict is accepted too
    # doubling the context only grows the attention part
    assert flops_per_token(dataclasses.replace(cfg, context_length=2048)) - forward == n_layers * 4 * t * d


def test_model_summary_of_a_tiny_model():
    model = GPTModel(tiny_config())
    s = model_summary(model)
    assert s["parameters"] == s["trainable"] == param_count(model.cfg)
    assert s["size_mb"] == pytest.approx(s["parameters"] * 4 / 2**20)
    assert s["flops_per_token_training"] == 3 * s["flops_per_token_forward"] > 0
    model.tok_emb.weight.requires_grad = False
    assert count_parameters(model, trainable_only=True) == s["parameters"] - 11 * 8


# ---------------------------------------------------------------------- the config
def test_presets_and_overrides():
    assert {"gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny"} <= set(PRESETS)
    cfg = GPTConfig.from_preset("gpt2-small", drop_rate=0.0, qkv_bias=True)
    assert (cfg.drop_rate, cfg.qkv_bias, cfg.emb_dim) == (0.0, True, 768)
    assert GPTConfig.from_preset("gpt2-small").drop_rate == 0.1       # the preset itself is untouched
    assert GPTConfig.from_dict(GPT_CONFIG_124M) == GPTConfig.from_preset("gpt2-small")


def test_fields_can_be_overridden_after_creation():
    cfg = GPTConfig.from_preset("tiny")
    cfg.context_length = 16
    cfg.vocab_size = 13
    model = GPTModel(cfg)
    assert model.pos_emb.weight.shape == (16, cfg.emb_dim) and model.out_head.weight.shape == (13, cfg.emb_dim)
    assert model(np.zeros((1, 16), dtype=np.int64)).shape == (1, 16, 13)
    with pytest.raises(ValueError, match="context length is 16"):
        model(np.zeros((1, 17), dtype=np.int64))


def test_tiny_preset_is_small():
    model = GPTModel(GPTConfig.from_preset("tiny"))
    assert count_parameters(model) < 500_000


def test_gpt_model_accepts_the_books_dict_config():
    book_style = {"vocab_size": 11, "context_length": 5, "emb_dim": 8, "n_heads": 2, "n_layers": 1,
                  "drop_rate": 0.1, "qkv_bias": False}
    model = GPTModel(book_style)
    assert isinstance(model.cfg, GPTConfig) and model.cfg.emb_dim == 8 and model.cfg["n_heads"] == 2
    assert model(np.array([[1, 2, 3]])).shape == (1, 3, 11)
    assert TransformerBlock(book_style)(mg.tensor(np.zeros((1, 2, 8), dtype=np.float32))).shape == (1, 2, 8)


@pytest.mark.parametrize("fields,message", [
    (dict(pos_emb="sinusoidal"), "pos_emb must be one of learned, rope, alibi, t5, none"),
    (dict(emb_dim=10, n_heads=3), r"emb_dim \(10\) must be divisible by n_heads \(3\)"),
    (dict(n_heads=0), "n_heads must be positive"),
    (dict(n_layers=0), "n_layers must be positive"),
    (dict(vocab_size=-1), "vocab_size must be positive"),
    (dict(drop_rate=1.0), r"drop_rate must be in \[0, 1\)"),
])
def test_config_validation(fields, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**fields)


def test_unknown_preset_and_keys():
    with pytest.raises(ValueError, match="unknown model preset 'gpt3'.*gpt2-small.*gpt2-xl.*tiny"):
        GPTConfig.from_preset("gpt3")
    with pytest.raises(ValueError, match="unknown model config keys: emb_size"):
        GPTModel({**GPT_CONFIG_124M, "emb_size": 768})


def test_rope_needs_an_even_head_dimension():
    with pytest.raises(ValueError, match="even head dimension"):
        GPTModel(tiny_config(emb_dim=6, n_heads=2, pos_emb="rope"))


def test_input_errors():
    model = GPTModel(tiny_config())
    with pytest.raises(ValueError, match=r"shape \(batch, tokens\), got \(3,\).*ids\[None\]"):
        model(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="context length is 5 but 6 positions were given; crop"):
        model(np.zeros((2, 6), dtype=np.int64))
