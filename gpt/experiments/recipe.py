"""Which pretraining recipe learns most from the default corpus in about five minutes on a laptop?

``python -m gpt experiment recipe`` runs ``python -m gpt pretrain`` once per candidate in
:data:`CANDIDATES` (each a few command-line options over the command's defaults) on the default corpus
and records, per candidate: its CPU time and wall time, the training loss at the last evaluation,
the validation loss over the whole held-out split (documents the model never saw), and the gap
between the two. The default recipe of ``pretrain`` is the candidate with the lowest validation
loss among those that cost at most five minutes with a gap of at most 0.3 nats; the README
reports the table.

Every run uses the same seed, tokenizer settings (a 4,096-token vocabulary: losses in nats per token
are only comparable with the same tokenizer) and evaluation settings. Runs are subprocesses with one
BLAS thread, ``--jobs`` at a time; the time that decides is each run's own CPU time, which is what
it takes alone on an idle machine and changes little when other work shares the machine (its wall
time is recorded too). A candidate whose folder already holds a result is not run again; one that
was interrupted resumes (its times are then unknown: NaN).
"""
from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = ["CANDIDATES", "CHOSEN", "FAST_CANDIDATES", "run_sweep", "choose"]

# name -> options over pretrain's other defaults (each names its steps and batch size, so that the
# sweep means the same whatever the defaults are). Budgets of 4-5 minutes on the project's 2-core
# machine (a mini step of 16 x 128 tokens takes about 0.6 s there); the last two spend the tokens of
# 300 steps of 16 windows in more, smaller steps.
CANDIDATES: dict[str, list[str]] = {
    "mini-400": ["--steps", "400", "--batch-size", "16"],
    "mini-400-lr1e-3": ["--steps", "400", "--batch-size", "16", "--lr", "1e-3"],
    "mini-400-drop0": ["--steps", "400", "--batch-size", "16", "--drop-rate", "0"],
    "mini-400-drop0.2": ["--steps", "400", "--batch-size", "16", "--drop-rate", "0.2"],
    "narrow-192-600": ["--steps", "600", "--batch-size", "16", "--emb-dim", "192", "--n-heads", "4"],
    "deep-6x256-280": ["--steps", "280", "--batch-size", "16", "--n-layers", "6"],
    "mini-300": ["--steps", "300", "--batch-size", "16"],
    "mini-300-drop0.2": ["--steps", "300", "--batch-size", "16", "--drop-rate", "0.2"],
    "mini-b12-400": ["--steps", "400", "--batch-size", "12"],
    "mini-b8-600": ["--steps", "600", "--batch-size", "8"],
}
# The candidate the sweep chose on the project's machine; pretrain's DEFAULTS are its options (a test
# checks that they agree).
CHOSEN = "mini-b8-600"

# For the tests: two tiny runs on a few thousand tokens' worth of steps.
FAST_CANDIDATES: dict[str, list[str]] = {
    "tiny-a": ["--config", "tiny", "--context-length", "32", "--vocab-size", "300", "--batch-size", "4",
               "--steps", "4", "--eval-every", "2", "--eval-batches", "2"],
    "tiny-b": ["--config", "tiny", "--context-length", "32", "--vocab-size", "300", "--batch-size", "4",
               "--steps", "4", "--eval-every", "2", "--eval-batches", "2", "--lr", "1e-3"],
}

MAX_SECONDS = 300.0
MAX_GAP = 0.3
FIELDS = ("name", "options", "steps", "seconds", "cpu_seconds", "train_loss", "val_loss", "gap")
_VALIDATION = re.compile(r"^validation loss (\S+)$", re.M)


def _same_code_env() -> dict:
    """The environment for a ``python -m gpt`` subprocess that imports this very copy of gpt, with one
    BLAS thread (so that its CPU time is what the run costs, whatever else the machine runs)."""
    here = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)
    return dict(os.environ, PYTHONPATH=path, GPT_DEBUG="", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _run_one(name: str, options: list[str], folder: Path) -> dict:
    """Run (or resume) one candidate in ``folder`` and return its row."""
    result_file = folder / "result.json"
    if result_file.is_file():
        return json.loads(result_file.read_text())
    resume = (folder / "latest").is_file()
    argv = ["--resume", str(folder)] if resume else [*options, "--out", str(folder)]
    folder.parent.mkdir(parents=True, exist_ok=True)
    output = folder.parent / f"{name}.log"
    started = time.perf_counter()
    with open(output, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gpt", "pretrain", "--quiet", *argv], stdout=log,
                                stderr=subprocess.STDOUT, env=_same_code_env())
        _, status, usage = os.wait4(proc.pid, 0)        # this child's own CPU time, even with others running
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    printed = output.read_text()
    found = _VALIDATION.search(printed)
    if proc.returncode != 0 or not found:
        raise RuntimeError(f"candidate {name} failed (exit {proc.returncode}): "
                           f"{(printed.strip().splitlines() or ['no message'])[-1]}")
    log = json.loads((folder / "log.json").read_text())
    train_loss, val_loss = log["train_losses"][-1], float(found.group(1))
    cpu = usage.ru_utime + usage.ru_stime
    if resume:   # the time of the part before the interruption is lost; say so rather than guess
        seconds = cpu = float("nan")
    row = dict(name=name, options=" ".join(options), steps=log["eval_steps"][-1], seconds=round(seconds, 1),
               cpu_seconds=round(cpu, 1), train_loss=round(train_loss, 3), val_loss=round(val_loss, 3),
               gap=round(val_loss - train_loss, 3))
    from gpt.atomic import write_text_atomic

    write_text_atomic(result_file, json.dumps(row) + "\n")
    return row


def choose(rows: list[dict], max_seconds: float = MAX_SECONDS, max_gap: float = MAX_GAP) -> dict | None:
    """The row with the lowest validation loss among those within the limits of time (CPU time, one
    BLAS thread: what the run costs on an otherwise idle machine) and gap."""
    fits = [r for r in rows if r["cpu_seconds"] <= max_seconds and r["gap"] <= max_gap]
    return min(fits, key=lambda r: r["val_loss"]) if fits else None


def run_sweep(out: Path, candidates: dict[str, list[str]] = CANDIDATES, jobs: int = 1,
              say: Callable[[str], None] = print) -> list[dict]:
    """Run every candidate into ``out/<name>``, ``jobs`` at a time; write ``out/results.csv``; return
    the rows in the order of ``candidates``."""
    from concurrent.futures import ThreadPoolExecutor

    out.mkdir(parents=True, exist_ok=True)

    def one(item):
        name, options = item
        say(f"{name}: {' '.join(options)}")
        row = _run_one(name, list(options), out / name)
        say(f"    {name}: {row['cpu_seconds']:.0f} s of CPU ({row['seconds']:.0f} s wall), train {row['train_loss']:.3f}, "
            f"validation {row['val_loss']:.3f}, gap {row['gap']:.3f}")
        return row

    with ThreadPoolExecutor(max_workers=jobs) as pool:     # threads only wait for the subprocesses
        rows = list(pool.map(one, candidates.items()))
    from gpt.atomic import atomic_write

    with atomic_write(out / "results.csv", "w") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def table(rows: list[dict], chosen: dict | None) -> str:
    """The rows as a Markdown table, the chosen one in bold."""
    lines = ["| candidate | options | steps | CPU time | train loss | validation loss | gap |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = "**" if chosen is not None and r["name"] == chosen["name"] else ""
        lines.append(f"| {mark}{r['name']}{mark} | `{r['options']}` | {r['steps']} | {r['cpu_seconds']:.0f} s | "
                     f"{r['train_loss']:.3f} | {mark}{r['val_loss']:.3f}{mark} | {r['gap']:.3f} |")
    return "\n".join(lines)
