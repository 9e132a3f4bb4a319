"""Do relative positions generalise to longer texts than a model was trained on?

``python -m gpt experiment positions`` trains one small GPT per position scheme of
:mod:`gpt.positions` (learned, rope, alibi, t5, none) on the default corpus, with the same seed,
initial weights (as far as the schemes share them), data order and step budget, at context T.
Then it reads the held-out documents in non-overlapping windows of T, 2T and 4T tokens and records
the loss at every position of a window, averaged over the windows: ``results.csv`` has the columns
``scheme,seed,eval_context,position,loss``. Learned positions have no vector for position T or
later, so they are evaluated at T only. The trained rope model is read at 2T and 4T once more with
each of RoPE's inference-time stretches (``rope+linear``: position interpolation, ``rope+ntk``:
NTK-aware base; factor = window / T), which need no training. The mean over positions is the usual whole-window loss;
the curve shows where it comes from (a window's first tokens have little context and a high loss,
whatever the scheme: the "early-token" effect that longer windows dilute).

One tokenizer, trained once on the training documents, serves every scheme, so losses in nats per
token compare. A finished scheme (its ``result.json``) is not trained again when the command runs
again; each also leaves a checkpoint, so ``python -m gpt evaluate --checkpoint DIR/alibi-seed0
--context 512`` reads it at other lengths. This is the small-scale version of Press et al. 2022
("Train Short, Test Long", their figure 1 and table 1) and of Kazemnejad et al. 2023 (NoPE).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["SCHEMES", "Settings", "DEFAULT", "FAST", "run_experiment", "summarise", "table", "bands_table", "plot"]

SCHEMES = ("learned", "rope", "alibi", "t5", "none")
MULTIPLES = (1, 2, 4)          # evaluation windows, in multiples of the training context
ROPE_SCALINGS = ("linear", "ntk")   # the trained rope model is also read with these (no training)


@dataclass(frozen=True)
class Settings:
    """What every scheme shares. The defaults take about 10 minutes for the five schemes on the
    project's 2-core machine (one BLAS thread, with other work running beside it)."""

    context: int = 64
    steps: int = 600
    seeds: int = 1
    seed: int = 123
    vocab_size: int = 2048
    emb_dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    batch_size: int = 16
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 50
    weight_decay: float = 0.1
    num_buckets: int = 32               # t5's table; max_distance None: the context length
    max_distance: int | None = None
    eval_tokens: int = 65_536          # held-out tokens read at each length (the first ones)
    max_train_chars: int | None = None  # None: every training document
    max_val_chars: int | None = None


DEFAULT = Settings()
# For the tests and --fast: a few steps of a 1-layer model on a slice of the corpus.
FAST = Settings(context=16, steps=3, vocab_size=300, emb_dim=16, n_layers=1, n_heads=2, batch_size=4, warmup=1,
                eval_tokens=16 * 4 * 3 + 1, max_train_chars=20_000, max_val_chars=8_000)


def _texts(settings: Settings) -> tuple[str, str]:
    from gpt.corpus import corpus_documents, split_documents

    train_text, val_text = split_documents(corpus_documents("docs"))
    return train_text[:settings.max_train_chars], val_text[:settings.max_val_chars]


def _tokenizer(out: Path, train_text: str, settings: Settings):
    """Trained once and saved, so that a resumed experiment uses the very same vocabulary."""
    from gpt.atomic import write_text_atomic
    from gpt.tokenizer import BPETokenizer

    path = out / "tokenizer.bpe"
    settings_file = out / "settings.json"
    # every setting but the number of seeds (more seeds may be added to a finished experiment)
    wanted = json.dumps({k: v for k, v in dataclasses.asdict(settings).items() if k != "seeds"}, sort_keys=True)
    if settings_file.is_file() and settings_file.read_text().strip() != wanted:
        raise ValueError(f"{out} holds an experiment with other settings ({settings_file}); "
                         "pass another --out or the same settings")
    if path.is_file():
        return BPETokenizer.load(path)
    tokenizer = BPETokenizer.train(train_text, settings.vocab_size)
    tokenizer.save(path)
    write_text_atomic(settings_file, wanted + "\n")
    return tokenizer


def train_one(scheme: str, seed: int, train_ids: np.ndarray, vocab_size: int, settings: Settings,
              say: Callable[[str], None] = print):
    """A GPT with ``scheme`` positions trained on ``train_ids``; returns (model, final training loss)."""
    import minigrad as mg
    from minigrad.optim import AdamW

    from gpt.data import DataLoader, GPTDataset
    from gpt.model import GPTConfig, GPTModel
    from gpt.train import Trainer

    s = settings
    mg.manual_seed(seed)                       # the same initial weights wherever the schemes share them
    cfg = GPTConfig(vocab_size=vocab_size, context_length=s.context, emb_dim=s.emb_dim, n_heads=s.n_heads,
                    n_layers=s.n_layers, drop_rate=0.0, pos_emb=scheme, num_buckets=s.num_buckets,
                    max_distance=s.max_distance)
    model = GPTModel(cfg)
    loader = DataLoader(GPTDataset(train_ids, s.context, s.context), batch_size=s.batch_size, shuffle=True,
                        drop_last=True, seed=seed)          # the same batches in the same order
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = AdamW([{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                      lr=s.lr)
    trainer = Trainer(model, optimizer, loader, None, total_steps=s.steps, peak_lr=s.lr, warmup_steps=s.warmup,
                      initial_lr=s.lr / 100, min_lr=s.min_lr, eval_freq=s.steps, eval_iter=1)
    every = max(1, s.steps // 10)
    started = time.perf_counter()

    def progress(t, loss):
        if t.state.step % every == 0 or t.state.step == s.steps:
            rate = t.state.step / (time.perf_counter() - started)
            say(f"    step {t.state.step}/{s.steps}  loss {loss:.3f}  ({rate:.1f} steps/s)")

    trainer.run(on_step=progress)
    return model, trainer.state.last_loss


def evaluate_one(model, val_ids: np.ndarray, settings: Settings) -> dict[int, list[float]]:
    """{window length: mean loss at each position} for windows of T, 2T, 4T (T only for learned)."""
    from gpt.train import evaluate_at_length

    out = {}
    for k in MULTIPLES:
        n = k * settings.context
        if n > model.cfg.context_length and not model.cfg.extrapolates:
            continue
        r = evaluate_at_length(model, val_ids[:max(settings.eval_tokens, n + 1)], n, batch_size=max(1, 32 // k))
        out[n] = [float(x) for x in r["per_position"]]
    return out


def run_experiment(out: Path, settings: Settings = DEFAULT, schemes=SCHEMES,
                   say: Callable[[str], None] = print) -> list[dict]:
    """Train and evaluate every (scheme, seed) not done yet into ``out``; write ``out/results.csv``;
    return one dict per (scheme, seed): scheme, seed, seconds, train_loss, per_position {length: [...]}."""
    from gpt.atomic import atomic_write, write_text_atomic
    from gpt.checkpoint import save_checkpoint

    out.mkdir(parents=True, exist_ok=True)
    train_text, val_text = _texts(settings)
    tokenizer = _tokenizer(out, train_text, settings)
    train_ids = np.asarray(tokenizer.encode(train_text, allowed_special="all"), dtype=np.int64)
    val_ids = np.asarray(tokenizer.encode(val_text, allowed_special="all"), dtype=np.int64)
    runs = [(scheme, settings.seed + k) for k in range(settings.seeds) for scheme in schemes]
    say(f"{len(train_ids):,} training tokens, {min(len(val_ids), settings.eval_tokens):,} held-out tokens read at "
        f"{', '.join(str(k * settings.context) for k in MULTIPLES)}; {len(runs)} runs of {settings.steps} steps")
    results = []
    for i, (scheme, seed) in enumerate(runs, 1):
        folder = out / f"{scheme}-seed{seed}"
        result_file = folder / "result.json"
        if result_file.is_file():
            say(f"[{i}/{len(runs)}] {scheme}, seed {seed}: done before")
            results.append(json.loads(result_file.read_text()))
            continue
        say(f"[{i}/{len(runs)}] {scheme}, seed {seed}: training")
        started = time.perf_counter()
        model, train_loss = train_one(scheme, seed, train_ids, tokenizer.n_vocab, settings, say)
        seconds = time.perf_counter() - started
        per_position = evaluate_one(model, val_ids, settings)
        save_checkpoint(folder, model, tokenizer=tokenizer, step=settings.steps,
                        info={"experiment": "positions", "scheme": scheme, "seed": seed})
        result = {"scheme": scheme, "seed": seed, "seconds": round(seconds, 1), "train_loss": round(train_loss, 4),
                  "per_position": {str(n): v for n, v in per_position.items()}}
        write_text_atomic(result_file, json.dumps(result) + "\n")
        results.append(result)
        say("    held-out loss " + ", ".join(f"{float(np.mean(v)):.3f} at {n}" for n, v in per_position.items())
            + f"  ({seconds:.0f} s of training, {time.perf_counter() - started - seconds:.0f} s evaluating)")
    if "rope" in schemes:
        for seed in sorted({seed for _, seed in runs}):
            results.extend(_rope_scaled(out, seed, val_ids, settings, say))
    with atomic_write(out / "results.csv", "w") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["scheme", "seed", "eval_context", "position", "loss"])
        for r in results:
            for n, losses in r["per_position"].items():
                w.writerows([r["scheme"], r["seed"], n, p, f"{loss:.5f}"] for p, loss in enumerate(losses))
    return results


def _rope_scaled(out: Path, seed: int, val_ids: np.ndarray, settings: Settings, say) -> list[dict]:
    """The trained rope model read at 2T and 4T with each of RoPE's inference-time scalings (factor 2
    and 4: the window over the trained length), as schemes "rope+linear" and "rope+ntk". No training."""
    from gpt.atomic import write_text_atomic
    from gpt.checkpoint import load_checkpoint
    from gpt.train import evaluate_at_length

    results = []
    for kind in ROPE_SCALINGS:
        result_file = out / f"rope+{kind}-seed{seed}" / "result.json"
        if result_file.is_file():
            results.append(json.loads(result_file.read_text()))
            continue
        model = load_checkpoint(out / f"rope-seed{seed}", load_training_state=False).model
        per_position = {}
        for k in MULTIPLES[1:]:
            n = k * settings.context
            model.set_rope_scaling({"type": kind, "factor": float(k)})
            r = evaluate_at_length(model, val_ids[:max(settings.eval_tokens, n + 1)], n, batch_size=max(1, 32 // k))
            per_position[str(n)] = [float(x) for x in r["per_position"]]
        result = {"scheme": f"rope+{kind}", "seed": seed, "seconds": 0.0, "train_loss": None,
                  "per_position": per_position}
        result_file.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(result_file, json.dumps(result) + "\n")
        say(f"    rope read with {kind} scaling (factor = window / {settings.context}): held-out loss "
            + ", ".join(f"{float(np.mean(v)):.3f} at {n}" for n, v in per_position.items()))
        results.append(result)
    return results


def summarise(results: list[dict]) -> dict[str, dict[int, tuple[float, float, int]]]:
    """{scheme: {window length: (mean over seeds of the window's mean loss, spread = max - min, seeds)}}."""
    by: dict[str, dict[int, list[float]]] = {}
    for r in results:
        for n, losses in r["per_position"].items():
            by.setdefault(r["scheme"], {}).setdefault(int(n), []).append(float(np.mean(losses)))
    return {s: {n: (float(np.mean(v)), float(np.max(v) - np.min(v)), len(v)) for n, v in d.items()}
            for s, d in by.items()}


def table(results: list[dict], context: int) -> str:
    """A Markdown table: mean held-out loss per scheme at T, 2T and 4T (± the spread over seeds)."""
    summary = summarise(results)
    lengths = [k * context for k in MULTIPLES]
    lines = ["| scheme | " + " | ".join(f"loss at {n}" + (" (trained)" if n == context else "") for n in lengths) + " |",
             "|---|" + "---|" * len(lengths)]
    for scheme, cells in summary.items():
        row = []
        for n in lengths:
            if n not in cells:
                row.append("—")
                continue
            mean, spread, count = cells[n]
            row.append(f"{mean:.3f}" + (f" ± {spread / 2:.3f}" if count > 1 else ""))
        lines.append(f"| {scheme} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def bands_table(results: list[dict], context: int) -> str:
    """The per-position curves in four bands of the longest window each scheme was read at: the first
    8 positions (little context: the "early-token" effect), the rest of the trained length, the
    second T (twice the trained distance) and the last 2T; means over positions and seeds."""
    t = context
    bands = [(0, min(8, t)), (min(8, t), t), (t, 2 * t), (2 * t, 4 * t)]
    lines = [f"| scheme (window) | positions 0-{bands[0][1] - 1} | {bands[1][0]}-{t - 1} | {t}-{2 * t - 1} | "
             f"{2 * t}-{4 * t - 1} |", "|---|---|---|---|---|"]
    for scheme in dict.fromkeys(r["scheme"] for r in results):
        runs = [r["per_position"] for r in results if r["scheme"] == scheme]
        n = max(int(k) for k in runs[0])
        curve = np.mean([run[str(n)] for run in runs], axis=0)
        cells = [f"{curve[a:b].mean():.3f}" if b <= n and b > a else "—" for a, b in bands]
        lines.append(f"| {scheme} ({n}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict], context: int, path: Path) -> bool:
    """Loss against position in the longest window (4T; learned in T), one line per scheme, averaged
    over seeds and smoothed over 16 positions (the windows' texts make each position's mean jump; the
    schemes read the same windows, so the gaps between the lines are what to look at). False (and no file) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for scheme in dict.fromkeys(r["scheme"] for r in results):
        runs = [r["per_position"] for r in results if r["scheme"] == scheme]
        n = max(int(k) for k in runs[0])
        curve = np.mean([run[str(n)] for run in runs], axis=0)
        w = min(16, len(curve))
        smooth = np.convolve(curve, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(len(smooth)) + (w - 1) / 2, smooth, label=scheme)
    ax.axvline(context, color="black", lw=0.8, ls="--", label=f"trained length {context}")
    ax.set_xlabel("position in the window")
    ax.set_ylabel("held-out loss (nats per token)")
    ax.set_title("Loss by position, windows of 4x the training length")
    ax.legend(loc="upper center", ncol=4, fontsize="small")
    fig.tight_layout()
    from gpt.atomic import atomic_write

    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return True
