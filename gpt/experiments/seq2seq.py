"""Why attention? A fixed-context RNN encoder-decoder, the same with Bahdanau attention, and the
original encoder-decoder Transformer, trained on the same task with the same budget.

``python -m gpt experiment seq2seq`` trains the three models of :data:`MODELS` (about 200k
parameters each) for the same number of steps on the same stream of generated examples (a number
read aloud, "four double five ...", to be written in digits: :mod:`gpt.seq2seq.task`, readings of 1
to 20 words), then measures exact-match accuracy (greedy decoding) on held-out readings grouped by
length, up to twice the longest training reading. It writes ``results.csv`` (``model,length,accuracy``),
prints a table, and with matplotlib draws ``accuracy.png`` (accuracy against input length) and
``alignment.png`` (the attention model's alignment for one long reading).

Each model's folder (``DIR/<model>``) gets ``model.safetensors`` and ``result.json`` when it is done;
a model whose folder has its result is not trained again, so an interrupted run continues with the
next model. A folder made with other settings (``--fast`` or not) is refused.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

import minigrad as mg

from gpt.seq2seq import task
from gpt.seq2seq.rnn import BahdanauEncoderDecoder, RNNEncoderDecoder
from gpt.seq2seq.train import accuracy_by_length, answers, train_model
from gpt.seq2seq.transformer import EncoderDecoderTransformer

__all__ = ["Settings", "DEFAULT", "FAST", "MODELS", "main", "run", "table", "alignment_text", "example_alignment"]


@dataclass(frozen=True)
class Settings:
    steps: int
    batch_size: int
    min_words: int
    max_words: int                      # the longest reading seen in training
    buckets: tuple                      # (lo, hi) word-count buckets of the test set
    per_bucket: int
    emb_dim: int                        # the RNNs' embeddings
    hidden_size: int                    # the RNN encoder's, per direction (the decoder has twice)
    d_model: int                        # the Transformer's
    n_layers: int
    lr: float = 2e-3
    seed: int = 0

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))


# About 10 minutes for all three on a 2-core machine shared with others (steps of 32 readings).
DEFAULT = Settings(steps=1200, batch_size=32, min_words=1, max_words=20,
                   buckets=((1, 5), (6, 10), (11, 15), (16, 20), (21, 25), (26, 30), (31, 40)), per_bucket=100,
                   emb_dim=64, hidden_size=64, d_model=64, n_layers=2)
# Seconds, for the tests: readings of up to 5 words, tiny models.
FAST = Settings(steps=120, batch_size=16, min_words=1, max_words=5, buckets=((1, 2), (3, 5), (6, 8)), per_bucket=20,
                emb_dim=16, hidden_size=16, d_model=16, n_layers=1, lr=1e-2)

MODELS: dict[str, Callable[[Settings], mg.nn.Module]] = {
    "rnn-fixed-context": lambda s: RNNEncoderDecoder(task.VOCAB_SIZE, s.emb_dim, s.hidden_size),
    "rnn-bahdanau": lambda s: BahdanauEncoderDecoder(task.VOCAB_SIZE, s.emb_dim, s.hidden_size, attn_dim=s.hidden_size),
    "transformer": lambda s: EncoderDecoderTransformer(task.VOCAB_SIZE, d_model=s.d_model, num_heads=4,
                                                       n_layers=s.n_layers, d_ff=4 * s.d_model),
}
FIELDS = ("model", "length", "accuracy")


def label(bucket) -> str:
    lo, hi = bucket
    return f"{lo}-{hi}"


def _run_one(name: str, settings: Settings, folder: Path, test_set: dict, say) -> dict:
    from gpt import safetensors
    from gpt.atomic import write_text_atomic

    result_file = folder / "result.json"
    if result_file.is_file():
        result = json.loads(result_file.read_text())
        if result.get("settings") != settings.to_dict():
            raise RuntimeError(f"{folder} holds a result made with other settings; pass another --out")
        say(f"    done before: {result['seconds']:.0f} s of training (not redone)")
        return result
    folder.mkdir(parents=True, exist_ok=True)
    mg.manual_seed(settings.seed)
    model = MODELS[name](settings)
    say(f"    {model.num_parameters():,} parameters, {settings.steps} steps of {settings.batch_size} readings")
    log = train_model(model, settings.steps, settings.batch_size, settings.min_words, settings.max_words,
                      lr=settings.lr, seed=settings.seed, say=say, report_every=max(1, settings.steps // 5))
    accuracy = accuracy_by_length(model, test_set)
    result = dict(model=name, parameters=model.num_parameters(), seconds=round(log["seconds"], 1),
                  final_loss=round(float(np.mean(log["losses"][-20:])), 4),
                  accuracy={label(b): round(a, 4) for b, a in accuracy.items()}, settings=settings.to_dict())
    safetensors.save_file(dict(model.state_dict()), folder / "model.safetensors")
    write_text_atomic(result_file, json.dumps(result, indent=1) + "\n")     # last: marks the model done
    return result


def load_model(name: str, settings: Settings, folder: Path):
    """A trained model back from ``folder/model.safetensors``."""
    from gpt import safetensors

    model = MODELS[name](settings)
    model.load_state_dict(safetensors.load_file(folder / "model.safetensors"))
    model.eval()
    return model


def run(out: Path, settings: Settings = DEFAULT, say: Callable[[str], None] = print) -> list[dict]:
    """Train (or reuse) every model into ``out/<name>``, write ``out/results.csv``; returns the results."""
    from gpt.atomic import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    test_set = task.make_test_set(settings.seed, list(settings.buckets), settings.per_bucket)
    results = []
    for i, name in enumerate(MODELS, 1):
        say(f"[{i}/{len(MODELS)}] {name}")
        results.append(_run_one(name, settings, out / name, test_set, say))
    with atomic_write(out / "results.csv", "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(FIELDS)
        for r in results:
            writer.writerows([r["model"], length, f"{acc:.4f}"] for length, acc in r["accuracy"].items())
    return results


def table(results: list[dict], settings: Settings) -> str:
    """Accuracy by input length, one column per model, as a Markdown table."""
    lines = ["| words read aloud | " + " | ".join(r["model"] for r in results) + " |",
             "|---|" + "---|" * len(results)]
    for bucket in settings.buckets:
        beyond = " (longer than training)" if bucket[0] > settings.max_words else ""
        cells = [f"{100 * r['accuracy'][label(bucket)]:.0f} %" for r in results]
        lines.append(f"| {label(bucket)}{beyond} | " + " | ".join(cells) + " |")
    lines.append("| parameters | " + " | ".join(f"{r['parameters']:,}" for r in results) + " |")
    lines.append("| training time | " + " | ".join(f"{r['seconds']:.0f} s" for r in results) + " |")
    return "\n".join(lines)


def example_alignment(model, settings: Settings, words: int | None = None):
    """(reading, answer, alpha (T_out, S)) for one held-out reading of ``words`` words (default:
    the longest training length) that uses "double" or "triple", decoded greedily by ``model``."""
    words = words or settings.max_words
    rng = np.random.default_rng([settings.seed, 2])
    while True:
        reading = task.random_reading(rng, words)
        if "double" in reading or "triple" in reading:
            break
    answer = answers(model, [reading])[0].rstrip("…")
    batch = task.encode_batch([reading])
    tgt_in = np.array([[task.BOS] + [task.TOKEN_ID[d] for d in answer]])
    with mg.no_grad():
        _, alpha = model(batch.src, batch.src_lengths, tgt_in, return_alignment=True)
    return reading, answer, alpha[0]


def alignment_text(reading: list[str], answer: str, alpha: np.ndarray) -> str:
    """The alignment as text: one row per word read, one column per digit written (``$`` is <eos>),
    darker characters for larger weights (`` .:-=+*#%@`` for 0 .. 1)."""
    shades = " .:-=+*#%@"
    width = max(len(w) for w in reading)
    lines = [" " * width + "  " + " ".join(list(answer) + ["$"])]
    for j, word in enumerate(reading):
        lines.append(f"{word:>{width}}  " + " ".join(shades[min(9, int(a * 10))] for a in alpha[:, j]))
    return "\n".join(lines)


def plot(results: list[dict], settings: Settings, out: Path, alignment=None) -> list[Path]:
    """accuracy.png (and alignment.png given (reading, answer, alpha)) when matplotlib is installed."""
    try:
        import matplotlib
    except ImportError:
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    mids = [(lo + hi) / 2 for lo, hi in settings.buckets]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for r, marker in zip(results, "osd"):
        ax.plot(mids, [100 * r["accuracy"][label(b)] for b in settings.buckets], marker=marker, label=r["model"])
    ax.axvline(settings.max_words + 0.5, color="grey", linestyle=":", label="longest training reading")
    ax.set_xlabel("words read aloud (bucket middle)")
    ax.set_ylabel("exact-match accuracy (%)")
    ax.set_ylim(-3, 103)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=120)
    plt.close(fig)
    written.append(out / "accuracy.png")
    if alignment is not None:
        reading, answer, alpha = alignment
        fig, ax = plt.subplots(figsize=(0.32 * len(reading) + 2, 0.32 * alpha.shape[0] + 1.5))
        ax.imshow(alpha, cmap="Greys", vmin=0, vmax=1)
        ax.set_xticks(range(len(reading)), reading, rotation=90)
        ax.set_yticks(range(alpha.shape[0]), list(answer) + ["<eos>"])
        ax.set_title("rnn-bahdanau: attention weights")
        fig.tight_layout()
        fig.savefig(out / "alignment.png", dpi=120)
        plt.close(fig)
        written.append(out / "alignment.png")
    return written


def main(out: Path, fast: bool = False, say: Callable[[str], None] = print) -> int:
    """``python -m gpt experiment seq2seq [--fast] --out DIR``: run, print the table and an alignment, plot."""
    settings = FAST if fast else DEFAULT
    results = run(out, settings, say=lambda line: say(line))
    say(table(results, settings))
    model = load_model("rnn-bahdanau", settings, out / "rnn-bahdanau")
    alignment = example_alignment(model, settings)
    say(f"rnn-bahdanau's alignment for a reading of {len(alignment[0])} words (rows: the words read, "
        "columns: the digits it wrote, $ = end; darker = more weight):")
    say(alignment_text(*alignment))
    for path in plot(results, settings, out, alignment):
        say(f"figure: {path}")
    say(f"results: {out / 'results.csv'}")
    return 0
