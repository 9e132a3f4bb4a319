"""``python -m gpt pretrain --arch llama|qwen3|qwen3-moe|gemma3``: each family trains its CPU-sized
preset (shrunk here to tiny sizes), saves a checkpoint that rebuilds the right class, generates,
and resumes bit-exactly after Ctrl-C."""
import json
import random

import numpy as np
import pytest

from gpt.architectures import DecoderConfig
from gpt.checkpoint import load_checkpoint, save_checkpoint
from gpt.architectures import build_model
from tests.cli_helpers import assert_pretrain_resumes_exactly, check_one_line_error, run_cli, run_subprocess

TINY = ["--context-length", "16", "--emb-dim", "32", "--n-layers", "2", "--n-heads", "2", "--vocab-size", "300",
        "--batch-size", "2", "--eval-batches", "1", "--warmup", "1"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    rng = random.Random(1)
    words = "a small bird sang in the old tree by the river while the cat slept on the warm red mat".split()
    lines = [" ".join(rng.choice(words) for _ in range(10)).capitalize() + "." for _ in range(90)]
    path = tmp_path_factory.mktemp("text") / "birds.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("arch,cls", [("llama", "Llama3Model"), ("qwen3", "Qwen3Model"),
                                      ("qwen3-moe", "Qwen3Model"), ("gemma3", "Gemma3Model")])
def test_pretrain_each_family_in_a_subprocess_then_generate(arch, cls, text_file, tmp_path):
    code, stdout, stderr = run_subprocess("pretrain", "--arch", arch, *TINY, "--text", text_file, "--steps", 2,
                                          "--eval-every", 2, "--out", tmp_path / "run", "--prompt", "The cat")
    assert code == 0, stderr
    assert f"model: {arch}, 2 layers, 2 heads" in stdout and "validation loss" in stdout
    ck = load_checkpoint(tmp_path / "run")
    assert type(ck.model).__name__ == cls and ck.config.arch == arch and ck.config.emb_dim == 32
    assert ck.info["settings"]["arch"] == arch
    code, out, err = run_cli("generate", "--checkpoint", tmp_path / "run", "--prompt", "The cat",
                             "--max-new-tokens", 20, "--seed", 3)
    assert code == 0, err
    assert out.strip()


def test_interrupted_and_resumed_moe_run_equals_an_uninterrupted_one(text_file, tmp_path, monkeypatch):
    """qwen3-moe with dropout and the router's load-balancing loss: Ctrl-C at step 2, resume to 4."""
    args = ["pretrain", "--arch", "qwen3-moe", *TINY, "--drop-rate", "0.1", "--text", text_file,
            "--eval-every", 3, "--steps", 4, "--quiet"]
    assert_pretrain_resumes_exactly(args, tmp_path, monkeypatch, "trf_blocks.0.ff.fc1.weight")


def test_pretrain_arch_bad_combinations_are_one_line_errors(text_file, tmp_path):
    code, _, stderr = run_cli("pretrain", "--arch", "llama", "--pos-emb", "alibi", "--text", text_file,
                              "--out", tmp_path / "a")
    check_one_line_error(code, stderr, "--pos-emb", "rotary")
    code, _, stderr = run_cli("pretrain", "--arch", "llama", "--config", "mini", "--text", text_file,
                              "--out", tmp_path / "b")
    check_one_line_error(code, stderr, "unknown config", "llama-mini")
    code, _, stderr = run_cli("pretrain", "--n-kv-heads", "2", "--text", text_file, "--out", tmp_path / "c")
    check_one_line_error(code, stderr, "--n-kv-heads")
    code, _, stderr = run_cli("pretrain", "--arch", "qwen3", *TINY, "--n-kv-heads", "3", "--text", text_file,
                              "--out", tmp_path / "d")
    check_one_line_error(code, stderr, "multiple of n_kv_heads")


def test_list_configs_shows_every_family():
    code, out, _ = run_cli("pretrain", "--list-configs")
    assert code == 0
    for name in ("mini", "llama3.2-1b", "qwen3-30b-a3b", "gemma3-270m", "gemma3-mini"):
        assert name in out


def test_checkpoint_round_trip_rebuilds_the_family(tmp_path):
    cfg = DecoderConfig.from_preset("gemma3-mini", vocab_size=40, emb_dim=32, n_layers=2, context_length=16,
                                    layer_types=["sliding_attention", "full_attention"])
    model = build_model(cfg)
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.1
    save_checkpoint(tmp_path / "ck", model, info={"note": "x"})
    ck = load_checkpoint(tmp_path / "ck")
    assert type(ck.model) is type(model) and ck.config == cfg
    assert ck.model.out_head.weight is ck.model.tok_emb.weight
    ids = rng.integers(0, 40, (2, 16))
    np.testing.assert_array_equal(ck.model(ids).data, model(ids).data)
    config = json.loads((tmp_path / "ck" / "step-000000" / "config.json").read_text())
    assert config["model"]["arch"] == "gemma3"
