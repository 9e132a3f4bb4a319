"""``python -m gpt generate --hf DIR`` and ``evaluate --hf DIR``: a Hugging Face folder written by
gpt.hf.save_model (a tiny random Qwen3) with a tokenizer.json, and one-line errors for bad folders."""
import json
import math

import numpy as np
import pytest

import minigrad as mg
from gpt import hf
from gpt.architectures import DecoderConfig, build_model
from gpt.generate import generate
from gpt.tokenizer import HFTokenizer
from tests.cli_helpers import check_one_line_error, run_cli

TEXT = ("the cat sat on a mat and the dog ran to the red door while a bird sang in the old tree "
        "near my house by the river. ") * 20


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A tiny random Qwen3 saved by save_model, with a byte-level BPE tokenizer.json trained here."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    mg.manual_seed(0)
    cfg = DecoderConfig(arch="qwen3", vocab_size=tok.get_vocab_size(), context_length=64, emb_dim=32, n_heads=4,
                        n_kv_heads=2, head_dim=8, n_layers=2, hidden_dim=48, qk_norm=True, tie_weights=True)
    out = tmp_path_factory.mktemp("qwen3-tiny")
    hf.save_model(build_model(cfg), out)
    tok.save(str(out / "tokenizer.json"))
    return out


@pytest.fixture
def tokenizer(folder):
    return HFTokenizer.from_file(folder)


def test_generate_hf_prints_the_prompt_and_the_greedy_continuation(folder, tokenizer):
    code, out, err = run_cli("generate", "--hf", folder, "--prompt", "the cat", "--temperature", "0",
                             "--max-new-tokens", "8")
    assert code == 0, err
    model = hf.load_model(folder)
    ids = tokenizer.encode("the cat")
    want = generate(model, np.asarray([ids]), 8, temperature=0.0)[0].tolist()
    assert out == tokenizer.decode(want, skip_special_tokens=True) + "\n"


def test_generate_hf_stops_at_the_eos_ids_of_generation_config(folder, tokenizer, tmp_path):
    model = hf.load_model(folder)
    ids = tokenizer.encode("the dog")
    free = generate(model, np.asarray([ids]), 6, temperature=0.0)[0, len(ids):].tolist()
    stop = free[2]
    copy = tmp_path / "m"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    (copy / "generation_config.json").write_text(json.dumps({"eos_token_id": [99999, stop]}))
    code, out, err = run_cli("generate", "--hf", copy, "--prompt", "the dog", "--temperature", "0",
                             "--max-new-tokens", "6")
    assert code == 0, err
    upto = free[:free.index(stop)]
    assert out == tokenizer.decode(ids + upto, skip_special_tokens=True) + "\n"


def test_evaluate_hf_reports_the_mean_cross_entropy(folder, tokenizer, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT[:400])
    code, out, err = run_cli("evaluate", "--hf", folder, "--text", text)
    assert code == 0, err
    ids = np.asarray(tokenizer.encode(TEXT[:400]))
    model = hf.load_model(folder)
    window = min(64, len(ids) - 1)
    losses = []
    with mg.no_grad():
        for start in range(0, len(ids) - window, window):
            logits = model(ids[None, start:start + window]).data[0].astype(np.float64)
            targets = ids[start + 1:start + window + 1]
            logp = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
                - logits.max(-1, keepdims=True)
            losses.append(-logp[np.arange(window), targets].mean())
    assert f"loss {np.mean(losses):.4f}  perplexity {math.exp(np.mean(losses)):.2f}" in out


def test_bad_folders_are_one_line_errors(tmp_path, folder):
    code, _, err = run_cli("generate", "--hf", tmp_path / "nope", "--prompt", "x")
    check_one_line_error(code, err, "no such folder", "python -m gpt download")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli("generate", "--hf", empty, "--prompt", "x")
    check_one_line_error(code, err, "no config.json")
    (empty / "config.json").write_text(json.dumps({"model_type": "qwen3"}))
    code, _, err = run_cli("evaluate", "--hf", empty, "--text", "x.txt")
    check_one_line_error(code, err, "no tokenizer.json")
    (empty / "tokenizer.json").write_text("{}")    # read before the weights, so it is named first
    code, _, err = run_cli("generate", "--hf", empty, "--prompt", "x")
    check_one_line_error(code, err, "tokenizer.json: not a tokenizer.json")
    assert err.count("tokenizer.json:") == 1, err  # the path once
    (empty / "tokenizer.json").write_text((folder / "tokenizer.json").read_text())
    (empty / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    code, _, err = run_cli("generate", "--hf", empty, "--prompt", "x")
    check_one_line_error(code, err, "model_type 'mamba' is not supported", "config.json")
    (empty / "config.json").write_text((folder / "config.json").read_text())
    code, _, err = run_cli("generate", "--hf", empty, "--prompt", "x")
    check_one_line_error(code, err, "no model.safetensors or model.safetensors.index.json")
    code, _, err = run_cli("generate", "--hf", folder, "--vocab", empty, "--prompt", "x")
    check_one_line_error(code, err, "--vocab goes with --gpt2")
    code, _, err = run_cli("evaluate", "--hf", folder, "--data", empty)
    check_one_line_error(code, err, "with --hf give --text")
