"""Masked-language-model pretraining (gpt/mlm.py, ``python -m gpt pretrain --arch bert``): BERT's
masking rule in its proportions, the loss and its gradient only at the chosen positions, a short run in
a subprocess, checkpoints that rebuild the encoder, bit-exact resume after Ctrl-C, one-line errors."""
import math
import random

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn import functional as F
from gpt.architectures.bert import BertConfig, BertForMaskedLM
from gpt.checkpoint import load_checkpoint, save_checkpoint
from gpt.mlm import IGNORE, SPECIAL_TOKENS, BertTokenizer, add_cls_sep, mask_tokens, mlm_loss
from gpt.tokenizer import BPETokenizer
from tests.cli_helpers import assert_pretrain_resumes_exactly, check_one_line_error, run_cli, run_subprocess

TINY = ["--context-length", "16", "--emb-dim", "32", "--n-layers", "2", "--n-heads", "2", "--vocab-size", "300",
        "--batch-size", "2", "--eval-batches", "1", "--warmup", "1"]


def within_binomial(count: int, n: int, p: float, z: float = 5.0) -> bool:
    """count out of n draws of probability p, within z standard deviations sqrt(n p (1 - p)) of n p
    (z = 5: a correct rule fails with probability below 1e-6 per check)."""
    return abs(count - n * p) <= z * math.sqrt(n * p * (1 - p))


# ---------------------------------------------------------------------- the masking rule
def test_masking_rule_proportions():
    rng = np.random.default_rng(0)
    mask_id = 47                                              # of a 50-token vocabulary
    ordinary = np.arange(45)                                  # 45..49 are special
    ids = rng.integers(0, 45, (400, 500))
    ids[:, 0], ids[:, -1] = 46, 48                            # [CLS] ... [SEP]
    protected = np.isin(ids, [46, 48])
    inputs, targets = mask_tokens(ids, np.random.default_rng(123), mask_id, ordinary, protected)

    chosen = targets != IGNORE
    n = int((~protected).sum())
    assert not (chosen & protected).any()
    assert within_binomial(int(chosen.sum()), n, 0.15)
    np.testing.assert_array_equal(targets[chosen], ids[chosen])                 # targets: the original tokens
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])                # the rest is untouched
    m = int(chosen.sum())
    masked = chosen & (inputs == mask_id)
    kept = chosen & (inputs == ids)
    replaced = chosen & (inputs != mask_id) & (inputs != ids)
    # a random token equals the original one time in 45: it then counts as kept
    assert within_binomial(int(masked.sum()), m, 0.8)
    assert within_binomial(int(kept.sum()), m, 0.1 + 0.1 / len(ordinary))
    assert within_binomial(int(replaced.sum()), m, 0.1 * (1 - 1 / len(ordinary)))
    assert np.isin(inputs[replaced], ordinary).all()                            # never a special token
    # the random tokens are spread over the whole ordinary vocabulary
    assert len(np.unique(inputs[replaced])) == len(ordinary)


def test_masking_is_reproducible_and_advances_the_generator_by_shape_only():
    ordinary = np.arange(10)
    a_rng, b_rng = np.random.default_rng(5), np.random.default_rng(5)
    ids_a = np.random.default_rng(1).integers(0, 10, (4, 20))
    ids_b = np.random.default_rng(2).integers(0, 10, (4, 20))
    first = mask_tokens(ids_a, a_rng, 11, ordinary)
    again = mask_tokens(ids_a, np.random.default_rng(5), 11, ordinary)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    mask_tokens(ids_b, b_rng, 11, ordinary)                     # other tokens, same shape
    assert a_rng.bit_generator.state == b_rng.bit_generator.state


def test_every_batch_gets_at_least_one_chosen_position():
    ids = np.arange(3).reshape(1, 3)
    protected = np.array([[True, False, True]])
    for seed in range(30):                                       # 0.85 ** 1: most draws choose nothing
        inputs, targets = mask_tokens(ids, np.random.default_rng(seed), 9, np.arange(5), protected)
        assert (targets != IGNORE).sum() >= 1 and targets[0, 0] == targets[0, 2] == IGNORE


# ---------------------------------------------------------------------- the loss
def tiny_mlm(seed=0):
    mg.manual_seed(seed)
    return BertForMaskedLM(BertConfig(vocab_size=23, context_length=12, emb_dim=8, n_heads=2, n_layers=1,
                                      hidden_dim=16, drop_rate=0.0, attn_drop_rate=0.0, add_pooler=False))


def test_loss_counts_only_the_chosen_positions():
    model = tiny_mlm()
    ids = add_cls_sep(np.random.default_rng(0).integers(0, 18, (3, 10)), 18, 19)
    inputs, targets = mask_tokens(ids, np.random.default_rng(1), 20, np.arange(18), np.isin(ids, [18, 19]))
    chosen = targets != IGNORE
    assert 0 < chosen.sum() < chosen.size

    # cross-entropy with ignore_index: the gradient of the full logits is zero at every other position
    logits = mg.Tensor(model(inputs).data, requires_grad=True)
    full = F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1), ignore_index=IGNORE)
    full.backward()
    grad = logits.grad.reshape(3, 12, 23)
    assert np.abs(grad[chosen]).sum(axis=-1).min() > 0
    assert not grad[~chosen].any()

    # mlm_loss (the head applied at the chosen positions only) is that same loss, with the same gradients
    loss, correct, total = mlm_loss(model, inputs, targets)
    np.testing.assert_allclose(loss.item(), full.item(), rtol=1e-6)
    assert total == chosen.sum()
    assert correct == int((logits.data[chosen].argmax(-1) == targets[chosen]).sum())
    loss.backward()
    reference = tiny_mlm()
    F.cross_entropy(reference(inputs).flatten(0, 1), targets.reshape(-1), ignore_index=IGNORE).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-4, atol=1e-6, err_msg=name)

    # changing the tokens' targets where nothing was chosen changes nothing
    other = np.where(chosen, targets, IGNORE)
    assert mlm_loss(model, inputs, other)[0].item() == loss.item()


def test_bert_tokenizer_wraps_cls_and_sep():
    bpe = BPETokenizer.train("the cat sat on the mat " * 20, 270, special_tokens=SPECIAL_TOKENS, verbose=False)
    tok = BertTokenizer(bpe)
    ids = tok.encode("the cat")
    assert ids[0] == tok.token_to_id("[CLS]") and ids[-1] == tok.token_to_id("[SEP]")
    assert tok.decode(ids[1:-1]) == "the cat"
    assert tok.encode("the cat", add_special_tokens=False) == ids[1:-1]
    with pytest.raises(ValueError, match=r"\[MASK\]"):
        BertTokenizer(BPETokenizer.train("the cat sat", 260, verbose=False))


def test_checkpoint_rebuilds_the_encoder_with_its_tied_head(tmp_path):
    model = tiny_mlm(3)
    rng = np.random.default_rng(0)
    for p in model.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(np.float32) * 0.1
    save_checkpoint(tmp_path / "ck", model)
    ck = load_checkpoint(tmp_path / "ck")
    assert type(ck.model) is BertForMaskedLM and ck.config == model.cfg
    assert ck.model.mlm_head.decoder.weight is ck.model.bert.tok_emb.weight
    ids = rng.integers(0, 23, (2, 12))
    np.testing.assert_array_equal(ck.model(ids).data, model(ids).data)


# ---------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    rng = random.Random(1)
    words = "a small bird sang in the old tree by the river while the cat slept on the warm red mat".split()
    lines = [" ".join(rng.choice(words) for _ in range(10)).capitalize() + "." for _ in range(90)]
    path = tmp_path_factory.mktemp("text") / "birds.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_pretrain_bert_in_a_subprocess(text_file, tmp_path):
    code, stdout, stderr = run_subprocess("pretrain", "--arch", "bert", *TINY, "--text", text_file, "--steps", 3,
                                          "--eval-every", 3, "--out", tmp_path / "run")
    assert code == 0, stderr
    assert "model: bert, 2 layers, 2 heads, emb 32, context 16" in stdout
    assert "[CLS] + 14 tokens + [SEP]" in stdout
    assert "masked-token accuracy train" in stdout
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("validation loss") and "masked-token accuracy" in last, last
    accuracy = float(last.rsplit(" ", 1)[1])
    assert 0.0 <= accuracy <= 1.0
    header, row = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert header == "step,tokens_seen,train_loss,val_loss,lr,train_accuracy,val_accuracy"
    assert row.startswith("3,96,")                    # 3 steps of 2 x 16 tokens
    ck = load_checkpoint(tmp_path / "run")
    assert type(ck.model) is BertForMaskedLM and ck.config.emb_dim == 32 and ck.config.hidden_dim == 128
    assert ck.config.pad_token_id == ck.tokenizer.special_tokens["[PAD]"]
    assert set(SPECIAL_TOKENS) <= set(ck.tokenizer.special_tokens)
    assert ck.info["settings"]["arch"] == "bert" and "mask_rng" in ck.trainer_state
    code, _, stderr = run_cli("generate", "--checkpoint", tmp_path / "run", "--prompt", "The cat")
    check_one_line_error(code, stderr, "masked language model", "does not generate")


def test_interrupted_and_resumed_bert_run_equals_an_uninterrupted_one(text_file, tmp_path, monkeypatch):
    """With dropout: Ctrl-C after step 2, resume to 4; the masks, dropout and data order continue exactly."""
    args = ["pretrain", "--arch", "bert", *TINY, "--drop-rate", "0.1", "--text", text_file, "--eval-every", 3,
            "--steps", 4, "--quiet"]
    logs = assert_pretrain_resumes_exactly(args, tmp_path, monkeypatch, "bert.trf_blocks.0.att.W_query.weight")
    assert logs[0]["metrics"] == logs[1]["metrics"] and len(logs[0]["metrics"]["val_accuracy"]) == 2


def test_pretrain_bert_bad_options_are_one_line_errors(text_file, tmp_path):
    code, _, stderr = run_cli("pretrain", "--arch", "bert", "--pos-emb", "rope", "--text", text_file,
                              "--out", tmp_path / "a")
    check_one_line_error(code, stderr, "--pos-emb", "learned absolute")
    code, _, stderr = run_cli("pretrain", "--arch", "bert", "--n-kv-heads", "2", "--text", text_file,
                              "--out", tmp_path / "b")
    check_one_line_error(code, stderr, "--n-kv-heads")
    code, _, stderr = run_cli("pretrain", "--arch", "bert", "--prompt", "x", "--text", text_file,
                              "--out", tmp_path / "c")
    check_one_line_error(code, stderr, "--prompt", "does not generate")
    plain = tmp_path / "plain.txt"
    BPETokenizer.train("the cat sat on the mat", 260, verbose=False).save(plain)
    code, _, stderr = run_cli("pretrain", "--arch", "bert", *TINY, "--tokenizer", plain, "--text", text_file,
                              "--out", tmp_path / "d")
    check_one_line_error(code, stderr, "[MASK]", "--tokenizer")
    code, _, stderr = run_cli("pretrain", "--arch", "bert", *TINY, "--context-length", "2", "--text", text_file,
                              "--out", tmp_path / "e")
    check_one_line_error(code, stderr, "[CLS]", "at least 3")
    code, _, stderr = run_cli("pretrain", "--arch", "bert", "--config", "mini", "--text", text_file,
                              "--out", tmp_path / "f")
    check_one_line_error(code, stderr, "unknown config", "bert-mini")
