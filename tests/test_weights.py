"""GPT-2 weights in and out: ``export_hf`` -> ``load_gpt2`` round trips, the Hugging Face layout's
variations (prefix, mask buffers, tied head), clear errors for broken files, and, when
``transformers`` and ``torch`` are installed, logits identical to ``GPT2LMHeadModel`` both ways.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import minigrad as mg
from gpt import safetensors
from gpt.model import GPTConfig, GPTModel
from gpt.weights import export_hf, load_gpt2

IDS = np.array([[0, 5, 9, 2, 7, 7], [3, 1, 4, 1, 5, 9]])


def random_model(tied=False, qkv_bias=True, seed=0, **overrides):
    """A small GPT-2-shaped model with every weight random (also LayerNorm scale/shift and biases)."""
    mg.manual_seed(seed)
    cfg = dict(vocab_size=13, context_length=8, emb_dim=12, n_heads=3, n_layers=2, drop_rate=0.0,
               qkv_bias=qkv_bias, tie_weights=tied)
    model = GPTModel(GPTConfig(**{**cfg, **overrides}))
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape) * 0.5
    return model.eval()


def logits(model, ids=IDS):
    return model(ids).data


@pytest.fixture
def exported(tmp_path):
    model = random_model()
    export_hf(model, tmp_path / "hf")
    return model, tmp_path / "hf"


def rewrite(src_dir, dst_dir, change):
    """Copy an exported model to ``dst_dir`` with its tensors dict changed by ``change(tensors)``."""
    dst_dir.mkdir()
    tensors = dict(safetensors.load_file(src_dir / "model.safetensors"))
    change(tensors)
    safetensors.save_file(tensors, dst_dir / "model.safetensors")
    shutil.copy(src_dir / "config.json", dst_dir / "config.json")
    return dst_dir / "model.safetensors"


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("qkv_bias", [False, True])
def test_export_then_load_gives_identical_logits(tmp_path, tied, qkv_bias):
    model = random_model(tied=tied, qkv_bias=qkv_bias)
    out_dir = export_hf(model, tmp_path / "export")
    assert sorted(p.name for p in out_dir.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_gpt2(out_dir / "model.safetensors")
    assert (loaded.out_head.weight is loaded.tok_emb.weight) == tied
    c, lc = model.cfg, loaded.cfg
    assert (lc.vocab_size, lc.context_length, lc.emb_dim, lc.n_heads, lc.n_layers) == \
           (c.vocab_size, c.context_length, c.emb_dim, c.n_heads, c.n_layers)
    np.testing.assert_array_equal(logits(loaded), logits(model))
    assert all(p.dtype == np.float32 for p in loaded.parameters())


def test_exported_file_has_gpt2_names_and_layouts(exported):
    model, out_dir = exported
    tensors = safetensors.load_file(out_dir / "model.safetensors")
    assert safetensors.load_metadata(out_dir / "model.safetensors") == {"format": "pt"}
    d = 12
    assert tensors["transformer.wte.weight"].shape == (13, d)
    assert tensors["transformer.wpe.weight"].shape == (8, d)
    assert tensors["transformer.h.1.attn.c_attn.weight"].shape == (d, 3 * d)      # Conv1D: (in, out)
    assert tensors["transformer.h.0.mlp.c_fc.weight"].shape == (d, 4 * d)
    assert tensors["lm_head.weight"].shape == (13, d)
    att = model.trf_blocks[1].att
    # query, key and value side by side along the output axis, each the transpose of the Linear weight
    np.testing.assert_array_equal(tensors["transformer.h.1.attn.c_attn.weight"][:, d:2 * d], att.W_key.weight.data.T)
    np.testing.assert_array_equal(tensors["transformer.h.1.attn.c_attn.bias"][2 * d:], att.W_value.bias.data)
    assert not any(k.endswith(".attn.bias") for k in tensors)   # no mask buffers
    cfg = json.loads((out_dir / "config.json").read_text())
    assert cfg["model_type"] == "gpt2" and cfg["architectures"] == ["GPT2LMHeadModel"]
    assert (cfg["n_embd"], cfg["n_head"], cfg["n_layer"], cfg["n_positions"], cfg["vocab_size"]) == (12, 3, 2, 8, 13)
    assert cfg["activation_function"] == "gelu_new" and cfg["layer_norm_epsilon"] == 1e-5
    assert cfg["tie_word_embeddings"] is False
    # GPT-2's <|endoftext|> (50256) does not exist in a 13-token vocabulary: no token id may point past it
    assert all(cfg[k] is None or 0 <= cfg[k] < 13 for k in ("bos_token_id", "eos_token_id"))


def test_keys_without_the_transformer_prefix(exported, tmp_path):
    model, out_dir = exported

    def strip(t):
        for k in [k for k in t if k.startswith("transformer.")]:
            t[k[len("transformer."):]] = t.pop(k)

    path = rewrite(out_dir, tmp_path / "plain", strip)
    assert "wte.weight" in safetensors.read_header(path).tensors
    np.testing.assert_array_equal(logits(load_gpt2(path)), logits(model))


def test_attention_mask_buffers_are_ignored(exported, tmp_path):
    model, out_dir = exported

    def add_buffers(t):
        for i in range(2):  # older exports store the causal mask and a masked_bias constant per block
            t[f"transformer.h.{i}.attn.bias"] = np.tril(np.ones((8, 8), dtype=np.float32))[None, None]
            t[f"transformer.h.{i}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)

    path = rewrite(out_dir, tmp_path / "buffers", add_buffers)
    np.testing.assert_array_equal(logits(load_gpt2(path)), logits(model))


def test_a_missing_lm_head_means_tied(exported, tmp_path):
    model, out_dir = exported
    path = rewrite(out_dir, tmp_path / "tied", lambda t: t.pop("lm_head.weight"))
    loaded = load_gpt2(path)
    assert loaded.out_head.weight is loaded.tok_emb.weight
    np.testing.assert_array_equal(loaded.out_head.weight.data, model.tok_emb.weight.data)


def test_context_length_override(exported):
    model, out_dir = exported
    short = load_gpt2(out_dir / "model.safetensors", context_length=5)
    assert short.cfg.context_length == 5 and short.pos_emb.weight.shape == (5, 12)
    np.testing.assert_array_equal(short.pos_emb.weight.data, model.pos_emb.weight.data[:5])
    np.testing.assert_array_equal(logits(short, IDS[:, :5]), logits(model, IDS[:, :5]))
    with pytest.raises(ValueError, match="context length is 5"):
        short(IDS)
    with pytest.raises(ValueError, match="context_length 9 exceeds the 8 positions"):
        load_gpt2(out_dir / "model.safetensors", context_length=9)


def test_other_overrides(exported):
    _, out_dir = exported
    loaded = load_gpt2(out_dir / "model.safetensors", drop_rate=0.1)
    assert loaded.cfg.drop_rate == 0.1 and loaded.cfg.qkv_bias


def test_head_count_comes_from_config_json_or_the_caller(exported, tmp_path):
    model, out_dir = exported
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out_dir / "model.safetensors", alone / "model.safetensors")
    with pytest.raises(ValueError, match="cannot tell the number of attention heads for width 12; pass n_heads="):
        load_gpt2(alone / "model.safetensors")
    np.testing.assert_array_equal(logits(load_gpt2(alone / "model.safetensors", n_heads=3)), logits(model))


# ---------------------------------------------------------------------- broken files
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_gpt2(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("keep", [0, 5, 8, 100, -3])
def test_truncated_file_is_a_clear_error(exported, tmp_path, keep):
    _, out_dir = exported
    data = (out_dir / "model.safetensors").read_bytes()
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(data[:keep])
    with pytest.raises(ValueError) as err:
        load_gpt2(bad)
    message = str(err.value)
    assert str(bad) in message and "\n" not in message
    assert any(word in message for word in ("truncated", "short", "bytes", "header", "end"))


def test_corrupted_header_is_a_clear_error(exported, tmp_path):
    _, out_dir = exported
    data = bytearray((out_dir / "model.safetensors").read_bytes())
    data[8:20] = b"\x00not json!!\xff"
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=str(bad).replace(".", r"\.")):
        load_gpt2(bad)


def test_a_file_that_is_not_gpt2(tmp_path):
    path = tmp_path / "model.safetensors"
    safetensors.save_file({"weight": np.zeros((2, 2), dtype=np.float32)}, path)
    with pytest.raises(ValueError, match="no 'wte.weight' tensor"):
        load_gpt2(path)


@pytest.mark.parametrize("key", [
    "transformer.wpe.weight", "transformer.h.1.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias",
    "transformer.h.0.mlp.c_proj.bias", "transformer.h.1.ln_2.weight", "transformer.ln_f.bias",
])
def test_a_missing_tensor_is_named(exported, tmp_path, key):
    _, out_dir = exported
    path = rewrite(out_dir, tmp_path / "missing", lambda t: t.pop(key))
    with pytest.raises(ValueError, match=key.replace("transformer.", "").replace(".", r"\.")):
        load_gpt2(path)


def test_missing_blocks_are_reported(exported, tmp_path):
    _, out_dir = exported
    path = rewrite(out_dir, tmp_path / "gap", lambda t: [t.pop(k) for k in list(t) if ".h.0." in k])
    with pytest.raises(ValueError, match="blocks h.0 ... h.N are missing or incomplete"):
        load_gpt2(path)


def test_wrong_shapes_are_reported(exported, tmp_path):
    _, out_dir = exported
    path = rewrite(out_dir, tmp_path / "shape",
                   lambda t: t.update({"transformer.h.0.mlp.c_fc.bias": np.zeros(5, dtype=np.float32)}))
    with pytest.raises(ValueError, match=r"ff\.layers\.0\.bias"):
        load_gpt2(path)


@pytest.mark.parametrize("kind", ["rope", "alibi", "t5", "none"])
def test_only_learned_positions_can_be_exported(tmp_path, kind):
    with pytest.raises(ValueError, match=f"learned position embeddings only; this model uses '{kind}'"):
        export_hf(random_model(pos_emb=kind), tmp_path / "x")
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------- Hugging Face transformers
@pytest.fixture(scope="module")
def hf():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    return torch, transformers


@pytest.mark.parametrize("tied", [True, False])
def test_load_a_transformers_gpt2(hf, tmp_path, tied):
    torch, transformers = hf
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=12, n_layer=2, n_head=3,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=tied,
                                     bos_token_id=None, eos_token_id=None)
    torch.manual_seed(0)
    theirs = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in theirs.parameters():   # the default init (std 0.02) would make every logit ~0
            p.normal_(0.0, 0.3)
    theirs.save_pretrained(tmp_path, safe_serialization=True)
    ours = load_gpt2(tmp_path / "model.safetensors")
    assert (ours.out_head.weight is ours.tok_emb.weight) == tied
    ids = np.random.default_rng(0).integers(0, 50, (2, 16))
    with torch.no_grad():
        expected = theirs(torch.from_numpy(ids)).logits.numpy()
    assert np.abs(expected).max() > 1
    np.testing.assert_allclose(logits(ours, ids), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tied,qkv_bias", [(False, False), (True, True)])
def test_transformers_loads_an_export(hf, tmp_path, tied, qkv_bias):
    torch, transformers = hf
    ours = random_model(tied=tied, qkv_bias=qkv_bias)
    export_hf(ours, tmp_path)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert (theirs.lm_head.weight.data_ptr() == theirs.transformer.wte.weight.data_ptr()) == tied
    with torch.no_grad():
        got = theirs(torch.from_numpy(IDS)).logits.numpy()
    np.testing.assert_allclose(got, logits(ours), atol=1e-4, rtol=1e-4)
