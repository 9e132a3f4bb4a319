"""Tests for ``python -m gpt experiment``: each experiment end to end in its fast mode."""
import csv
import json
import re

import numpy as np
import pytest

from gpt.checkpoint import load_checkpoint
from gpt.experiments import recipe
from tests.cli_helpers import check_one_line_error, run_cli


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("recipe")
    code, stdout, stderr = run_cli("experiment", "recipe", "--fast", "--out", out, "--jobs", 2)
    assert code == 0, stderr
    return out, stdout


def test_recipe_sweep_writes_a_row_per_candidate_and_names_the_best(recipe_run):
    out, stdout = recipe_run
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == list(recipe.FAST_CANDIDATES)
    for r in rows:
        train, val, gap = float(r["train_loss"]), float(r["val_loss"]), float(r["gap"])
        assert gap == pytest.approx(val - train, abs=2e-3)
        assert float(r["seconds"]) > 0 and 0 < float(r["cpu_seconds"]) < 4 * float(r["seconds"])
        assert int(r["steps"]) == 4
        ck = load_checkpoint(out / r["name"])          # a real run of pretrain, on the default corpus
        assert ck.info["settings"]["corpus"] == "docs" and ck.info["settings"]["text"] is None
        assert f"{float(r['val_loss']):.3f}" in stdout
    numbers = [dict(r, **{k: float(r[k]) for k in ("cpu_seconds", "gap", "val_loss")}) for r in rows]
    best = recipe.choose(numbers)
    assert (f"chosen: {best['name']}" if best else "no candidate ran within") in stdout


def test_recipe_sweep_does_not_rerun_a_finished_candidate(recipe_run, tmp_path):
    out, _ = recipe_run
    before = {name: (out / name / "result.json").read_text() for name in recipe.FAST_CANDIDATES}
    code, stdout, stderr = run_cli("experiment", "recipe", "--fast", "--out", out)
    assert code == 0, stderr
    assert {name: (out / name / "result.json").read_text() for name in recipe.FAST_CANDIDATES} == before


def test_recipe_only_runs_the_candidates_named(recipe_run):
    out, _ = recipe_run
    code, stdout, stderr = run_cli("experiment", "recipe", "--fast", "--out", out, "--only", "tiny-b")
    assert code == 0, stderr
    assert "| tiny-b |" in stdout.replace("**", "") and "tiny-a" not in stdout


def test_choose_keeps_to_the_time_and_gap_limits():
    rows = [dict(name="slow", cpu_seconds=400, gap=0.1, val_loss=3.0),
            dict(name="overfit", cpu_seconds=100, gap=0.5, val_loss=3.1),
            dict(name="ok", cpu_seconds=290, gap=0.2, val_loss=3.5),
            dict(name="worse", cpu_seconds=100, gap=0.0, val_loss=3.6)]
    assert recipe.choose(rows)["name"] == "ok"
    assert recipe.choose(rows[:2]) is None


def test_experiment_bad_input(tmp_path):
    code, _, stderr = run_cli("experiment", "nonsense")
    check_one_line_error(code, stderr, "nonsense")
    (tmp_path / "file").write_text("x")
    code, _, stderr = run_cli("experiment", "recipe", "--fast", "--out", tmp_path / "file")
    check_one_line_error(code, stderr, "is a file")
    code, _, stderr = run_cli("experiment", "recipe", "--fast", "--only", "tiny-z", "--out", tmp_path / "r")
    check_one_line_error(code, stderr, "unknown candidate 'tiny-z'", "tiny-a")


# ---------------------------------------------------------------------- seq2seq
@pytest.fixture(scope="module")
def seq2seq_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("seq2seq")
    code, stdout, stderr = run_cli("experiment", "seq2seq", "--fast", "--out", out)
    assert code == 0, stderr
    return out, stdout


def test_seq2seq_writes_accuracy_by_length_for_each_model(seq2seq_run):
    from gpt.experiments import seq2seq

    out, stdout = seq2seq_run
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["model", "length", "accuracy"]
    assert [(r["model"], r["length"]) for r in rows] == [
        (m, f"{lo}-{hi}") for m in seq2seq.MODELS for lo, hi in seq2seq.FAST.buckets]
    accuracy = {(r["model"], r["length"]): float(r["accuracy"]) for r in rows}
    assert all(0 <= a <= 1 for a in accuracy.values())
    # the attention model learns the short readings in seconds (chance is at most 1 in 10)
    assert accuracy["rnn-bahdanau", "1-2"] >= 0.5
    assert "| 1-2 |" in stdout and "rnn-bahdanau's alignment" in stdout
    for name in seq2seq.MODELS:
        result = json.loads((out / name / "result.json").read_text())
        assert result["parameters"] > 0 and (out / name / "model.safetensors").is_file()


def test_seq2seq_does_not_retrain_a_finished_model_and_refuses_other_settings(seq2seq_run):
    out, _ = seq2seq_run
    before = {p: p.read_text() for p in out.glob("*/result.json")}
    code, stdout, stderr = run_cli("experiment", "seq2seq", "--fast", "--out", out)
    assert code == 0, stderr
    assert stdout.count("not redone") == 3 and "step " not in stdout
    assert {p: p.read_text() for p in out.glob("*/result.json")} == before
    code, _, stderr = run_cli("experiment", "seq2seq", "--out", out)       # the full settings, same folder
    check_one_line_error(code, stderr, "other settings")


# ---------------------------------------------------------------------- positions
from gpt.experiments import positions  # noqa: E402


@pytest.fixture(scope="module")
def positions_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("positions")
    code, stdout, stderr = run_cli("experiment", "positions", "--fast", "--out", out)
    assert code == 0, stderr
    return out, stdout


def line_with(text, start):
    return next(line for line in text.splitlines() if line.startswith(start))


def test_positions_writes_the_loss_at_every_position_per_scheme_and_length(positions_run):
    out, stdout = positions_run
    t = positions.FAST.context
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["scheme", "seed", "eval_context", "position", "loss"]
    lengths = {}
    for r in rows:
        lengths.setdefault(r["scheme"], {}).setdefault(int(r["eval_context"]), []).append(int(r["position"]))
    assert list(lengths) == [*positions.SCHEMES, "rope+linear", "rope+ntk"]
    assert list(lengths["learned"]) == [t]                      # learned positions end at T
    for scheme in lengths:
        if scheme != "learned":    # the rope model read with a stretch: at 2T and 4T only
            assert list(lengths[scheme]) == ([2 * t, 4 * t] if "+" in scheme else [t, 2 * t, 4 * t])
        for n, pos in lengths[scheme].items():
            assert pos == list(range(n))
    assert all(0 < float(r["loss"]) < 20 for r in rows)
    # the printed table: one row per scheme, the mean over positions of each window length
    for scheme in positions.SCHEMES:
        line = next(l for l in stdout.splitlines() if l.startswith(f"| {scheme} |"))
        mean = np.mean([float(r["loss"]) for r in rows if r["scheme"] == scheme and int(r["eval_context"]) == t])
        assert f"{mean:.3f}" in line
    assert "| learned | " in stdout and "— | — |" in stdout and "| rope+ntk | — |" in stdout
    # the per-position curve in bands: the first 8 positions of alibi's 4T windows, from the CSV
    band = np.mean([float(r["loss"]) for r in rows
                    if r["scheme"] == "alibi" and int(r["eval_context"]) == 4 * t and int(r["position"]) < 8])
    assert line_with(stdout, f"| alibi ({4 * t}) | {band:.3f} |")
    assert line_with(stdout, f"| learned ({t}) |").endswith("| — | — |")
    assert ("plot: " in stdout) and (out / "positions.png").is_file() == ("not drawn" not in stdout)


def test_positions_schemes_share_data_order_and_initial_weights(positions_run):
    """alibi, t5 and none start from the same weights (T5's table starts at zero and is made last);
    every scheme saved a checkpoint of its own kind."""
    out, _ = positions_run
    for scheme in positions.SCHEMES:
        ck = load_checkpoint(out / f"{scheme}-seed{positions.FAST.seed}")
        assert ck.config.pos_emb == scheme and ck.config.context_length == positions.FAST.context
    import minigrad as mg
    from gpt.model import GPTConfig, GPTModel

    def initial(kind):
        mg.manual_seed(1)
        return GPTModel(GPTConfig(vocab_size=30, context_length=8, emb_dim=8, n_heads=2, n_layers=1, pos_emb=kind))

    none = initial("none").state_dict()
    for kind in ("alibi", "t5", "rope"):
        sd = initial(kind).state_dict()
        assert all(np.array_equal(sd[k], v) for k, v in none.items())


def test_positions_does_not_retrain_a_finished_scheme_and_keeps_its_settings(positions_run):
    out, _ = positions_run
    before = {p.name: p.read_text() for p in out.glob("*/result.json")}
    code, stdout, stderr = run_cli("experiment", "positions", "--fast", "--out", out)
    assert code == 0, stderr
    assert stdout.count("done before") == len(positions.SCHEMES)
    assert {p.name: p.read_text() for p in out.glob("*/result.json")} == before
    code, _, stderr = run_cli("experiment", "positions", "--fast", "--steps", 4, "--out", out)
    check_one_line_error(code, stderr, "other settings")


def test_evaluate_reads_longer_windows_where_the_positions_allow(positions_run, tmp_path):
    out, _ = positions_run
    text = tmp_path / "t.txt"
    text.write_text("The for statement is used to iterate over the elements of a sequence. " * 20)
    t = positions.FAST.context
    code, stdout, stderr = run_cli("evaluate", "--checkpoint", out / "alibi-seed123", "--text", text,
                                   "--context", 4 * t, "--per-position")
    assert code == 0, stderr
    assert f"of {4 * t} (trained at {t})" in stdout and "positions  loss" in stdout
    assert re.search(r"^loss \d+\.\d{4}  perplexity", stdout, re.M)
    code, stdout, stderr = run_cli("evaluate", "--checkpoint", out / "rope-seed123", "--text", text,
                                   "--context", 2 * t, "--stride", t // 2, "--rope-scaling", "ntk:2")
    assert code == 0, stderr
    assert "ntk:2" in stdout
    code, _, stderr = run_cli("evaluate", "--checkpoint", out / "learned-seed123", "--text", text, "--context", 2 * t)
    check_one_line_error(code, stderr, "learned positions")
    code, _, stderr = run_cli("evaluate", "--checkpoint", out / "alibi-seed123", "--text", text, "--rope-scaling", "linear:2")
    check_one_line_error(code, stderr, "rope models")


def test_pretrains_defaults_are_the_recipe_the_sweep_chose():
    from gpt.cli.pretrain import DEFAULTS
    from gpt.model import PRESETS

    options = recipe.CANDIDATES[recipe.CHOSEN]
    chosen = dict(zip((o[2:].replace("-", "_") for o in options[::2]), options[1::2]))
    for name, value in chosen.items():
        default = DEFAULTS.get(name, PRESETS[DEFAULTS["config"]].get(name))
        assert float(value) == float(default), name
