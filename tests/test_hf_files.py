"""gpt.hf without torch: config.json translation, the name tables, BF16/F16 conversion into arrays,
sharded checkpoints and the error messages."""
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt import safetensors as sf
from gpt.architectures import MINI_PRESETS, DecoderConfig
from gpt.hf import config as hfc
from gpt.hf import eos_token_ids, load_model
from gpt.hf.files import INDEX, SINGLE, Checkpoint, read_index, write_checkpoint
from gpt.hf.names import FUSED_EXPERTS, TABLES, name_pairs

# ---------------------------------------------------------------- published config.json files (as on the hub)
QWEN3_06B = {
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 1024, "initializer_range": 0.02,
    "intermediate_size": 3072, "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936}
LLAMA32_1B = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 128000,
    "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
    "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
    "vocab_size": 128256}
GEMMA3_270M = {
    "architectures": ["Gemma3ForCausalLM"], "_sliding_window_pattern": 6, "attention_bias": False,
    "attention_dropout": 0.0, "attn_logit_softcapping": None, "bos_token_id": 2, "eos_token_id": 1,
    "final_logit_softcapping": None, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 640,
    "initializer_range": 0.02, "intermediate_size": 2048,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 3, "max_position_embeddings": 32768,
    "model_type": "gemma3_text", "num_attention_heads": 4, "num_hidden_layers": 18, "num_key_value_heads": 1,
    "pad_token_id": 0, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000.0,
    "rope_scaling": None, "rope_theta": 1000000.0, "sliding_window": 512, "torch_dtype": "bfloat16",
    "use_bidirectional_attention": False, "use_cache": True, "vocab_size": 262144}


@pytest.mark.parametrize("config, preset", [(QWEN3_06B, "qwen3-0.6b"), (LLAMA32_1B, "llama3.2-1b"),
                                            (GEMMA3_270M, "gemma3-270m")])
def test_published_configs_translate_to_the_presets(config, preset):
    ours = DecoderConfig(**hfc.decoder_fields(config))
    assert ours == DecoderConfig.from_preset(preset)


def test_transformers5_rope_parameters_and_older_rope_theta_give_the_same_config():
    new = dict(LLAMA32_1B)
    scaling = new.pop("rope_scaling")
    new["rope_parameters"] = {**scaling, "rope_theta": new.pop("rope_theta")}
    assert hfc.decoder_fields(new) == hfc.decoder_fields(LLAMA32_1B)
    gemma = {k: v for k, v in GEMMA3_270M.items() if k not in ("rope_theta", "rope_local_base_freq", "rope_scaling",
                                                                 "layer_types")}
    gemma["rope_parameters"] = {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}}
    assert hfc.decoder_fields(gemma) == hfc.decoder_fields(GEMMA3_270M)   # layer_types from the pattern of 6


def test_written_configs_read_back_as_the_same_config():
    for name in ("qwen3-0.6b", "llama3.2-1b", "gemma3-270m", "qwen3-30b-a3b"):
        cfg = DecoderConfig.from_preset(name)
        back = DecoderConfig(**hfc.decoder_fields(json.loads(json.dumps(hfc.hf_config(cfg)))))
        assert back == DecoderConfig(**{**cfg.to_dict(), "router_aux_loss_coef": back.router_aux_loss_coef}), name


def test_qwen3_moe_keys_and_transformers5_num_local_experts():
    moe = dict(QWEN3_06B, model_type="qwen3_moe", num_experts=128, num_experts_per_tok=8, moe_intermediate_size=768,
               norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[])
    fields = hfc.decoder_fields(moe)
    assert (fields["arch"], fields["n_experts"], fields["n_experts_per_token"], fields["moe_hidden_dim"],
            fields["norm_topk_prob"]) == ("qwen3-moe", 128, 8, 768, True)
    renamed = {k: v for k, v in moe.items() if k != "num_experts"} | {"num_local_experts": 128}
    assert hfc.decoder_fields(renamed) == fields


@pytest.mark.parametrize("change, message", [
    ({"model_type": "mistral"}, "model_type 'mistral' is not supported"),
    ({"attention_bias": True}, "attention_bias is true"),
    ({"hidden_act": "gelu"}, "activation is 'gelu'"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "RoPE type is 'yarn'"),
    ({"use_sliding_window": True}, "use_sliding_window"),
    ({"hidden_size": None}, "'hidden_size' is missing"),
    ({"model_type": "qwen3_moe", "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8,
      "mlp_only_layers": [0]}, "dense inside a mixture-of-experts"),
    ({"model_type": "qwen3_moe", "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8,
      "decoder_sparse_step": 2}, "dense inside a mixture-of-experts"),
])
def test_unsupported_configs_are_refused_in_one_line_naming_the_file(change, message):
    with pytest.raises(ValueError, match=message) as e:
        hfc.decoder_fields({**QWEN3_06B, **change}, where="x/config.json")
    assert str(e.value).startswith("x/config.json: ") and "\n" not in str(e.value)


def test_gemma_soft_capping_is_refused():
    with pytest.raises(ValueError, match="final_logit_softcapping is 30.0"):
        hfc.decoder_fields({**GEMMA3_270M, "final_logit_softcapping": 30.0})


# ---------------------------------------------------------------- name tables
@pytest.mark.parametrize("arch", sorted(TABLES))
def test_each_name_appears_once_and_experts_fill_every_slice(arch):
    pairs = name_pairs(arch, n_layers=3, n_experts=4 if arch == "qwen3-moe" else 0)
    theirs = [t for t, _, _ in pairs]
    ours = [(o, e) for _, o, e in pairs]
    assert len(set(theirs)) == len(theirs) and len(set(ours)) == len(ours)
    assert all("{" not in t and "{" not in o for t, o, _ in pairs)
    if arch == "qwen3-moe":
        for p in ("fc1", "fc2", "fc3"):
            assert sorted(e for o, e in ours if o == f"trf_blocks.2.ff.{p}.weight") == [0, 1, 2, 3]
    tied = name_pairs(arch, 3, 4 if arch == "qwen3-moe" else 0, tied=True)
    assert [t for t, _, _ in pairs if t not in {x for x, _, _ in tied}] == ["lm_head.weight"]


def test_fused_experts_cover_the_three_stacked_projections():
    targets = {ours for parts in FUSED_EXPERTS.values() for ours, _ in parts}
    per_expert = {ours for _, ours, e in name_pairs("qwen3-moe", 1, 2) if e is not None}
    assert {t.format(i=0) for t in targets} == per_expert


# ---------------------------------------------------------------- BF16 / F16 into existing arrays
@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=64))
def test_bf16_is_read_into_float32_as_the_bits_shifted_left_16(bits):
    stored = np.asarray(bits, dtype=np.uint16)
    out = np.empty(len(bits), dtype=np.float32)
    sf.read_float_into(stored, "BF16", out)
    assert np.array_equal(out.view(np.uint32), stored.astype(np.uint32) << 16)


def test_safe_open_read_into_converts_each_dtype_without_changing_the_target(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5)).astype(np.float32)
    sf.save_file({"bf": x, "f16": x.astype(np.float16), "f32": x, "f64": x.astype(np.float64)},
                 tmp_path / "m.safetensors", dtypes={"bf": "BF16"})
    bits = sf.float32_to_bfloat16_bits(x)
    expected = {"bf": (bits.astype(np.uint32) << 16).view(np.float32), "f16": x.astype(np.float16).astype(np.float32),
                "f32": x, "f64": x}
    params = np.zeros((2, 6, 5), dtype=np.float32)
    with sf.safe_open(tmp_path / "m.safetensors") as f:
        for name, want in expected.items():
            target = params[1]                       # a slice of a stacked parameter, filled in place
            f.read_into(name, target)
            assert target.dtype == np.float32 and np.array_equal(params[1], want), name
            assert not params[0].any()
        with pytest.raises(ValueError, match=r"'bf' has shape \[6, 5\] but the array it should fill has shape \[5, 6\]"):
            f.read_into("bf", np.empty((5, 6), np.float32))


# ---------------------------------------------------------------- single and sharded checkpoints
def tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {f"t{i}": rng.standard_normal((8, 4 + i)).astype(np.float32) for i in range(5)}


def test_sharded_checkpoint_round_trip_and_index(tmp_path):
    ts = tensors()
    files = write_checkpoint(ts, tmp_path, max_shard_bytes=300)
    assert files[-1].name == INDEX and len(files) > 2 and not (tmp_path / SINGLE).exists()
    weight_map = read_index(tmp_path / INDEX)
    assert set(weight_map) == set(ts) and set(weight_map.values()) == {f.name for f in files[:-1]}
    assert json.loads((tmp_path / INDEX).read_text())["metadata"]["total_size"] == sum(a.nbytes for a in ts.values())
    for f in files[:-1]:
        assert f.stat().st_size < 300 + 400 or len(sf.read_header(f).tensors) == 1   # (plus its header)
    with Checkpoint(tmp_path) as ck:
        assert ck.names() == sorted(ts)
        for name, a in ts.items():
            out = np.empty_like(a)
            ck.read_into(name, out)
            assert np.array_equal(out, a)
    write_checkpoint(ts, tmp_path)            # rewritten as one file: the stale index goes
    assert not (tmp_path / INDEX).exists() and (tmp_path / SINGLE).is_file()


def test_bf16_checkpoint_is_rounded_to_nearest_even(tmp_path):
    ts = tensors(1)
    write_checkpoint(ts, tmp_path, dtype="BF16")
    with Checkpoint(tmp_path) as ck:
        out = np.empty_like(ts["t0"])
        ck.read_into("t0", out)
    assert np.array_equal(out.view(np.uint32), sf.float32_to_bfloat16_bits(ts["t0"]).astype(np.uint32) << 16)


def test_checkpoint_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(ValueError, match="no model.safetensors or model.safetensors.index.json"):
        Checkpoint(tmp_path)
    write_checkpoint(tensors(), tmp_path, max_shard_bytes=300)
    index = json.loads((tmp_path / INDEX).read_text())
    shard = sorted(set(index["weight_map"].values()))[-1]
    (tmp_path / shard).rename(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match=f"names the shard {shard}, which is not in"):
        Checkpoint(tmp_path)
    (tmp_path / "elsewhere").rename(tmp_path / shard)
    bad = dict(index, weight_map={**index["weight_map"], "ghost": shard})
    (tmp_path / INDEX).write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=f"puts 'ghost' in {shard}, which has no such tensor"):
        Checkpoint(tmp_path)
    (tmp_path / INDEX).write_text(json.dumps({"weight_map": {"t0": "../outside.safetensors"}}))
    with pytest.raises(ValueError, match="is not a file name in the same folder"):
        Checkpoint(tmp_path)
    (tmp_path / INDEX).write_text(json.dumps(index))
    with Checkpoint(tmp_path) as ck:
        with pytest.raises(ValueError, match="the tensor 'nope' is missing"):
            ck.read_into("nope", np.empty(1, np.float32))


def test_load_model_errors(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        load_model(tmp_path / "missing")
    with pytest.raises(ValueError, match="config.json: not found"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(ValueError, match="model_type 't5' is not supported .*gpt2, llama, qwen3"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{oops")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        load_model(tmp_path)


def test_eos_ids_come_from_generation_config_first(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "eos_token_id": 7}))
    assert eos_token_ids(tmp_path) == [7]
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [128001, 128008, 128009]}))
    assert eos_token_ids(tmp_path) == [128001, 128008, 128009]


@pytest.mark.parametrize("arch", sorted(MINI_PRESETS))
def test_a_model_built_without_init_then_loaded_equals_the_model_saved(arch, tmp_path):
    import minigrad as mg
    from gpt.architectures import build_model
    from gpt.hf import save_model

    mg.manual_seed(5)
    cfg = DecoderConfig.from_preset(MINI_PRESETS[arch])
    saved = build_model(cfg)
    save_model(saved, tmp_path / "m")
    mg.manual_seed(6)
    after_seed = mg.random.default_generator().bit_generator.state
    empty = build_model(cfg, init=False)
    assert mg.random.default_generator().bit_generator.state == after_seed      # nothing drawn
    assert [(n, p.shape, p.dtype) for n, p in empty.named_parameters()] == \
        [(n, p.shape, p.dtype) for n, p in saved.named_parameters()]
    loaded = load_model(tmp_path / "m")
    ours, theirs = dict(loaded.named_parameters()), dict(saved.named_parameters())
    assert ours.keys() == theirs.keys()
    for name, p in theirs.items():
        np.testing.assert_array_equal(ours[name].data, p.data, err_msg=name)
    ids = np.random.default_rng(1).integers(0, cfg.vocab_size, (2, 6))
    saved.eval()
    with mg.no_grad():
        np.testing.assert_array_equal(loaded(ids).data, saved(ids).data)


def test_a_parameter_no_tensor_fills_is_refused_not_left_uninitialised(tmp_path, monkeypatch):
    import minigrad as mg
    import gpt.hf as hf
    from gpt.architectures import build_model

    mg.manual_seed(5)
    hf.save_model(build_model("qwen3-mini"), tmp_path / "m")
    full = hf.name_pairs
    # a name table that forgets the first block's k_norm (and lets its tensor go unread)
    monkeypatch.setattr(hf, "name_pairs", lambda *a, **k: [p for p in full(*a, **k)
                                                           if p[1] != "trf_blocks.0.att.k_norm.weight"])
    with pytest.raises(ValueError, match=r"no tensor fills the parameter\(s\) trf_blocks\.0\.att\.k_norm\.weight"):
        hf.load_model(tmp_path / "m")
