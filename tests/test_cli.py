"""Tests for ``python -m gpt pretrain / generate / evaluate`` in a fast mode (tiny model, a few steps):
what they print and write, Ctrl-C and --resume, non-finite losses, and a one-line error for each
kind of bad input. Most runs call ``gpt.cli.main`` in-process; a few start a real subprocess."""
import json
import math
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gpt.checkpoint import load_checkpoint
from gpt.data import train_val_split
from gpt.generate import generate_text_simple, text_to_token_ids, token_ids_to_text
from gpt.train import Trainer
from tests.cli_helpers import check_one_line_error, interrupt_at, run_cli, run_subprocess, subprocess_env, weights

FAST = ["--config", "tiny", "--context-length", "16", "--emb-dim", "32", "--vocab-size", "300",
        "--batch-size", "2", "--eval-batches", "2", "--warmup", "2"]
VALIDATION_LOSS = re.compile(r"validation loss (\d+\.\d\d)")


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------




def last_line(text):
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""



def assert_same_arrays(a, b):
    assert list(a) == list(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), f"{name} differs"


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    """About 6 KB of simple English sentences (no reference data needed)."""
    rng = random.Random(0)
    words = ("the cat sat on a mat and the dog ran to the red door while a bird sang in the old tree "
             "near my house by the river").split()
    lines = [" ".join(rng.choice(words) for _ in range(12)).capitalize() + "." for _ in range(110)]
    path = tmp_path_factory.mktemp("text") / "story.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, text_file):
    """One fast pretraining run (6 steps, evaluated every 3), shared by the tests that use its output."""
    out = tmp_path_factory.mktemp("run") / "ck"
    code, stdout, stderr = run_cli("pretrain", *FAST, "--text", text_file, "--steps", 6, "--eval-every", 3,
                                   "--out", out, "--prompt", "The cat")
    assert code == 0, stderr
    return out, stdout, stderr


# --------------------------------------------------------------------------------------------------
# pretrain
# --------------------------------------------------------------------------------------------------


def test_pretrain_reports_validation_loss_last_and_writes_checkpoint_and_logs(trained):
    out, stdout, stderr = trained
    assert "Traceback" not in stderr
    assert VALIDATION_LOSS.fullmatch(last_line(stdout))
    # evaluations at steps 3 and 6, each with a sample continuing the prompt
    assert re.search(r"^step 3: train loss \d+\.\d{3}, val loss \d+\.\d{3}$", stdout, re.M)
    assert re.search(r"^step 6: train loss \d+\.\d{3}, val loss \d+\.\d{3}$", stdout, re.M)
    assert len(re.findall(r"^  The cat", stdout, re.M)) == 2
    assert "\nprompt: The cat\nsample: The cat" in stdout
    # the checkpoint: model, tokenizer and the training state, at the last step
    ck = load_checkpoint(out)
    assert ck.path.name == "step-000006"
    assert ck.config.context_length == 16 and ck.config.emb_dim == 32 and ck.config.n_layers == 2
    assert ck.tokenizer is not None and ck.tokenizer.n_vocab == ck.config.vocab_size <= 300
    assert ck.trainer_state["train_state"]["step"] == 6
    # the logs: one CSV row per evaluation, the whole history in JSON
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0] == "step,tokens_seen,train_loss,val_loss,lr"
    assert [int(r.split(",")[0]) for r in rows[1:]] == [3, 6]
    assert [int(r.split(",")[1]) for r in rows[1:]] == [3 * 2 * 16, 6 * 2 * 16]
    log = json.loads((out / "log.json").read_text())
    assert log["eval_steps"] == [3, 6] and len(log["track_lrs"]) == 6
    assert [float(r.split(",")[3]) for r in rows[1:]] == pytest.approx(log["val_losses"], abs=1e-6)
    try:
        import matplotlib  # noqa: F401
        assert (out / "loss.png").is_file()
    except ImportError:
        assert not (out / "loss.png").exists()


def test_pretrain_samples_are_seeded_top_k_draws_from_the_final_model(trained):
    from gpt.cli.pretrain import SAMPLE
    from gpt.generate import generate

    out, stdout, _ = trained
    ck = load_checkpoint(out)
    ids = generate(ck.model, text_to_token_ids("The cat", ck.tokenizer), rng=123, **SAMPLE)
    expected = token_ids_to_text(ids, ck.tokenizer)
    assert SAMPLE["temperature"] > 0 and SAMPLE["top_k"] > 1          # not greedy decoding
    sample = stdout.split("\nsample: ", 1)[1].rsplit("\nvalidation loss", 1)[0]
    assert sample == expected


def test_pretrain_quiet_prints_only_the_validation_loss(tmp_path, text_file):
    code, stdout, stderr = run_cli("pretrain", *FAST, "--text", text_file, "--steps", 2, "--eval-every", 1,
                                   "--out", tmp_path, "--quiet")
    assert code == 0, stderr
    assert VALIDATION_LOSS.fullmatch(stdout.strip())


def test_pretrain_epochs_sets_the_number_of_steps(tmp_path, text_file):
    code, stdout, stderr = run_cli("pretrain", *FAST, "--text", text_file, "--epochs", 1, "--eval-every", 1000,
                                   "--out", tmp_path, "--quiet")
    assert code == 0, stderr
    ck = load_checkpoint(tmp_path)
    state = ck.trainer_state["train_state"]
    assert state["epoch"] == 1 and state["step"] == state["tokens_seen"] // (2 * 16) > 1


def test_pretrain_list_configs():
    code, stdout, _ = run_cli("pretrain", "--list-configs")
    assert code == 0 and re.search(r"^tiny\b", stdout, re.M) and re.search(r"^gpt2-small\b", stdout, re.M)


# --------------------------------------------------------------------------------------------------
# generate and evaluate
# --------------------------------------------------------------------------------------------------


def test_generate_streams_a_continuation_in_a_subprocess(trained):
    out, _, _ = trained
    code, stdout, stderr = run_subprocess("generate", "--checkpoint", out, "--prompt", "The cat",
                                          "--max-new-tokens", 12, "--seed", 5)
    assert code == 0, stderr
    assert stdout.startswith("The cat") and len(stdout.strip()) > len("The cat")
    assert "Traceback" not in stderr
    # the same seed gives the same text
    assert run_cli("generate", "--checkpoint", out, "--prompt", "The cat", "--max-new-tokens", 12,
                   "--seed", 5)[1] == stdout


def test_generate_with_temperature_zero_is_the_books_greedy_decoding(trained):
    out, _, _ = trained
    code, stdout, _ = run_cli("generate", "--checkpoint", out, "--prompt", "The dog", "--max-new-tokens", 10,
                              "--temperature", 0)
    assert code == 0
    ck = load_checkpoint(out, load_training_state=False)
    ck.model.eval()
    ids = generate_text_simple(ck.model, text_to_token_ids("The dog", ck.tokenizer), 10, 16)
    assert stdout == token_ids_to_text(ids, ck.tokenizer) + "\n"


def test_evaluate_gives_the_validation_loss_that_pretrain_reported(trained, text_file, tmp_path):
    out, stdout, _ = trained
    reported = float(VALIDATION_LOSS.fullmatch(last_line(stdout)).group(1))
    _, val_text = train_val_split(text_file.read_text(encoding="utf-8"), 0.9)
    val_file = tmp_path / "val.txt"
    val_file.write_text(val_text, encoding="utf-8")
    code, result, stderr = run_cli("evaluate", "--checkpoint", out, "--text", val_file, "--batch-size", 2)
    assert code == 0, stderr
    m = re.search(r"^loss (\d+\.\d{4})  perplexity (\d+\.\d\d)$", result, re.M)
    assert m, result
    loss, perplexity = float(m.group(1)), float(m.group(2))
    assert abs(loss - reported) <= 0.0051                # the same windows, batches and weights
    assert perplexity == pytest.approx(math.exp(loss), rel=1e-3)


# --------------------------------------------------------------------------------------------------
# --resume, Ctrl-C, non-finite losses
# --------------------------------------------------------------------------------------------------



@pytest.mark.parametrize("batch_size, stop", [
    (2, 3),               # at an evaluation step (every 3)
    (2, 4),               # between two evaluations
    (16, "epoch"),        # exactly at the end of the first pass over the training data
])
def test_interrupted_and_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
        tmp_path, text_file, monkeypatch, batch_size, stop):
    args = ["pretrain", *FAST, "--batch-size", batch_size, "--drop-rate", "0.1", "--text", text_file,
            "--eval-every", 3]
    code, stdout, stderr = run_cli(*args, "--steps", 1, "--out", tmp_path / "probe")
    assert code == 0, stderr
    per_epoch = int(re.search(r"(\d+) batches of", stdout).group(1))
    if stop == "epoch":
        stop = per_epoch
    total = stop + 4
    assert per_epoch > total or stop == per_epoch
    args += ["--steps", total, "--quiet"]
    code, _, stderr = run_cli(*args, "--out", tmp_path / "straight")
    assert code == 0, stderr
    with monkeypatch.context() as m:
        interrupt_at(m, stop)
        code, stdout, stderr = run_cli(*args, "--out", tmp_path / "stopped")
    assert code == 130
    assert f"interrupted at step {stop} of {total}" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr and "validation loss" not in stdout
    assert load_checkpoint(tmp_path / "stopped").trainer_state["train_state"]["step"] == stop
    code, stdout, stderr = run_cli("pretrain", "--resume", tmp_path / "stopped", "--steps", total, "--quiet")
    assert code == 0, stderr
    assert VALIDATION_LOSS.fullmatch(last_line(stdout))
    assert_same_arrays(weights(tmp_path / "stopped"), weights(tmp_path / "straight"))
    straight_log = json.loads((tmp_path / "straight" / "log.json").read_text())
    resumed_log = json.loads((tmp_path / "stopped" / "log.json").read_text())
    for key in ("train_losses", "val_losses", "track_lrs", "eval_steps", "tokens_seen", "epoch"):
        assert resumed_log[key] == straight_log[key], key


def test_resume_without_steps_continues_to_the_saved_total(tmp_path, text_file, monkeypatch):
    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        assert run_cli("pretrain", *FAST, "--text", text_file, "--steps", 5, "--eval-every", 2, "--out", tmp_path,
                       "--quiet")[0] == 130
    code, stdout, stderr = run_cli("pretrain", "--resume", tmp_path, "--quiet")
    assert code == 0, stderr
    assert load_checkpoint(tmp_path).trainer_state["train_state"]["step"] == 5


def test_ctrl_c_in_a_subprocess_saves_a_checkpoint_that_resumes(tmp_path, text_file):
    out = tmp_path / "ck"
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "pretrain", *map(str, FAST), "--text", str(text_file),
                             "--steps", "100000", "--eval-every", "2", "--out", str(out)],
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "latest").exists():            # the first checkpoint: the loop is running
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no checkpoint appeared within 120 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert re.search(r"^interrupted at step \d+ of 100000: checkpoint saved to ", stderr, re.M)
    ck = load_checkpoint(out)
    stopped_at = ck.trainer_state["train_state"]["step"]
    assert stopped_at >= 2 and ck.path.name == f"step-{stopped_at:06d}"
    code, stdout, stderr = run_subprocess("pretrain", "--resume", out, "--steps", stopped_at + 2)
    assert code == 0, stderr
    assert f"resuming {out} at step {stopped_at} of {stopped_at + 2}" in stdout
    assert VALIDATION_LOSS.fullmatch(last_line(stdout))
    assert load_checkpoint(out).trainer_state["train_state"]["step"] == stopped_at + 2


@pytest.mark.parametrize("blow_up_at, last_good", [
    (4, "step-000004"),     # the 5th step ruins the weights; the 6th step's loss is NaN
    (3, "step-000002"),     # the 4th step ruins the weights, and the evaluation right after it sees it
])
def test_diverging_training_stops_with_one_line_and_keeps_the_last_good_checkpoint(
        tmp_path, text_file, monkeypatch, blow_up_at, last_good):
    real_lr_at = Trainer.lr_at
    monkeypatch.setattr(Trainer, "lr_at", lambda self, step: 1e30 if step == blow_up_at else real_lr_at(self, step))
    with np.errstate(all="ignore"):
        code, stdout, stderr = run_cli("pretrain", *FAST, "--text", text_file, "--steps", 10, "--eval-every", 2,
                                       "--grad-clip", 0, "--out", tmp_path, "--quiet")
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and "nan" in stderr.lower()
    assert last_good in stderr                              # where the last good checkpoint is
    ck = load_checkpoint(tmp_path)
    assert ck.path.name == last_good
    assert all(np.isfinite(v).all() for v in ck.model.state_dict().values())
    assert sorted(p.name for p in tmp_path.glob("step-*"))[-1] == last_good
    assert "validation loss" not in stdout


def test_diverging_from_the_start_says_no_checkpoint_was_saved(tmp_path, text_file):
    code, stdout, stderr = run_subprocess("pretrain", *FAST, "--text", text_file, "--steps", 10, "--eval-every", 1,
                                          "--lr", "1e30", "--out", tmp_path / "ck")
    assert code == 2
    assert "Traceback" not in stderr and "Warning" not in stderr
    error = last_line(stderr)
    assert error.startswith("error: ") and "nan" in error.lower() and "no checkpoint" in error
    assert "validation loss" not in stdout
    assert not (tmp_path / "ck" / "latest").exists()


# --------------------------------------------------------------------------------------------------
# Bad input: a one-line error and a non-zero exit code, never a traceback
# --------------------------------------------------------------------------------------------------



@pytest.fixture
def short_text(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("Too short to train on. " * 2, encoding="utf-8")
    return path


BAD_INPUTS = {
    "missing text file": (["pretrain", "--text", "{tmp}/nope.txt"], ["nope.txt"]),
    "text is a folder": (["pretrain", "--text", "{tmp}"], ["directory"]),
    "unknown config": (["pretrain", "--config", "huge", "--text", "{text}"], ["huge", "tiny"]),
    "non-numeric steps": (["pretrain", "--steps", "many"], ["--steps", "many"]),
    "zero steps": (["pretrain", "--steps", "0"], ["--steps"]),
    "non-numeric lr": (["pretrain", "--lr", "fast"], ["--lr", "fast"]),
    "negative lr": (["pretrain", "--lr", "-1"], ["--lr"]),
    "infinite lr": (["pretrain", "--lr", "inf"], ["--lr", "finite", "inf"]),
    "lr not a number": (["pretrain", "--lr", "nan"], ["--lr", "finite", "nan"]),
    "infinite temperature": (["generate", "--checkpoint", "{tmp}", "--prompt", "Hi", "--temperature", "inf"],
                             ["--temperature", "finite"]),
    "text too short for a window": (["pretrain", *FAST, "--text", "{short}", "--out", "{tmp}/o"],
                                    ["tokens", "17", "--context-length"]),
    "sizes that do not fit": (["pretrain", *FAST, "--n-heads", "3", "--text", "{text}", "--out", "{tmp}/o"],
                              ["n_heads", "3"]),
    "both --steps and --epochs": (["pretrain", "--steps", "3", "--epochs", "1"], ["--epochs"]),
    "resume of a missing dir": (["pretrain", "--resume", "{tmp}/nothing"], ["nothing"]),
    "resume of a dir that is no checkpoint": (["pretrain", "--resume", "{tmp}"], ["not a checkpoint"]),
    "generate: not a checkpoint": (["generate", "--checkpoint", "{tmp}", "--prompt", "Hi"], ["not a checkpoint"]),
    "generate: missing checkpoint": (["generate", "--checkpoint", "{tmp}/nope", "--prompt", "Hi"], ["nope"]),
    "generate: missing --gpt2 file": (["generate", "--gpt2", "{tmp}/model.safetensors", "--prompt", "Hi"],
                                      ["model.safetensors"]),
    "generate: --gpt2 not safetensors": (["generate", "--gpt2", "{text}", "--vocab", "{tmp}", "--prompt", "Hi"],
                                         ["encoder.json"]),
    "generate: no model": (["generate", "--prompt", "Hi"], ["--checkpoint"]),
    "generate: bad temperature": (["generate", "--checkpoint", "{tmp}", "--prompt", "Hi", "--temperature", "hot"],
                                  ["--temperature"]),
    "evaluate: not a checkpoint": (["evaluate", "--checkpoint", "{tmp}", "--text", "{text}"], ["not a checkpoint"]),
    "unknown command": (["train"], ["train"]),
}


@pytest.fixture(params=["empty", "holding runs/pretrain"])
def working_folder(request, trained):
    """The folder a command runs in: empty, or holding the run that the README's main job writes
    (a user who typed ``python -m gpt pretrain`` before ``pytest``); the outcome must not depend on it."""
    if request.param != "empty":
        shutil.copytree(trained[0], Path.cwd() / "runs" / "pretrain")
    return Path.cwd()


@pytest.mark.filterwarnings("ignore:training stopped after")      # the tokenizer on a very short text
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_ends_with_a_one_line_error(case, tmp_path, text_file, short_text, working_folder):
    argv, expected = BAD_INPUTS[case]
    argv = [a.format(tmp=tmp_path, text=text_file, short=short_text) for a in argv]
    code, stdout, stderr = run_cli(*argv)
    check_one_line_error(code, stderr, *expected)
    assert "validation loss" not in stdout


def test_bad_checkpoint_and_text_for_evaluate(trained, tmp_path):
    out, _, _ = trained
    code, _, stderr = run_cli("evaluate", "--checkpoint", out, "--text", tmp_path / "missing.txt")
    check_one_line_error(code, stderr, "missing.txt")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    code, _, stderr = run_cli("generate", "--checkpoint", damaged, "--prompt", "Hi")
    check_one_line_error(code, stderr, str(damaged / "config.json"))


def test_gpt2_weights_that_are_not_safetensors(reference_data, text_file):
    code, _, stderr = run_cli("generate", "--gpt2", text_file, "--vocab", reference_data / "gpt2", "--prompt", "Hi")
    check_one_line_error(code, stderr, str(text_file))


def test_resume_extends_a_finished_run(trained, tmp_path):
    out = tmp_path / "ck"
    shutil.copytree(trained[0], out)
    code, stdout, stderr = run_cli("pretrain", "--resume", out, "--steps", 8, "--quiet")
    assert code == 0, stderr
    assert VALIDATION_LOSS.fullmatch(stdout.strip())
    ck = load_checkpoint(out)
    assert ck.path.name == "step-000008" and ck.trainer_state["train_state"]["step"] == 8
    assert json.loads((out / "log.json").read_text())["eval_steps"] == [3, 6, 8]


def test_a_new_run_does_not_overwrite_the_run_in_its_out_folder(trained, tmp_path, text_file):
    out = tmp_path / "ck"
    shutil.copytree(trained[0], out)
    before = weights(out)
    code, stdout, stderr = run_cli("pretrain", *FAST, "--text", text_file, "--steps", 6, "--eval-every", 3,
                                   "--seed", 7, "--out", out, "--quiet")
    check_one_line_error(code, stderr, str(out), "--resume")
    assert_same_arrays(weights(out), before)
    assert load_checkpoint(out).path.name == "step-000006"


def test_resume_with_a_different_text_or_no_steps_left(trained, tmp_path, short_text):
    out, _, _ = trained
    code, _, stderr = run_cli("pretrain", "--resume", out, "--steps", 6)
    check_one_line_error(code, stderr, "already has 6 steps", "--steps")
    code, _, stderr = run_cli("pretrain", "--resume", out, "--steps", 9, "--text", short_text)
    check_one_line_error(code, stderr, "text")
    # what shapes the model or the optimizer cannot change (it would be ignored, or break bit-exactness)
    for flag, value in (("--lr", 0.5), ("--emb-dim", 48), ("--batch-size", 3)):
        code, _, stderr = run_cli("pretrain", "--resume", out, "--steps", 9, flag, value)
        check_one_line_error(code, stderr, flag, "cannot change when resuming")


@pytest.mark.parametrize("argv, expected", [
    (["pretrain", "--text", "{tmp}/nope.txt"], ["nope.txt"]),
    (["pretrain", "--steps", "abc"], ["--steps"]),
    (["generate", "--checkpoint", "{tmp}", "--prompt", "Hi"], ["not a checkpoint"]),
])
def test_bad_input_in_a_subprocess(argv, expected, tmp_path, working_folder):
    code, stdout, stderr = run_subprocess(*[a.format(tmp=tmp_path) for a in argv], timeout=60)
    check_one_line_error(code, stderr, *expected)
    assert code == 2


def test_tests_run_in_an_empty_temporary_folder_of_their_own(tmp_path):
    here = Path.cwd()
    assert list(here.iterdir()) == [] and here != tmp_path
    assert not here.resolve().is_relative_to(Path(__file__).resolve().parents[1])


def test_the_guard_sees_what_a_test_adds_changes_or_removes_in_the_repository(tmp_path):
    import os

    from tests.conftest import changes, repository_entries

    repo = tmp_path / "repo"
    (repo / "gpt").mkdir(parents=True)
    (repo / "data").mkdir()
    (repo / "data" / "kept.txt").write_text("original")
    (repo / "data" / "gone.txt").write_text("x")
    (repo / ".venv").mkdir()
    (repo / ".venv" / "pyvenv.cfg").write_text("home = /usr")    # a virtual environment: not read
    before = repository_entries(repo)
    assert str(repo / ".venv") not in before
    (repo / "__pycache__").mkdir()                       # Python's own: not counted
    (repo / "runs" / "pretrain").mkdir(parents=True)     # a test's: counted, folder and all
    (repo / "data" / "kept.txt").write_text("changed!")  # same name, new content
    os.utime(repo / "data" / "kept.txt", ns=(1, 1))
    (repo / "data" / "gone.txt").unlink()
    assert changes(before, repository_entries(repo)) == sorted(
        str(p) for p in (repo / "runs", repo / "runs" / "pretrain", repo / "data" / "kept.txt", repo / "data" / "gone.txt"))


@pytest.mark.parametrize("command", ["pretrain", "generate", "evaluate"])
def test_help(command):
    code, stdout, _ = run_cli(command, "--help")
    assert code == 0 and stdout.startswith("usage: python -m gpt " + command)


def test_resuming_a_run_of_the_earlier_unsplit_default_corpus_says_to_start_anew(trained, tmp_path):
    out = tmp_path / "old"
    shutil.copytree(trained[0], out)
    step = out / (out / "latest").read_text().strip()
    config = json.loads((step / "config.json").read_text())
    settings = config["info"]["settings"]
    settings["text"] = None          # a run of the default corpus, saved before 'corpus' was recorded
    settings.pop("corpus", None)
    (step / "config.json").write_text(json.dumps(config))
    code, _, stderr = run_cli("pretrain", "--resume", out, "--steps", 9)
    check_one_line_error(code, stderr, "earlier version", "start a new run")


@pytest.mark.parametrize("kind", ["alibi", "t5"])
def test_pretrain_generate_and_evaluate_with_relative_positions(kind, text_file, tmp_path):
    """--pos-emb alibi|t5 trains, saves, generates past its context length and evaluates at 2x it."""
    out = tmp_path / "ck"
    code, stdout, stderr = run_cli("pretrain", *FAST, "--text", text_file, "--steps", 2, "--eval-every", 2,
                                   "--pos-emb", kind, "--out", out, "--quiet")
    assert code == 0, stderr
    ck = load_checkpoint(out)
    assert ck.config.pos_emb == kind
    ctx = ck.config.context_length
    code, stdout, stderr = run_cli("generate", "--checkpoint", out, "--prompt", "The cat", "--max-new-tokens", ctx + 5)
    assert code == 0, stderr
    code, stdout, stderr = run_cli("evaluate", "--checkpoint", out, "--text", text_file, "--context", 2 * ctx)
    assert code == 0, stderr
    assert f"of {2 * ctx} (trained at {ctx})" in stdout
