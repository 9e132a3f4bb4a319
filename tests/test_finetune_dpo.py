"""Tests for preference tuning with DPO (gpt.finetune.dpo) and ``python -m gpt finetune-dpo``: reading
preference data, the masks token by token (ours and the book's boundary, with the demo's and GPT-2's
tokenizers), the response log-probabilities and the loss against direct NumPy formulas, the loss's
gradient in float64, the trainer's frozen reference, the demo pairs, and the CLI in a fast mode
(figures, checkpoints that chat/generate load, logs, Ctrl-C and --resume, bad input)."""
import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad.optim import AdamW
from minigrad.testing import assert_gradients_match

from gpt.checkpoint import load_checkpoint
from gpt.data import DataLoader
from gpt.finetune.dpo import (
    REJECTION_KINDS,
    DPOTrainer,
    PreferenceDataset,
    compute_dpo_loss_batch,
    compute_logprobs,
    demo_preference_data,
    dpo_collate_fn,
    dpo_loss,
    load_preference_data,
    preference_accuracy,
    preference_metrics,
    stack_pairs,
)
from gpt.finetune.instruct import (
    DEMO_FLAWS,
    add_demo_flaws,
    demo_instruction_data,
    demo_tokenizer,
    flawed_answer,
    format_input,
    load_instruct_checkpoint,
)
from gpt.model import GPTConfig, GPTModel
from tests.cli_helpers import alpaca_chat_answer, check_one_line_error, interrupt_at, run_cli, run_subprocess, weights

# about 35 s of CPU: the instruction demo (its model, 10 epochs) on 300 questions with noisy labels, then
# two epochs of DPO (the demo's beta and lr) on their pairs; the smallest run whose model learns enough
# (counting letters, with the flaw) for DPO to have something to correct
FAST = ["--demo", "--demo-size", "300", "--eval-batches", "2", "--epochs", "2", "--eval-every", "31"]
FIGURES = re.compile(r"preference accuracy on the held-out pairs, log p\(chosen\) > log p\(rejected\), before -> after: "
                     r"(\d+\.\d)% -> (\d+\.\d)%\nexact-match accuracy on the held-out questions, before -> after: "
                     r"(\d+\.\d)% -> (\d+\.\d)%")


def tiny_model(vocab_size, seed=0, **kw):
    mg.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, context_length=96, emb_dim=32, n_heads=2, n_layers=1, drop_rate=0.0)
    return GPTModel(GPTConfig(**{**cfg, **kw}))


def write_json(path, value):
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")
    return path


PAIR = {"instruction": "Convert the word to upper case.", "input": "lion", "chosen": "LION", "rejected": "Lion"}


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


def test_load_preference_data_keeps_the_books_keys_and_fills_a_missing_input(tmp_path):
    book_style = dict(PAIR, output="LION")
    loaded = load_preference_data(write_json(tmp_path / "p.json", [book_style, {k: v for k, v in PAIR.items()
                                                                                 if k != "input"}]))
    assert loaded[0] == book_style and loaded[1]["input"] == ""


@pytest.mark.parametrize("content, expected", [
    ('{"instruction": "x"}', ["JSON list", "dict"]),
    ('[{"instruction": "a", "input": "", "chosen": "b", "rejected": "c"}, 3]', ["entry 1", "int"]),
    ('[{"instruction": "a", "input": "", "chosen": "b"}]', ["entry 0", "'rejected'"]),
    ('[{"instruction": "a", "input": "", "chosen": null, "rejected": "c"}]', ["entry 0", "'chosen'", "NoneType"]),
    ('[{"instruction": " ", "input": "", "chosen": "b", "rejected": "c"}]', ["entry 0", "instruction is empty"]),
    ('[{"instruction": "a",', ["not valid JSON"]),
    ('', ["the file is empty"]),
])
def test_malformed_preference_data_names_the_entry(tmp_path, content, expected):
    path = tmp_path / "p.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        load_preference_data(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for word in expected:
        assert word in message, (word, message)


# --------------------------------------------------------------------------------------------------
# The masks, token by token
# --------------------------------------------------------------------------------------------------


def counted(tokenizer, batch, key, row):
    ids, mask = batch[key][row], batch[f"{key}_mask"][row]
    return [tokenizer.decode([int(i)]) for i in ids[mask]]


def test_masks_count_the_answer_and_its_end_of_text():
    tok = demo_tokenizer()
    other = {"instruction": "Add the two numbers.", "input": "3 + 4", "chosen": "7", "rejected": "8"}
    data = PreferenceDataset([PAIR, other], tok)
    batch = dpo_collate_fn([data[0], data[1]], pad_token_id=tok.eot_token)
    eot = "<|endoftext|>"
    assert counted(tok, batch, "chosen", 0) == ["L", "I", "O", "N", eot]
    assert counted(tok, batch, "rejected", 0) == ["L", "i", "o", "n", eot]
    assert counted(tok, batch, "chosen", 1) == ["7", eot] and counted(tok, batch, "rejected", 1) == ["8", eot]
    # one common length for chosen and rejected: the longest sequence plus one; padding is <|endoftext|>
    longest = max(len(data[i][k]) for i in (0, 1) for k in ("chosen", "rejected"))
    assert batch["chosen"].shape == batch["rejected"].shape == batch["chosen_mask"].shape == (2, longest + 1)
    n = len(data[1]["chosen"])
    assert (batch["chosen"][1, n:] == tok.eot_token).all() and not batch["chosen_mask"][1, n + 1:].any()
    assert tok.decode(list(batch["chosen"][0, :data[0]["chosen_start"]])).endswith(format_input(PAIR)
                                                                                   + "\n\n### Response:\n")


def test_the_books_boundary_counts_the_response_header():
    """The book masks the prompt plus two tokens: the two newlines; '### Response:' and the newline
    after it count as answer, and the end-of-text does not."""
    tok = demo_tokenizer()
    data = PreferenceDataset([PAIR], tok)
    book = dpo_collate_fn([data[0]], pad_token_id=tok.eot_token, boundary="book")
    assert counted(tok, book, "chosen", 0) == ["###", " Response", ":", "\n", "L", "I", "O", "N"]
    everything = dpo_collate_fn([data[0]], pad_token_id=tok.eot_token, mask_prompt_tokens=False, boundary="book")
    assert everything["chosen_mask"][0, 1:len(data[0]["chosen"])].all() and not everything["chosen_mask"][0, 0]
    cut = dpo_collate_fn([data[0]], pad_token_id=tok.eot_token, allowed_max_length=10)
    assert cut["chosen"].shape == (1, 10) and not cut["chosen_mask"].any()
    with pytest.raises(ValueError, match="boundary"):
        dpo_collate_fn([data[0]], boundary="prompt")
    with pytest.raises(ValueError, match="empty batch"):
        dpo_collate_fn([])


def test_the_books_boundary_with_gpt2s_tokenizer(reference_data):
    from gpt.tokenizer import BPETokenizer

    tok = BPETokenizer.from_gpt2_files(reference_data / "gpt2/encoder.json", reference_data / "gpt2/vocab.bpe")
    entry = {"instruction": "Convert 45 kilometers to meters.", "input": "",
             "chosen": "45 kilometers is 45000 meters.", "rejected": "45 kilometers is 45000 meters, obviously."}
    data = PreferenceDataset([entry], tok)
    item = data[0]
    assert [tok.decode([i]) for i in item["chosen"][len(item["prompt"]):][:2]] == ["\n", "\n"]   # the book's +2
    book = dpo_collate_fn([item], boundary="book")
    assert "".join(counted(tok, book, "chosen", 0)) == "### Response:\n45 kilometers is 45000 meters."
    ours = dpo_collate_fn([item])
    assert "".join(counted(tok, ours, "chosen", 0)) == "45 kilometers is 45000 meters.<|endoftext|>"
    assert "".join(counted(tok, ours, "rejected", 0)) == "45 kilometers is 45000 meters, obviously.<|endoftext|>"


# --------------------------------------------------------------------------------------------------
# Log-probabilities and the loss against direct NumPy formulas
# --------------------------------------------------------------------------------------------------


def numpy_logprobs(logits, labels, mask, average):
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))                      # (b, T, V)
    picked = np.take_along_axis(logp[:, :-1], labels[:, 1:, None], -1)[..., 0]   # (b, T-1)
    m = mask[:, 1:]
    total = (picked * m).sum(-1)
    return total / m.sum(-1) if average else total


@given(st.integers(0, 2 ** 31), st.booleans())
def test_compute_logprobs_is_the_masked_sum_or_mean(seed, average):
    rng = np.random.default_rng(seed)
    b, t, v = rng.integers(1, 4), rng.integers(2, 7), rng.integers(2, 9)
    logits = rng.normal(size=(b, t, v)) * 3
    labels = rng.integers(0, v, size=(b, t))
    mask = rng.random((b, t)) < 0.6
    mask[:, -1] = True                                           # at least one token per row
    got = compute_logprobs(mg.tensor(logits, dtype=np.float64), labels, mask, average=average).data
    np.testing.assert_allclose(got, numpy_logprobs(logits, labels, mask, average), rtol=1e-10, atol=1e-10)
    x = mg.tensor(logits, dtype=np.float64, requires_grad=True)
    assert_gradients_match(lambda x: compute_logprobs(x, labels, mask, average=average), x, seed=seed % 1000)


def numpy_dpo(pc, pr, rc, rr, beta):
    z = beta * ((pc - rc) - (pr - rr))
    return np.mean(-np.log(1 / (1 + np.exp(-z)))), beta * (pc - rc), beta * (pr - rr)


vectors = st.integers(1, 6).flatmap(lambda n: st.lists(
    st.lists(st.floats(-20, 20), min_size=n, max_size=n), min_size=4, max_size=4))


@given(vectors, st.floats(0.01, 2.0))
def test_dpo_loss_is_the_formula(values, beta):
    pc, pr, rc, rr = (np.array(v) for v in values)
    loss, chosen, rejected = dpo_loss(*(mg.tensor(v, dtype=np.float64) for v in (pc, pr, rc, rr)), beta=beta)
    expected = numpy_dpo(pc, pr, rc, rr, beta)
    np.testing.assert_allclose(loss.item(), expected[0], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(chosen, expected[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rejected, expected[2], rtol=1e-12, atol=1e-12)


@given(vectors, st.floats(0.05, 2.0), st.integers(0, 1000))
def test_dpo_loss_gradient(values, beta, seed):
    inputs = [mg.tensor(np.array(v), dtype=np.float64, requires_grad=True) for v in values]
    assert_gradients_match(lambda *x: dpo_loss(*x, beta=beta)[0], *inputs, seed=seed)


def test_dpo_loss_is_stable_and_checks_its_input():
    big = [mg.tensor(np.array([x]), dtype=np.float32, requires_grad=True) for x in (1e4, -1e4, 0.0, 0.0)]
    loss, _, _ = dpo_loss(*big, beta=1.0)                         # z = 2e4: the loss is 0, not NaN
    loss.backward()
    assert loss.item() == 0.0 and np.isfinite(big[0].grad).all() and loss.dtype == np.float32
    loss, _, _ = dpo_loss(*(mg.tensor(np.array([x])) for x in (-1e4, 1e4, 0.0, 0.0)), beta=1.0)
    assert loss.item() == pytest.approx(2e4)                    # -log sigmoid(-2e4) = 2e4, no overflow
    with pytest.raises(ValueError, match="same length"):
        dpo_loss(np.zeros(2), np.zeros(3), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2), beta=0)


def test_preference_metrics():
    m = preference_metrics([0.5, 0.7], np.array([1.0, 0.0, 0.2]), np.array([0.0, 0.0, 0.5]))
    assert m["loss"] == pytest.approx(0.6) and m["accuracy"] == pytest.approx(1 / 3)     # a tie is not right
    assert m["margin"] == pytest.approx((1.0 + 0.0 - 0.3) / 3)
    assert m["chosen_reward"] == pytest.approx(0.4) and m["rejected_reward"] == pytest.approx(0.5 / 3)


# --------------------------------------------------------------------------------------------------
# Training: the reference stays frozen, the margin grows
# --------------------------------------------------------------------------------------------------


def test_dpo_trainer_moves_the_policy_and_not_the_reference():
    tok = demo_tokenizer()
    pairs = demo_preference_data(demo_instruction_data(40, seed=5), seed=1)
    policy, reference = tiny_model(tok.n_vocab, seed=3), tiny_model(tok.n_vocab, seed=3)
    before = {k: v.copy() for k, v in reference.state_dict().items()}

    def stacked(batch):
        return stack_pairs(dpo_collate_fn(batch, pad_token_id=tok.eot_token))

    loader = DataLoader(PreferenceDataset(pairs, tok), batch_size=8, shuffle=True, seed=0, collate_fn=stacked)
    batch = next(iter(loader))
    loss, chosen, rejected = compute_dpo_loss_batch(batch, policy, reference, beta=0.5)
    # policy and reference start equal: rewards 0 up to float32 rounding (the reference runs without
    # gradients, where Linear multiplies in another BLAS layout, so the last bit may differ)
    assert loss.item() == pytest.approx(np.log(2), abs=1e-6)
    np.testing.assert_allclose(chosen, 0, atol=1e-5)
    np.testing.assert_allclose(rejected, 0, atol=1e-5)
    trainer = DPOTrainer(policy, reference, AdamW(policy.parameters(), lr=3e-3), loader, loader, beta=0.5,
                         total_steps=3 * len(loader), peak_lr=3e-3, eval_freq=len(loader), eval_iter=2)
    trainer.run()
    for k, v in reference.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert all(p.grad is None for p in reference.parameters())
    last = trainer.history[-1]["train"]
    assert last["loss"] < np.log(2) and last["margin"] > 0 and last["accuracy"] > 0.5
    assert [h["step"] for h in trainer.history] == trainer.state.eval_steps


def test_the_policy_trains_without_dropout_so_the_first_loss_is_log_2():
    tok = demo_tokenizer()
    pairs = demo_preference_data(demo_instruction_data(16, seed=5), seed=1)
    policy, reference = tiny_model(tok.n_vocab, seed=3, drop_rate=0.5), tiny_model(tok.n_vocab, seed=3, drop_rate=0.5)
    batch = stack_pairs(dpo_collate_fn([PreferenceDataset(pairs, tok)[i] for i in range(8)], pad_token_id=tok.eot_token))
    trainer = DPOTrainer(policy, reference, AdamW(policy.parameters(), lr=1e-3), [batch], None, beta=0.5,
                         total_steps=1, peak_lr=1e-3)
    policy.train()
    assert trainer.compute_loss(batch.token_ids, batch.mask).item() == pytest.approx(np.log(2), abs=1e-6)
    assert policy.training                                  # its mode is left as it was


def test_noisy_labels_carry_the_systematic_flaws_and_the_pairs_reject_them():
    entries = demo_instruction_data(300, seed=4)
    noisy = add_demo_flaws(entries, 0.7, seed=1)
    assert noisy == add_demo_flaws(entries, 0.7, seed=1) and add_demo_flaws(entries, 0.0) == entries
    flawed = [e for e in noisy if "flaw" in e]
    eligible = [e for e in entries if e["task"] in DEMO_FLAWS]
    assert {e["task"] for e in flawed} == set(DEMO_FLAWS) and 0.6 < len(flawed) / len(eligible) < 0.8
    for e in flawed:
        if e["task"] == "upper":
            assert e["output"] == e["input"] and e["exact"] == e["input"].upper() and e["flaw"] == "wrong_case"
        else:
            assert int(e["output"]) == len(e["input"]) + 1 == int(e["exact"]) + 1 and e["flaw"] == "off_by_one"
    assert all(e == o for e, o in zip(noisy, entries) if "flaw" not in e)
    # pairs made from noisy or clean entries alike: chosen is the exact answer, rejected the flaw
    for source in (entries, noisy):
        pairs = demo_preference_data(source, seed=3, flaws=True)
        for p, e in zip(pairs, entries):
            assert p["chosen"] == e["output"] and "flaw" not in p and "exact" not in p
            if e["task"] in DEMO_FLAWS:
                assert p["rejected"] == flawed_answer(e) and p["kind"] == DEMO_FLAWS[e["task"]][0]
    with pytest.raises(ValueError, match="share"):
        add_demo_flaws(entries, 1.5)


def test_preference_accuracy_is_how_often_the_chosen_answer_is_the_more_likely():
    tok = demo_tokenizer()
    pairs = demo_preference_data(demo_instruction_data(20, seed=5), seed=1)
    model = tiny_model(tok.n_vocab, seed=2)

    def stacked(batch):
        return stack_pairs(dpo_collate_fn(batch, pad_token_id=tok.eot_token))

    data = PreferenceDataset(pairs, tok)
    loader = DataLoader(data, batch_size=8, drop_last=False, collate_fn=stacked)
    one_by_one = [stacked([data[i]]) for i in range(len(pairs))]       # each (chosen, rejected)
    logps = np.array([compute_logprobs(model(b.token_ids), b.token_ids, b.mask).data for b in one_by_one])
    expected = np.mean(logps[:, 0] > logps[:, 1])
    assert preference_accuracy(model, loader) == pytest.approx(expected) and model.training
    assert np.isnan(preference_accuracy(model, []))


def test_demo_pairs_are_plausible_wrong_answers():
    entries = demo_instruction_data(200, seed=9)
    pairs = demo_preference_data(entries, seed=2)
    assert pairs == demo_preference_data(entries, seed=2)
    assert {p["kind"] for p in pairs} <= set(REJECTION_KINDS) and len({p["kind"] for p in pairs}) == 4
    for p, e in zip(pairs, entries):
        assert p["chosen"] == e["output"] and p["rejected"] != p["chosen"] and p["rejected"]
        if p["kind"] == "off_by_one":
            assert abs(int(p["rejected"]) - int(p["chosen"])) == 1
        if p["kind"] == "wrong_case":
            assert p["rejected"].lower() == p["chosen"].lower()


# --------------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One fast --demo run (it trains the instruction demo first), shared by the tests below."""
    out = tmp_path_factory.mktemp("dpo") / "run"
    code, stdout, stderr = run_cli("finetune-dpo", *FAST, "--out", out)
    assert code == 0, stderr
    return out, stdout, stderr


def test_demo_run_reports_figures_and_writes_checkpoints_and_logs(demo_run):
    out, stdout, stderr = demo_run
    assert "Traceback" not in stderr
    assert "training the instruction demo's model first" in stdout
    assert "255 training, 30 held-out, 15 validation pairs" in stdout
    assert re.search(r"step 31 \(epoch 1\): train loss \d\.\d+, val loss \d\.\d+, val margin -?\d\.\d+, "
                     r"reward accuracy \d+%, rewards", stdout)
    # the instruction demo learnt the flaws of its noisy labels; DPO on held-out questions: both figures rise
    ranked_before, ranked_after, exact_before, exact_after = map(float, FIGURES.search(stdout).groups())
    assert ranked_after >= ranked_before + 15 and exact_after >= exact_before + 10, stdout
    assert re.search(r"by task: .*count_letters \d+% -> \d+%", stdout)
    held_out = float(re.search(r"reward accuracy \(margin > 0\) (\d+\.\d)%", stdout).group(1))
    assert held_out > 50.0
    ck = load_checkpoint(out, load_training_state=True)
    assert ck.info["task"] == "preference" and ck.trainer_state["train_state"]["step"] == 62
    assert ck.info["settings"]["beta"] == 0.5 and ck.info["source"]["checkpoint"] == str((out / "sft").resolve())
    assert ck.info["settings"]["demo_flaws"] == 0.7
    sft = load_checkpoint(out / "sft")
    assert sft.info["settings"]["demo_flaws"] == 0.7
    assert (out / "reference" / "latest").exists() and (out / "sft" / "latest").exists()
    log = json.loads((out / "log.json").read_text())
    assert log["eval_steps"] == [31, 62] and [r["step"] for r in log["dpo"]] == [31, 62]
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,tokens_seen,lr,train_loss,train_margin,train_accuracy") and len(rows) == 3
    try:
        import matplotlib  # noqa: F401
        assert (out / "loss.png").is_file()
    except ImportError:
        assert not (out / "loss.png").exists()


def test_the_plot_shows_loss_and_margin_per_evaluation(demo_run, tmp_path, monkeypatch):
    """loss.png's code path with a stand-in for matplotlib (which the test machines may not have)."""
    import sys
    import types

    from gpt.cli.finetune_dpo import _plot

    drawn = []

    class Axes:
        def plot(self, x, y, **kw):
            drawn.append((list(x), list(y)))

        def __getattr__(self, name):
            return lambda *a, **k: None

    class Figure:
        def tight_layout(self):
            pass

        def savefig(self, f, **kw):
            f.write(b"png")

    pyplot = types.SimpleNamespace(subplots=lambda *a, **k: (Figure(), [Axes(), Axes()]), close=lambda fig: None)
    matplotlib = types.SimpleNamespace(use=lambda backend: None, pyplot=pyplot)
    monkeypatch.setitem(sys.modules, "matplotlib", matplotlib)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", pyplot)
    history = json.loads((demo_run[0] / "log.json").read_text())["dpo"]
    assert _plot(tmp_path, history) == tmp_path / "loss.png" and (tmp_path / "loss.png").read_bytes() == b"png"
    assert [x for x, _ in drawn] == [[31, 62]] * 4
    assert drawn[2][1] == [r["train"]["margin"] for r in history]


def test_chat_and_generate_load_the_result(demo_run):
    out, _, _ = demo_run
    ck = load_instruct_checkpoint(out)
    entry = {"instruction": "How many letters are in this word?", "input": "lion"}
    code, stdout, stderr = run_cli("chat", "--checkpoint", out, "--prompt", entry["instruction"], "--input", "lion",
                                   "--max-new-tokens", 6)
    assert code == 0 and stderr == ""
    assert stdout == alpaca_chat_answer(ck.model, ck.tokenizer, entry, max_new_tokens=6) + "\n"
    code, stdout, stderr = run_cli("generate", "--checkpoint", out, "--prompt", "Below is", "--max-new-tokens", 3,
                                   "--temperature", 0)
    assert code == 0 and stdout.startswith("Below is"), stderr


def test_lora_on_a_data_file_then_chat(demo_run, tmp_path):
    out, _, _ = demo_run
    pairs = [{k: p[k] for k in ("instruction", "input", "chosen", "rejected")}
             for p in demo_preference_data(demo_instruction_data(40, seed=77))]
    data = write_json(tmp_path / "prefs.json", pairs)
    code, stdout, stderr = run_cli("finetune-dpo", "--data", data, "--checkpoint", out / "sft", "--lora-rank", 2,
                                   "--batch-size", 4, "--lr", "1e-3", "--max-new-tokens", 4, "--eval-every", 4,
                                   "--out", tmp_path / "lora")
    assert code == 0, stderr
    assert "34 training, 4 held-out, 2 validation pairs" in stdout
    assert stdout.strip().splitlines()[-1].startswith("preference accuracy on the held-out pairs")
    ck = load_instruct_checkpoint(tmp_path / "lora")
    assert ck.info["instruct"]["lora"] == {"rank": 2, "alpha": 2}
    base = weights(out / "sft")
    for name, value in weights(tmp_path / "lora").items():
        if name.endswith("linear.weight"):
            np.testing.assert_array_equal(value, base[name.replace(".linear.weight", ".weight")])
    code, stdout, stderr = run_cli("chat", "--checkpoint", tmp_path / "lora", "--prompt", "Add the two numbers.",
                                   "--input", "1 + 2", "--max-new-tokens", 4)
    assert code == 0, stderr


def test_ctrl_c_then_resume_ends_with_the_weights_of_an_uninterrupted_run(demo_run, tmp_path, monkeypatch):
    out, _, _ = demo_run
    args = ["finetune-dpo", "--demo", "--demo-size", "60", "--checkpoint", out / "sft", "--batch-size", "4",
            "--lr", "1e-3", "--eval-every", "5", "--eval-batches", "2", "--quiet"]
    code, stdout, stderr = run_cli(*args, "--out", tmp_path / "straight")
    assert code == 0, stderr
    with monkeypatch.context() as m:
        interrupt_at(m, 7, DPOTrainer)
        code, stdout, stderr = run_cli(*args, "--out", tmp_path / "stopped")
    assert code == 130 and "interrupted at step 7 of 12" in stderr and "--resume" in stderr
    code, resumed_out, stderr = run_cli("finetune-dpo", "--resume", tmp_path / "stopped", "--quiet")
    assert code == 0, stderr
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "stopped")
    assert list(straight) == list(resumed)
    for name in straight:
        np.testing.assert_array_equal(straight[name], resumed[name], err_msg=name)
    a, b = (json.loads((tmp_path / d / "log.json").read_text()) for d in ("straight", "stopped"))
    for key in ("train_losses", "val_losses", "track_lrs", "eval_steps", "dpo"):
        assert a[key] == b[key], key


BAD_INPUTS = {
    "no data": (["finetune-dpo"], ["--data", "--demo"]),
    "data without a model": (["finetune-dpo", "--data", "{data}"], ["--checkpoint", "--gpt2"]),
    "missing data file": (["finetune-dpo", "--data", "{tmp}/nope.json", "--checkpoint", "{sft}"], ["nope.json"]),
    "malformed entry": (["finetune-dpo", "--data", "{bad_entry}", "--checkpoint", "{sft}"], ["entry 1", "'rejected'"]),
    "not JSON": (["finetune-dpo", "--data", "{bad_json}", "--checkpoint", "{sft}"], ["not valid JSON"]),
    "zero beta": (["finetune-dpo", "--demo", "--checkpoint", "{sft}", "--beta", "0"], ["--beta"]),
    "alpha without rank": (["finetune-dpo", "--demo", "--checkpoint", "{sft}", "--lora-alpha", "2"], ["--lora-rank"]),
    "config with a model": (["finetune-dpo", "--demo", "--checkpoint", "{sft}", "--config", "tiny"], ["--config"]),
    "not a checkpoint": (["finetune-dpo", "--demo", "--checkpoint", "{tmp}"], ["not a checkpoint"]),
    "out holds a run": (["finetune-dpo", "--demo", "--checkpoint", "{sft}", "--out", "{run}"], ["--resume"]),
    "resume an instruct run": (["finetune-dpo", "--resume", "{sft}"], ["no DPO run"]),
    "resume with another beta": (["finetune-dpo", "--resume", "{run}", "--beta", "0.2"], ["--beta", "cannot change"]),
    "resume a finished run": (["finetune-dpo", "--resume", "{run}"], ["already has 62 steps", "--epochs"]),
    "flaws with a model": (["finetune-dpo", "--demo", "--checkpoint", "{sft}", "--demo-flaws", "0.5"],
                           ["--demo-flaws"]),
    "flaws above one": (["finetune-dpo", "--demo", "--demo-flaws", "1.5"], ["--demo-flaws"]),
    "bad boundary": (["finetune-dpo", "--demo", "--boundary", "prompt"], ["--boundary"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_ends_with_a_one_line_error(case, tmp_path, demo_run):
    argv, expected = BAD_INPUTS[case]
    out = demo_run[0]
    write_json(tmp_path / "entry.json", [PAIR, {"instruction": "x", "input": "", "chosen": "y"}])
    (tmp_path / "bad.json").write_text("[{oops", encoding="utf-8")
    names = dict(tmp=tmp_path, run=out, sft=out / "sft", data=tmp_path / "entry.json",
                 bad_entry=tmp_path / "entry.json", bad_json=tmp_path / "bad.json")
    code, stdout, stderr = run_cli(*[a.format(**names) for a in argv])
    check_one_line_error(code, stderr, *expected)
    if not stderr.startswith("usage:"):
        assert stderr.count("\n") == 1 and code == 2
    assert "before -> after" not in stdout


def test_bad_input_in_a_subprocess(tmp_path):
    code, _, stderr = run_subprocess("finetune-dpo", "--demo", "--checkpoint", tmp_path / "nope")
    check_one_line_error(code, stderr, "nope")


def test_help():
    code, stdout, _ = run_cli("finetune-dpo", "--help")
    assert code == 0 and stdout.startswith("usage: python -m gpt finetune-dpo")
