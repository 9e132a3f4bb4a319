"""gpt.hf against Hugging Face ``transformers``: tiny random models of each family, made and saved
here by transformers, load with the same logits (float32, 1e-4) and the same greedy ids; folders
written by ``save_model`` load back into transformers with the same logits.

Skipped when torch or transformers is missing.
"""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from gpt import hf  # noqa: E402
from gpt import safetensors as sf  # noqa: E402
from gpt.generate import generate  # noqa: E402
from gpt.model import GPTModel  # noqa: E402

ATOL = 1e-4
SMALL = dict(vocab_size=128, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=128, attn_implementation="eager")


def make(kind: str):
    """A tiny random transformers model of ``kind``, in float32 and eval mode."""
    torch.manual_seed(0)
    T = transformers
    if kind == "llama":      # with Llama 3's RoPE scaling, untied head
        cfg = T.LlamaConfig(**SMALL, rope_parameters={
            "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 32}, tie_word_embeddings=False)
        model = T.LlamaForCausalLM(cfg)
    elif kind == "qwen3":    # tied embeddings
        model = T.Qwen3ForCausalLM(T.Qwen3Config(**SMALL, tie_word_embeddings=True))
    elif kind in ("qwen3_moe", "qwen3_moe_unnormalised"):
        model = T.Qwen3MoeForCausalLM(T.Qwen3MoeConfig(
            **SMALL, num_experts=6, num_experts_per_tok=2, moe_intermediate_size=24,
            norm_topk_prob=kind == "qwen3_moe"))
    elif kind == "gemma3":   # sliding window 4 < the test sequences; both layer kinds
        model = T.Gemma3ForCausalLM(T.Gemma3TextConfig(
            **SMALL, sliding_window=4, query_pre_attn_scalar=24,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                             "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}}))
        with torch.no_grad():   # Gemma's norms start at w = 0 (a scale of 1): make them matter
            for name, p in model.named_parameters():
                if "norm" in name:
                    p.normal_(0.0, 0.3)
    elif kind == "gpt2":
        model = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=128, n_positions=64, n_embd=64, n_layer=2, n_head=4))
    else:
        raise ValueError(kind)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model.float().eval()


def hf_logits(model, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.as_tensor(ids)).logits.numpy()


def ours_logits(model, ids: np.ndarray) -> np.ndarray:
    import minigrad as mg

    with mg.no_grad():
        return model(ids).data


def token_ids(seed: int = 1, shape=(2, 12)) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 128, shape)


KINDS = ["llama", "qwen3", "qwen3_moe", "qwen3_moe_unnormalised", "gemma3"]
# how each is saved: plain, sharded (a small max_shard_size), or in bfloat16
SAVE = {"llama": {}, "qwen3": {"max_shard_size": "40KB"}, "qwen3_moe": {}, "qwen3_moe_unnormalised": {},
        "gemma3": {"bfloat16": True}}


@pytest.fixture(scope="module", params=KINDS)
def pair(request, tmp_path_factory):
    """(kind, transformers model, our model loaded from its save_pretrained folder, the folder)."""
    kind = request.param
    model = make(kind)
    folder = tmp_path_factory.mktemp(kind)
    how = SAVE[kind]
    if how.get("bfloat16"):
        model.to(torch.bfloat16).save_pretrained(folder)
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                                  attn_implementation="eager").eval()
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
    else:
        model.save_pretrained(folder, **{k: v for k, v in how.items() if k == "max_shard_size"})
    return kind, model, hf.load_model(folder), folder


def test_the_saved_folders_are_what_each_case_claims(pair):
    kind, _, ours, folder = pair
    if SAVE[kind].get("max_shard_size"):
        assert (folder / "model.safetensors.index.json").is_file()
        assert len(list(folder.glob("model-*-of-*.safetensors"))) > 1
    if SAVE[kind].get("bfloat16"):
        header = sf.read_header(folder / "model.safetensors")
        assert {t.dtype for t in header.tensors.values()} == {"BF16"}
    assert all(p.data.dtype == np.float32 for p in ours.parameters())
    assert ours.cfg.arch == {"qwen3_moe_unnormalised": "qwen3-moe", "qwen3_moe": "qwen3-moe"}.get(kind, kind)


def test_logits_match_transformers(pair):
    _, theirs, ours, _ = pair
    ids = token_ids()
    got, want = ours_logits(ours, ids), hf_logits(theirs, ids)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_greedy_ids_match_transformers_cached_and_uncached_past_the_window(pair):
    kind, theirs, ours, _ = pair
    prompt = token_ids(2, (1, 6))
    new = 14                                   # 20 tokens: far past Gemma's window of 4
    with torch.no_grad():
        want = theirs.generate(torch.as_tensor(prompt), do_sample=False, max_new_tokens=new,
                               min_new_tokens=new).numpy()
    for use_cache in (True, False):
        got = generate(ours, prompt, new, temperature=0.0, use_cache=use_cache)
        np.testing.assert_array_equal(got, want, err_msg=f"{kind}, use_cache={use_cache}")


def test_save_model_loads_back_into_transformers_with_the_same_logits(pair, tmp_path):
    kind, _, ours, _ = pair
    out = hf.save_model(ours, tmp_path / "saved", max_shard_bytes=60_000 if kind == "llama" else None)
    if kind == "llama":
        assert (out / "model.safetensors.index.json").is_file()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    ids = token_ids(3)
    np.testing.assert_allclose(hf_logits(theirs, ids), ours_logits(ours, ids), atol=ATOL, rtol=0)
    again = hf.load_model(out)                 # and back into ours, exactly
    for (name, p), (_, q) in zip(ours.named_parameters(), again.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def test_fused_expert_tensors_load_like_per_expert_ones(tmp_path):
    """transformers 5 keeps Qwen3-MoE's experts fused in memory (gate_up_proj, down_proj); a
    checkpoint written in that layout loads into the same model."""
    theirs = make("qwen3_moe")
    fused = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert "model.layers.0.mlp.experts.gate_up_proj" in fused
    sf.save_file(fused, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(theirs.config.to_json_string())
    ours = hf.load_model(tmp_path)
    ids = token_ids(4)
    np.testing.assert_allclose(ours_logits(ours, ids), hf_logits(theirs, ids), atol=ATOL, rtol=0)


def test_gpt2_loads_through_the_same_entry_point(tmp_path):
    theirs = make("gpt2")
    theirs.save_pretrained(tmp_path)
    ours = hf.load_model(tmp_path)
    assert isinstance(ours, GPTModel)
    ids = token_ids(5)
    np.testing.assert_allclose(ours_logits(ours, ids), hf_logits(theirs, ids), atol=ATOL, rtol=0)
    hf.save_model(ours, tmp_path / "back")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back").eval()
    np.testing.assert_allclose(hf_logits(back, ids), hf_logits(theirs, ids), atol=ATOL, rtol=0)


def test_a_missing_tensor_is_one_line_naming_it_and_the_file(tmp_path):
    theirs = make("qwen3")
    theirs.save_pretrained(tmp_path)
    tensors = sf.load_file(tmp_path / "model.safetensors")
    del tensors["model.layers.1.self_attn.k_norm.weight"]
    sf.save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(ValueError) as e:
        hf.load_model(tmp_path)
    message = str(e.value)
    assert "model.layers.1.self_attn.k_norm.weight" in message and "model.safetensors" in message
    assert "missing" in message and "\n" not in message


def test_a_tensor_of_the_wrong_shape_or_one_without_a_place_is_refused(tmp_path):
    theirs = make("llama")
    theirs.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "intermediate_size": 80}))
    with pytest.raises(ValueError, match=r"mlp.gate_proj.weight' has shape \[96, 64\], but the model built "
                                         r"from config.json expects \[80, 64\]"):
        hf.load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 2}))
    with pytest.raises(ValueError, match="holds tensors a llama model has no place for: model.layers.2"):
        hf.load_model(tmp_path)
