"""Today's decoders (gpt/architectures): Llama 3, Qwen3, Qwen3-MoE and Gemma 3.

NumPy only: the parts against direct formulas, gradients in float64, one forward pass written out
by hand per family, cached against uncached generation, presets against published parameter
counts. (The comparisons with Hugging Face transformers are in tests/test_hf.py.)
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.testing import assert_gradients_match

from gpt.architectures import (PRESETS, DecoderConfig, build_model, config_from_dict, count_parameters_of,
                               model_class)
from gpt.architectures.attention import GroupedQueryAttention, attention_mask
from gpt.architectures.feed_forward import GeGLU, SwiGLU
from gpt.architectures.norms import RMSNorm
from gpt.attention import MultiHeadAttention
from gpt.generate import generate
from gpt.positions import RotaryEmbedding, llama3_inv_freq

TOL = dict(atol=1e-7, rtol=1e-5)
seeds = st.integers(0, 2**32 - 1)
ARCHES = ("llama", "qwen3", "qwen3-moe", "gemma3")


def tiny(arch: str, **overrides) -> DecoderConfig:
    """A tiny model of ``arch`` exercising every feature: grouped heads, an explicit head_dim, two
    layer types with a short window (Gemma), experts (MoE)."""
    base = dict(arch=arch, vocab_size=13, context_length=12, emb_dim=8, n_heads=4, n_kv_heads=2, n_layers=2,
                hidden_dim=12, rope_theta=100.0)
    if arch != "llama":
        base.update(qk_norm=True, head_dim=6)
    if arch == "qwen3-moe":
        base.update(n_experts=4, n_experts_per_token=2, moe_hidden_dim=5)
    if arch == "gemma3":
        base.update(sliding_window=3, layer_types=["sliding_attention", "full_attention"], query_pre_attn_scalar=5.0,
                    tie_weights=True, rope_local_theta=30.0)
    base.update(overrides)
    return DecoderConfig(**base)


def randomized(model, seed: int, std: float = 0.5):
    """Weights drawn at a scale that makes every path matter (norms away from 1, logits not flat)."""
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape) * std + (0.0 if p.ndim > 1 else 0.2)
    return model


# ---------------------------------------------------------------------- config
def test_config_defaults_validation_and_round_trip():
    cfg = tiny("gemma3", layer_types=None, n_layers=7)
    assert cfg.head_dim == 6 and cfg.extrapolates and cfg.n_kv_groups == 2
    # Gemma 3's default pattern: five local layers, then a global one
    assert [cfg.window(i) for i in range(7)] == [3, 3, 3, 3, 3, None, 3]
    assert config_from_dict(cfg.to_dict()) == cfg
    assert DecoderConfig(arch="llama", emb_dim=64, n_heads=8, n_kv_heads=8).head_dim == 8
    for bad, match in [(dict(n_kv_heads=3), "multiple of n_kv_heads"),
                       (dict(head_dim=5), "even"), (dict(layer_types=["full_attention"]), "1 entries for 2 layers"),
                       (dict(layer_types=["sliding_attention"] * 2, sliding_window=None), "sliding_window"),
                       (dict(rope_scaling={"rope_type": "llama3", "factor": 8.0}), "needs exactly the keys"),
                       (dict(drop_rate=1.0), "drop_rate")]:
        with pytest.raises(ValueError, match=match):
            tiny("llama", **bad)
    with pytest.raises(ValueError, match="arch must be one of llama, qwen3, qwen3-moe, gemma3, not 'gpt5'"):
        DecoderConfig(arch="gpt5")
    with pytest.raises(ValueError, match="n_experts"):
        DecoderConfig(arch="qwen3-moe")
    with pytest.raises(ValueError, match="unknown model config keys: bogus"):
        config_from_dict({"arch": "llama", "bogus": 1})


# ---------------------------------------------------------------------- presets
# Published counts: the safetensors totals of meta-llama/Llama-3.2-1B and -3B and google/gemma-3-270m
# and gemma-3-1b-pt (tied heads counted once); Qwen's model cards give rounded ones.
EXACT = {"llama3.2-1b": 1_235_814_400, "llama3.2-3b": 3_212_749_824,
         "gemma3-270m": 268_098_176, "gemma3-1b": 999_885_952}
# (total, non-embedding, active) in billions as the Qwen3 model cards print them
QWEN_CARDS = {"qwen3-0.6b": (0.6, 0.44, None), "qwen3-1.7b": (1.7, 1.4, None), "qwen3-30b-a3b": (30.5, 29.9, 3.3)}


@pytest.mark.parametrize("name", [*EXACT, *QWEN_CARDS])
def test_published_parameter_counts(name):
    counts = count_parameters_of(DecoderConfig.from_preset(name))
    if name in EXACT:
        assert counts["total"] == EXACT[name]
    else:
        # each card figure to within one unit of its last printed digit (0.44 -> 0.01, 30.5 -> 0.1)
        for key, card in zip(("total", "non_embedding", "active"), QWEN_CARDS[name]):
            if card is not None:
                unit = 0.01 if key == "non_embedding" and card < 1 else 0.1
                assert abs(counts[key] / 1e9 - card) < unit, (key, counts[key], card)


@pytest.mark.parametrize("name", ["llama-mini", "qwen3-mini", "qwen3-moe-mini", "gemma3-mini"])
def test_parameter_formula_matches_built_models(name):
    """The formula the published counts are checked with counts what the classes build."""
    cfg = DecoderConfig.from_preset(name, vocab_size=50)
    model = build_model(cfg)
    assert model.num_parameters() == count_parameters_of(cfg)["total"]
    assert cfg.emb_dim == 256 and cfg.n_layers == 4 and cfg.context_length == 128


# ---------------------------------------------------------------------- parts
@settings(max_examples=10)
@given(d=st.integers(1, 6), offset=st.sampled_from([0.0, 1.0]), seed=seeds)
def test_rms_norm_module_gradients_and_init(d, offset, seed):
    norm = RMSNorm(d, eps=1e-6, offset=offset)
    assert np.all(norm.weight.data + offset == 1.0)           # starts as the plain normalisation
    norm.double()
    norm.weight.data[...] = np.random.default_rng(seed).standard_normal(d)
    x = mg.tensor(np.random.default_rng(seed + 1).standard_normal((2, 3, d)), requires_grad=True)
    assert mg.gradcheck(lambda x_, w: norm(x_), x, norm.weight, seed=seed, **TOL)


@pytest.mark.parametrize("cls", [SwiGLU, GeGLU])
@settings(max_examples=5)
@given(seed=seeds)
def test_gated_feed_forward_forward_and_gradients(cls, seed):
    mg.manual_seed(seed)
    ff = cls(4, 6).double()
    x = mg.tensor(np.random.default_rng(seed).standard_normal((2, 3, 4)), requires_grad=True)
    gate, up, down = (ff.fc1.weight.data, ff.fc2.weight.data, ff.fc3.weight.data)
    a = x.data @ gate.T
    if cls is SwiGLU:
        act = a / (1 + np.exp(-a))
    else:
        act = 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))
    np.testing.assert_allclose(ff(x).data, (act * (x.data @ up.T)) @ down.T, rtol=1e-10)
    assert mg.gradcheck(lambda x_, *ps: ff(x_), x, *ff.parameters(), seed=seed, **TOL)


def gqa_reference(att, x, rope_base, window=None):
    """Grouped-query attention written out head by head with explicit loops, in NumPy."""
    b, T, _ = x.shape
    H, KV, hd = att.num_heads, att.num_kv_heads, att.head_dim
    q = (x @ att.W_query.weight.data.T).reshape(b, T, H, hd)
    k = (x @ att.W_key.weight.data.T).reshape(b, T, KV, hd)
    v = (x @ att.W_value.weight.data.T).reshape(b, T, KV, hd)

    def norm(t, w):
        return t / np.sqrt((t * t).mean(-1, keepdims=True) + 1e-6) * w

    if att.q_norm is not None:
        q, k = norm(q, att.q_norm.weight.data), norm(k, att.k_norm.weight.data)
    inv = rope_base ** (-np.arange(0, hd, 2) / hd)
    ang = np.arange(T)[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[None, :, None, :], np.sin(ang)[None, :, None, :]

    def rot(t):
        t1, t2 = t[..., :hd // 2], t[..., hd // 2:]
        return np.concatenate([t1 * cos - t2 * sin, t2 * cos + t1 * sin], -1)

    q, k = rot(q), rot(k)
    out = np.zeros((b, T, H, hd))
    for h in range(H):
        g = h // (H // KV)
        s = np.einsum("btd,bsd->bts", q[:, :, h], k[:, :, g]) * att.scale
        for i in range(T):
            for j in range(T):
                if j > i or (window is not None and i - j >= window):
                    s[:, i, j] = -np.inf
        w = np.exp(s - s.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        out[:, :, h] = w @ v[:, :, g]
    return out.reshape(b, T, H * hd) @ att.out_proj.weight.data.T


@pytest.mark.parametrize("heads,kv,qk_norm,window", [(4, 2, False, None), (4, 1, True, 2), (3, 3, True, None)])
def test_grouped_query_attention_against_loops_and_its_gradients(heads, kv, qk_norm, window):
    mg.manual_seed(3)
    att = GroupedQueryAttention(5, heads, kv, 4, qk_norm=qk_norm, sliding_window=window, query_scale=0.3).double()
    randomized(att, 3)
    rope = RotaryEmbedding(4, 6, base=50.0)
    x = mg.tensor(np.random.default_rng(4).standard_normal((2, 6, 5)), requires_grad=True)
    att.keep_attention = True
    y = att(x, rope)
    np.testing.assert_allclose(y.data, gqa_reference(att, x.data, 50.0, window), rtol=1e-10, atol=1e-12)
    w = att.last_attn_weights
    assert w.shape == (2, heads, 6, 6)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    if window is not None:
        assert w[:, :, 5, :5 - window + 1].max() == 0.0     # outside the window: weight exactly 0
    assert mg.gradcheck(lambda x_, *ps: att(x_, rope), x, *att.parameters(), seed=1, **TOL)


def test_gqa_with_group_one_is_multi_head_attention():
    mg.manual_seed(0)
    mha = MultiHeadAttention(8, 8, context_length=6, dropout=0.0, num_heads=2).double()
    mha.out_proj.bias.data[...] = 0.0       # GQA has no biases
    gqa = GroupedQueryAttention(8, 2, 2, 4).double()
    for name in ("W_query", "W_key", "W_value", "out_proj"):
        getattr(gqa, name).weight.data[...] = getattr(mha, name).weight.data
    rope = RotaryEmbedding(4, 6)
    x = mg.tensor(np.random.default_rng(0).standard_normal((3, 6, 8)))
    np.testing.assert_allclose(gqa(x, rope).data, mha(x, rope=rope).data, rtol=1e-12, atol=1e-13)


def test_attention_mask_places_keys_by_position():
    # 2 new queries at positions 5, 6 over keys 3..6 (a sliding layer that kept 2) with window 3
    m = attention_mask(5, 2, 3, 4, 3)
    assert m.tolist() == [[False, False, False, True], [True, False, False, False]]
    assert attention_mask(0, 2, 0, 2, None, 2).tolist() == [[False, True], [False, False]] * 2
    assert not m.flags.writeable


def test_llama3_rope_scaling_by_wavelength():
    inv = 10000.0 ** (-np.arange(0, 64, 2) / 64)
    out = llama3_inv_freq(inv, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=8192)
    wavelen = 2 * np.pi / inv
    short, long = wavelen < 8192 / 4, wavelen > 8192
    np.testing.assert_array_equal(out[short], inv[short])          # fast frequencies untouched
    np.testing.assert_allclose(out[long], inv[long] / 8.0)         # slow ones as linear scaling
    mid = ~short & ~long
    assert mid.any() and np.all((out[mid] < inv[mid]) & (out[mid] > inv[mid] / 8.0))
    rope = RotaryEmbedding(64, 16, scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
    np.testing.assert_array_equal(rope.inv_freq, out)


# ---------------------------------------------------------------------- whole models
def reference_forward(model, ids):
    """The family's forward pass written out in NumPy from the model's weights (float64)."""
    cfg = model.cfg
    gemma = cfg.arch == "gemma3"
    off = 1.0 if gemma else 0.0

    def norm(x, mod):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + cfg.norm_eps) * (off + mod.weight.data)

    def gelu(a):
        return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))

    def silu(a):
        return a / (1 + np.exp(-a))

    def dense(ff, h):
        act = gelu if gemma else silu
        return (act(h @ ff.fc1.weight.data.T) * (h @ ff.fc2.weight.data.T)) @ ff.fc3.weight.data.T

    def moe(ff, h):
        out = np.zeros_like(h)
        logits = h @ ff.gate.weight.data.T
        for n in np.ndindex(h.shape[:-1]):
            top = np.argsort(-logits[n])[:cfg.n_experts_per_token]
            w = np.exp(logits[n][top] - logits[n][top].max())
            w /= w.sum()
            for weight, e in zip(w, top):
                g = h[n] @ ff.fc1.weight.data[e].T
                out[n] += weight * ((silu(g) * (h[n] @ ff.fc2.weight.data[e].T)) @ ff.fc3.weight.data[e].T)
        return out

    x = model.tok_emb.weight.data[ids]
    if gemma:
        x = x * math.sqrt(cfg.emb_dim)
    for i, blk in enumerate(model.trf_blocks):
        att = blk.att
        base = cfg.rope_local_theta if gemma and cfg.window(i) else cfg.rope_theta
        if gemma:
            h = norm(x, blk.input_layernorm)
            a = gqa_reference_offset(att, h, base, cfg.window(i), cfg.norm_eps, off)
            x = x + norm(a, blk.post_attention_layernorm)
            x = x + norm(dense(blk.ff, norm(x, blk.pre_feedforward_layernorm)), blk.post_feedforward_layernorm)
        else:
            x = x + gqa_reference_offset(att, norm(x, blk.norm1), base, None, cfg.norm_eps, off)
            h = norm(x, blk.norm2)
            x = x + (moe(blk.ff, h) if cfg.arch == "qwen3-moe" else dense(blk.ff, h))
    return norm(x, model.final_norm) @ model.out_head.weight.data.T


def gqa_reference_offset(att, x, base, window, eps, off):
    """gqa_reference with the family's norm offset and eps on q_norm/k_norm."""
    saved = None
    if att.q_norm is not None:
        saved = (att.q_norm.weight.data.copy(), att.k_norm.weight.data.copy())
        att.q_norm.weight.data += off
        att.k_norm.weight.data += off
    try:
        return gqa_reference(att, x, base, window)
    finally:
        if saved is not None:
            att.q_norm.weight.data[...], att.k_norm.weight.data[...] = saved


@pytest.mark.parametrize("arch", ARCHES)
def test_forward_against_a_numpy_reference(arch):
    mg.manual_seed(1)
    model = randomized(build_model(tiny(arch, norm_eps=1e-6)).double(), 1)
    ids = np.random.default_rng(1).integers(0, 13, (2, 7))
    np.testing.assert_allclose(model(ids).data, reference_forward(model, ids), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("arch", ARCHES)
def test_model_gradients_end_to_end(arch):
    """Cross-entropy of a tiny model of each family -> every parameter, against central differences."""
    mg.manual_seed(2)
    small = dict(vocab_size=7, context_length=5, emb_dim=4, n_heads=2, n_kv_heads=1, head_dim=2, hidden_dim=3)
    if arch == "qwen3-moe":
        small.update(n_experts=3, moe_hidden_dim=2)
    model = randomized(build_model(tiny(arch, **small)).double(), 2, std=0.6)
    params = list(model.parameters())
    rng = np.random.default_rng(2)
    ids, targets = rng.integers(0, 7, (2, 5)), rng.integers(0, 7, (2, 5))

    def loss(*ps):
        return F.cross_entropy(model(ids).flatten(0, 1), targets.reshape(-1))

    assert mg.gradcheck(loss, *params, **TOL)
    assert all(p.grad is not None and np.any(p.grad != 0) for p in params)


@pytest.mark.parametrize("arch", ARCHES)
def test_float32_stays_float32(arch):
    model = build_model(tiny(arch))
    ids = np.arange(10)[None] % 13
    logits = model(ids)
    assert logits.dtype == np.float32
    F.cross_entropy(logits.flatten(0, 1), ids.reshape(-1)).backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_tied_embeddings_and_contract_names():
    model = build_model(tiny("gemma3"))
    assert model.out_head.weight is model.tok_emb.weight
    names = set(model.state_dict())
    for n in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
              "post_feedforward_layernorm", "att.q_norm", "att.k_norm", "ff.fc1", "ff.fc2", "ff.fc3"):
        assert f"trf_blocks.1.{n}.weight" in names
    moe = build_model(tiny("qwen3-moe")).state_dict()
    assert moe["trf_blocks.0.ff.gate.weight"].shape == (4, 8)
    assert moe["trf_blocks.0.ff.fc1.weight"].shape == (4, 5, 8) and moe["trf_blocks.0.ff.fc3.weight"].shape == (4, 8, 5)
    llama = build_model(tiny("llama")).state_dict()
    assert llama["trf_blocks.0.att.W_key.weight"].shape == (2 * 2, 8)   # n_kv_heads * head_dim
    assert not any("bias" in k for k in llama)
    assert model_class("qwen3-moe").__name__ == "Qwen3Model"


@pytest.mark.parametrize("arch", ARCHES)
def test_cache_in_chunks_equals_one_pass(arch):
    """Logits of a sequence fed chunk by chunk through the KV cache equal one full pass, also past
    the sliding window (Gemma's local layers then hold only their last W - 1 positions)."""
    mg.manual_seed(4)
    model = randomized(build_model(tiny(arch)).double(), 4).eval()
    ids = np.random.default_rng(4).integers(0, 13, (2, 11))
    full = model(ids).data
    cache = model.new_kv_cache(2)
    outs, start = [], 0
    with mg.no_grad():
        for n in (4, 1, 3, 1, 2):
            outs.append(model(ids[:, start:start + n], kv_cache=cache).data)
            start += n
    np.testing.assert_allclose(np.concatenate(outs, axis=1), full, rtol=1e-10, atol=1e-10)
    if arch == "gemma3":     # the sliding layer keeps W - 1 = 2 positions, the global one all 11
        assert cache.key_start(0) == 11 - 2 and cache.key_start(1) == 0


@pytest.mark.parametrize("arch", ARCHES)
def test_last_only_equals_the_last_row_of_a_full_pass(arch):
    """last_only (the last block then computes its queries, attention output and feed-forward for the
    last position only) gives the full pass's last row, with and without a cache, and leaves the
    cache as a full pass would: the chunks after it see the same keys and values."""
    mg.manual_seed(6)
    model = randomized(build_model(tiny(arch)).double(), 6).eval()
    ids = np.random.default_rng(6).integers(0, 13, (2, 11))
    full = model(ids).data
    with mg.no_grad():
        np.testing.assert_allclose(model(ids, last_only=True).data, full[:, -1:], rtol=1e-10, atol=1e-10)
        cache, start = model.new_kv_cache(2), 0
        for n in (5, 1, 3, 2):
            out = model(ids[:, start:start + n], kv_cache=cache, last_only=True).data
            start += n
            assert out.shape == (2, 1, 13)
            np.testing.assert_allclose(out, full[:, start - 1:start], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("window", [None, 3])
def test_attention_last_only_is_the_last_row(window):
    """GroupedQueryAttention(last_only=True): the last query row of the full result, (b, 1, d),
    also with a sliding window; with keep_attention on it returns every row (for the look-inside page)."""
    mg.manual_seed(7)
    att = GroupedQueryAttention(8, 4, 2, 6, qk_norm=True, sliding_window=window).double()
    randomized(att, 7)
    rope = RotaryEmbedding(6, 16, base=100.0)
    x = mg.Tensor(np.random.default_rng(7).standard_normal((2, 7, 8)))
    full = att(x, rope).data
    np.testing.assert_allclose(att(x, rope, last_only=True).data, full[:, -1:], rtol=1e-10, atol=1e-10)
    att.keep_attention = True
    np.testing.assert_array_equal(att(x, rope, last_only=True).data, full)
    assert att.last_attn_weights.shape == (2, 4, 7, 7)


@pytest.mark.parametrize("arch", ARCHES)
def test_cached_generation_equals_uncached(arch):
    """Greedy and sampled ids with and without the cache, past the window (3) and the context (12)."""
    mg.manual_seed(5)
    model = randomized(build_model(tiny(arch)), 5, std=0.8)
    prompts = np.random.default_rng(5).integers(0, 13, (3, 4))
    a = generate(model, prompts, 20, use_cache=True)
    b = generate(model, prompts, 20, use_cache=False)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a[:, 4:])) > 2            # not one repeated token: the check has teeth
    rngs = lambda: [np.random.default_rng(i) for i in range(3)]   # noqa: E731
    s1 = generate(model, prompts, 20, temperature=1.0, top_k=5, rng=rngs(), use_cache=True)
    s2 = generate(model, prompts, 20, temperature=1.0, top_k=5, rng=rngs(), use_cache=False)
    np.testing.assert_array_equal(s1, s2)
    # each row samples what it would alone
    alone = generate(model, prompts[1:2], 20, temperature=1.0, top_k=5, rng=[np.random.default_rng(1)])
    np.testing.assert_array_equal(alone[0], s1[1])
