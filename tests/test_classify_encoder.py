"""Classification with an encoder (gpt/finetune/classify_encoder.py), ``finetune-classify --arch
bert`` and ``python -m gpt experiment encoder-vs-decoder``: the pooled logits ignore padding; the
WordPiece vocabulary made from the texts covers them; the command trains from scratch and from a
sentence-transformers folder, saves a classifier that ``classify`` reads, and resumes after Ctrl-C
to the weights of an uninterrupted run; the experiment's fast mode writes its table."""
import csv
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from gpt.architectures.bert import pool
from gpt.experiments import encoder_decoder
from gpt.finetune.classify import ClassifierTrainer, classify, load_classifier
from gpt.finetune.classify_encoder import BertClassifier, small_bert_config, word_tokenizer
from gpt.safetensors import load_file
from tests.cli_helpers import check_one_line_error, interrupt_at, run_cli, weights
from tests.test_rag import write_encoder


@pytest.fixture(scope="module")
def tiny():
    mg.manual_seed(3)
    cfg = small_bert_config(vocab_size=20, context_length=12, emb_dim=8, n_layers=1, n_heads=2, drop_rate=0.0)
    return {p: BertClassifier(cfg, 3, p).eval() for p in ("cls", "mean")}


@settings(max_examples=15)
@given(rows=st.lists(st.lists(st.integers(1, 19), min_size=1, max_size=6), min_size=1, max_size=3),
       extra=st.integers(0, 5), pooling=st.sampled_from(["cls", "mean"]))
def test_logits_are_the_head_of_the_pooled_real_tokens_whatever_the_padding(tiny, rows, extra, pooling):
    model = tiny[pooling]
    width = max(map(len, rows))
    ids = np.zeros((len(rows), width + extra), dtype=np.int64)
    for r, row in zip(ids, rows):
        r[:len(row)] = row
    with mg.no_grad():
        got = model(ids).data
        assert got.shape == (len(rows), 1, 3) and got.dtype == np.float32
        for i, row in enumerate(rows):           # each text alone, unpadded: the direct formula
            hidden = model.bert(np.array([row])).data[0]                         # (T, d)
            vector = hidden[0] if pooling == "cls" else hidden.mean(axis=0)
            want = vector @ model.out_head.weight.data.T + model.out_head.bias.data
            np.testing.assert_allclose(got[i, 0], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(pool(model.bert(ids, (ids != 0)), ids != 0, pooling).data @ model.out_head.weight.data.T
                                   + model.out_head.bias.data, got[:, 0], rtol=1e-5, atol=1e-6)


def test_word_tokenizer_knows_the_words_and_spells_out_the_rest():
    texts = ["Hello there, General Kenobi!", "hello again"]
    tok = word_tokenizer(texts)
    ids = tok.encode("hello there kenobi")
    assert ids[0] == tok.token_to_id("[CLS]") and ids[-1] == tok.token_to_id("[SEP]") and len(ids) == 5
    assert tok.token_to_id("[PAD]") == 0 and tok.token_to_id("general") is not None
    unseen = tok.encode("hot")                               # letters seen, word not: spelled out, no [UNK]
    assert len(unseen) == 5 and tok.token_to_id("[UNK]") not in unseen
    assert tok.decode(tok.encode(texts[0]), skip_special_tokens=True) == "hello there, general kenobi!"
    assert len(word_tokenizer(texts, max_words=1).get_vocab()) == len(tok.get_vocab()) - 4   # 5 words, 1 kept


FAST = ("--demo", "--batch-size", 16, "--eval-every", 20, "--eval-batches", 1, "--seed", 5)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    out = tmp_path_factory.mktemp("bert-scratch")
    code, stdout, stderr = run_cli("finetune-classify", "--arch", "bert", "--pooling", "mean", *FAST, "--epochs", 1,
                                   "--max-length", 24, "--out", out)
    assert code == 0, stderr
    return out, stdout


def test_from_scratch_learns_the_demo_data_and_classify_reads_the_checkpoint(scratch):
    out, stdout = scratch
    assert "a small BERT from scratch, mean pooling" in stdout
    assert "trainable parameters" in stdout and float(stdout.split("test accuracy ")[-1].rstrip("%\n")) >= 90
    ck = load_classifier(out)
    assert isinstance(ck.model, BertClassifier) and ck.model.pooling == "mean"
    assert ck.info["settings"]["trainable_blocks"] == "all" and ck.info["settings"]["lr"] == 1e-3
    texts = ["WINNER! Claim your FREE prize now, reply YES", "See you at lunch tomorrow?"]
    code, got, stderr = run_cli("classify", "--checkpoint", out, "--text", *texts)
    assert code == 0, stderr
    c = ck.info["classifier"]
    assert got.splitlines() == [classify(t, ck.model, ck.tokenizer, c["max_length"], c["pad_token_id"], c["labels"])
                                for t in texts] == ["spam", "ham"]


def test_ctrl_c_and_resume_reach_the_weights_of_the_uninterrupted_run(scratch, tmp_path, monkeypatch):
    args = ["finetune-classify", "--arch", "bert", "--pooling", "mean", *FAST, "--epochs", 1, "--max-length", 24,
            "--quiet", "--out", tmp_path]
    with monkeypatch.context() as m:
        interrupt_at(m, 30, ClassifierTrainer)
        code, _, stderr = run_cli(*args)
    assert code == 130 and "--resume" in stderr
    code, stdout, stderr = run_cli("finetune-classify", "--resume", tmp_path, "--quiet")
    assert code == 0, stderr
    straight, resumed = weights(scratch[0]), weights(tmp_path)
    assert list(straight) == list(resumed) and all(np.array_equal(straight[k], resumed[k]) for k in straight)
    assert stdout.strip() == scratch[1].strip().splitlines()[-1]


def test_from_a_sentence_transformers_folder_with_its_pooling(tmp_path):
    folder = write_encoder(tmp_path / "encoder")
    code, stdout, stderr = run_cli("finetune-classify", "--arch", "bert", "--hf", folder, *FAST, "--epochs", 1,
                                   "--max-length", 16, "--lr", 1e-3, "--out", tmp_path / "run")
    assert code == 0, stderr
    assert "mean pooling" in stdout                                   # the folder's 1_Pooling
    ck = load_classifier(tmp_path / "run")
    assert ck.info["settings"]["trainable_blocks"] == "1" and ck.model.cfg.emb_dim == 16
    # the encoder's embeddings were not trained (only the last block and the head are)
    original = load_file(folder / "model.safetensors")
    np.testing.assert_array_equal(ck.model.bert.tok_emb.weight.data, original["embeddings.word_embeddings.weight"])


@pytest.mark.parametrize("argv, words", [
    (["--arch", "bert", "--gpt2", "x.safetensors"], ["--arch bert", "--hf"]),
    (["--hf", "{tmp}"], ["--hf", "--arch bert"]),
    (["--arch", "bert", "--hf", "{tmp}/nothing"], ["nothing", "no such folder"]),
    (["--arch", "bert", "--hf", "{tmp}"], ["not a BERT folder"]),
    (["--gpt2", "x.safetensors", "--pooling", "cls"], ["--pooling", "--arch bert"]),
])
def test_bad_bert_options_are_one_line_errors(tmp_path, argv, words):
    code, _, stderr = run_cli("finetune-classify", "--demo", "--out", tmp_path / "o",
                              *[str(a).format(tmp=tmp_path) for a in argv])
    check_one_line_error(code, stderr, *words)


# ---------------------------------------------------------------------- the experiment
def test_first_last_task_labels_and_balance():
    examples = encoder_decoder.first_last_task(200, seed=1)
    assert sum(ex.label == "same" for ex in examples) == 100
    for ex in examples:
        words = ex.text.split()
        assert 8 <= len(words) <= 16 and set(words) <= set(encoder_decoder.WORDS)
        assert (words[0] == words[-1]) == (ex.label == "same")


def test_experiment_fast_mode_writes_every_task_and_model_and_reuses_them(tmp_path):
    code, stdout, stderr = run_cli("experiment", "encoder-vs-decoder", "--fast", "--out", tmp_path)
    assert code == 0, stderr
    with open(tmp_path / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["task"], r["model"]) for r in rows] == [(t, m) for t in encoder_decoder.TASKS
                                                       for m in encoder_decoder.MODELS]
    params = {(r["task"], r["model"]): int(r["parameters"]) for r in rows}
    for task in encoder_decoder.TASKS:       # the same budget: sizes within 2 % of each other
        sizes = [params[task, m] for m in encoder_decoder.MODELS]
        assert max(sizes) <= 1.02 * min(sizes)
    for r in rows:
        assert 0 <= float(r["accuracy"]) <= 1 and f"{100 * float(r['accuracy']):.1f} %" in stdout
    assert "| encoder-cls |" in stdout and "(always the commonest label)" in stdout
    before = {p: p.read_text() for p in tmp_path.glob("*/result.json")}
    code, stdout, stderr = run_cli("experiment", "encoder-vs-decoder", "--fast", "--out", tmp_path)
    assert code == 0 and stdout.count("not redone") == 8
    assert {p: p.read_text() for p in tmp_path.glob("*/result.json")} == before
    assert json.loads(next(iter(before.values())))["settings"] == encoder_decoder.FAST.to_dict()
    code, _, stderr = run_cli("experiment", "encoder-vs-decoder", "--out", tmp_path)
    check_one_line_error(code, stderr, "other settings")
