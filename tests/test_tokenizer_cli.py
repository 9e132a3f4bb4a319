"""``python -m gpt train-tokenizer`` and ``python -m gpt tokenize``."""
import re
import subprocess
import sys

import pytest

from gpt.tokenizer import BPETokenizer
from tests.cli_helpers import check_one_line_error, run_cli, subprocess_env

CORPUS = "The quick brown fox jumps over the lazy dog. " * 40 + "Naïve café 😀<|endoftext|>The end.\n"


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def test_train_then_tokenize(tmp_path, corpus):
    out_path = tmp_path / "tok.bpe"
    code, out, err = run_cli("train-tokenizer", "--input", str(corpus), "--vocab-size", "300",
                         "--out", str(out_path), "--gpt2-out", str(tmp_path), "--quiet")
    assert code == 0, err
    assert "learned 43 merges" in out and "first 10 merges" in out
    tok = BPETokenizer.load(out_path)
    assert tok.n_vocab == 300 and tok.eot_token == 299
    assert BPETokenizer.from_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe").merges == tok.merges

    code, out, err = run_cli("tokenize", "--tokenizer", str(out_path), "--ids-only", "The quick fox<|endoftext|>",
                         "--allow-special")
    assert code == 0, err
    assert [int(x) for x in out.split()] == tok.encode("The quick fox<|endoftext|>", allowed_special="all")

    code, out, err = run_cli("tokenize", "--tokenizer", str(out_path), "fox\n")
    lines = out.splitlines()
    assert lines[0] == f"{len(tok.encode('fox' + chr(10)))} tokens, 4 characters"
    assert lines[-1].endswith('"\\n"')  # control characters are shown escaped

    code, out, err = run_cli("tokenize", "--tokenizer", str(out_path), "--merges", "2")
    assert code == 0 and out.splitlines() == tok.describe_merges(2)
    code, out, err = run_cli("tokenize", "--tokenizer", str(out_path), "--merges", "-1")
    assert code == 2 and "--merges" in err and "Traceback" not in err


def test_tokenize_reads_a_file_and_a_gpt2_folder(tmp_path, corpus, reference_data):
    code, out, err = run_cli("tokenize", "--tokenizer", str(reference_data / "gpt2"), "--ids-only",
                         "--file", str(reference_data / "the-verdict.txt"))
    assert code == 0, err
    assert len(out.split()) == 5145


@pytest.fixture
def run_with_two_steps(tmp_path):
    """A checkpoint folder as pretraining leaves it: step 1 and step 2 (``latest``), each with its
    own tokenizer, so that which one was read shows in the ids."""
    from gpt.checkpoint import save_checkpoint
    from gpt.model import GPTConfig, GPTModel

    run = tmp_path / "run"
    tokenizers = [BPETokenizer.train(CORPUS, size, verbose=False) for size in (270, 300)]
    for step, tok in enumerate(tokenizers, 1):
        model = GPTModel(GPTConfig(vocab_size=tok.n_vocab, context_length=8, emb_dim=8, n_heads=2, n_layers=1))
        save_checkpoint(run, model, tokenizer=tok, step=step)
    return run, tokenizers


def test_tokenize_with_a_checkpoints_tokenizer(run_with_two_steps):
    run, (first, newest) = run_with_two_steps
    text = "The quick brown fox"
    assert first.encode(text) != newest.encode(text)
    for where, tok in ((run, newest), (run / "step-000002", newest), (run / "step-000001", first)):
        code, out, err = run_cli("tokenize", "--tokenizer", str(where), "--ids-only", text)
        assert code == 0, err
        assert [int(x) for x in out.split()] == tok.encode(text), where


def test_a_checkpoint_without_a_usable_tokenizer_is_one_line(run_with_two_steps):
    run, _ = run_with_two_steps
    (run / "step-000001" / "tokenizer.txt").unlink()   # as if trained with GPT-2's vocabulary
    (run / "step-000002" / "tokenizer.txt").write_text("not a tokenizer\n", encoding="utf-8")
    for where, message in ((run / "step-000001", "has no tokenizer.txt"), (run, "step-000002"),
                           (run / "step-000002", "tokenizer.txt")):
        code, _, err = run_cli("tokenize", "--tokenizer", str(where), "hi")
        check_one_line_error(code, err, message)
        assert code == 2 and err.count("\n") == 1, err
    (run / "latest").write_text("step-000009\n")
    code, _, err = run_cli("tokenize", "--tokenizer", str(run), "hi")
    check_one_line_error(code, err, "step-000009", "no model.safetensors")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["train-tokenizer", "--input", "MISSING.txt", "--vocab-size", "300", "--out", "OUT"], "input file not found"),
        (["train-tokenizer", "--input", "CORPUS", "--vocab-size", "200", "--out", "OUT"], "too small"),
        (["train-tokenizer", "--input", "CORPUS", "--vocab-size", "257", "--out", "OUT", "--special", "<a>", "<b>"], "at least 258"),
        (["train-tokenizer", "--input", "EMPTY", "--vocab-size", "300", "--out", "OUT"], "empty"),
        (["train-tokenizer", "--input", "CORPUS", "--vocab-size", "300", "--out", "NODIR/x.bpe"], "does not exist"),
        (["tokenize", "--tokenizer", "MISSING.bpe", "hi"], "tokenizer not found"),
        (["tokenize", "--tokenizer", "CORPUS", "hi"], "not a tokenizer file"),
        (["tokenize", "--tokenizer", "TMP", "hi"], "without encoder.json"),
        (["tokenize", "--tokenizer", "TOK"], "nothing to encode"),
        (["tokenize", "--tokenizer", "TOK", "a<|endoftext|>"], "allowed_special"),
        (["tokenize", "--tokenizer", "TOK", "--file", "MISSING.txt"], "input file not found"),
    ],
)
def test_errors_are_one_line(tmp_path, corpus, argv, message):
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    BPETokenizer.train(CORPUS, 270, verbose=False).save(tmp_path / "tok.bpe")
    names = {"CORPUS": corpus, "MISSING.txt": tmp_path / "missing.txt", "OUT": tmp_path / "out.bpe",
             "EMPTY": tmp_path / "empty.txt", "NODIR/x.bpe": tmp_path / "nodir" / "x.bpe",
             "MISSING.bpe": tmp_path / "missing.bpe", "TMP": tmp_path, "TOK": tmp_path / "tok.bpe"}
    code, out, err = run_cli(*[str(names.get(a, a)) for a in argv])
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1, err


def test_help_is_fast_and_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "gpt", "--help"], capture_output=True, text=True, timeout=60,
                         env=subprocess_env())
    assert out.returncode == 0
    assert re.search(r"^\s+train-tokenizer\b", out.stdout, re.M) and re.search(r"^\s+tokenize\b", out.stdout, re.M)
    # --help must not import the tokenizer machinery (regex tables) or numpy
    probe = ("import sys; from gpt.cli import build_parser; build_parser(); "
             "print([m for m in ('gpt.tokenizer.bpe', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert out.stdout.strip() == "[]", out.stderr
