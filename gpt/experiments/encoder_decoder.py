"""Encoder or decoder for classification? BERT and the GPT trained from scratch with the same budget.

The notes this project follows say "BERT (encoder) for classification, GPT (decoder) for
generation". ``python -m gpt experiment encoder-vs-decoder`` measures it: for each task, four
classifiers of about the same size (same width, depth, heads, feed-forward size, vocabulary and
inputs) train for the same steps, batch and learning-rate schedule (linear warmup, cosine decay),
then are scored on held-out texts:

    encoder-cls    BERT (bidirectional, post-norm), the [CLS] token's vector -> head
    encoder-mean   BERT, the mean of the real tokens' vectors -> head
    decoder-last   the GPT, the last position's logits (chapter 6's choice; texts padded on the right)
    decoder-mean   the GPT, the mean of the real tokens' logits (= the head applied to the mean vector)

Tasks (generated, so the answer is known; split 70/10/20 as finetune-classify does):

    spam         chapter 6's generated spam/ham messages (gpt.finetune.spam_demo), 25 % spam
    first=last   a line of 8-16 words drawn from 12; the label is whether the first word equals the
                 last one. The evidence sits at both ends, so reading left to right is a handicap: a
                 causal position never sees what comes after it.

Every text is tokenized by one WordPiece vocabulary made from the training texts
(gpt.finetune.classify_encoder.word_tokenizer): ``[CLS] words [SEP]``, padded with [PAD]. Each
model's folder (``DIR/<task>-<model>``) gets ``result.json`` when done; finished ones are not
trained again; a folder made with other settings is refused. ``results.csv``: task, model,
parameters, seconds, test accuracy.
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

import minigrad as mg
from minigrad import nn

from gpt import train
from gpt.finetune.classify import (
    ClassificationDataset, LabeledText, calc_accuracy_loader, calc_loss_batch, encode_labels, label_names,
    random_split, replace_output_head,
)
from gpt.finetune.classify_encoder import BertClassifier, small_bert_config, word_tokenizer

__all__ = ["Settings", "DEFAULT", "FAST", "MODELS", "TASKS", "first_last_task", "run", "table"]


@dataclass(frozen=True)
class Settings:
    examples: int                 # per task, before the 70/10/20 split
    steps: int
    batch_size: int
    emb_dim: int
    n_layers: int
    n_heads: int
    lr: float = 1e-3              # peak; warmup over the first 10 % of steps, cosine decay to lr / 10
    drop_rate: float = 0.0
    seed: int = 123

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# About 9 minutes for the 8 runs on a 2-core machine shared with others (1.5-3 minutes each).
DEFAULT = Settings(examples=4000, steps=1500, batch_size=32, emb_dim=64, n_layers=2, n_heads=4, drop_rate=0.0)
# Seconds, for the tests.
FAST = Settings(examples=120, steps=6, batch_size=8, emb_dim=16, n_layers=1, n_heads=2, lr=3e-3)

WORDS = ("red", "blue", "green", "black", "white", "pink", "cat", "dog", "fox", "owl", "bee", "cow")


def first_last_task(n: int, seed: int) -> list[LabeledText]:
    """``n`` lines of 8-16 words from :data:`WORDS`; half are "same" (first word = last word), half
    "different". Which words sit in between tells nothing."""
    rng = np.random.default_rng([seed, 17])
    examples = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=int(rng.integers(8, 17))))
        same = i % 2 == 0
        if same:
            words[-1] = words[0]
        else:
            while words[-1] == words[0]:
                words[-1] = rng.choice(WORDS)
        examples.append(LabeledText("same" if same else "different", " ".join(words)))
    order = rng.permutation(n)
    return [examples[i] for i in order]


def _spam(n: int, seed: int) -> list[LabeledText]:
    from gpt.finetune.spam_demo import demo_messages

    return demo_messages(n, seed=seed)


TASKS: dict[str, Callable[[int, int], list[LabeledText]]] = {"spam": _spam, "first=last": first_last_task}


class MeanPooledDecoder(nn.Module):
    """The GPT classifier read at every real token: the mean of their class logits (b, 1, C). The head
    is linear, so this is the head applied to the mean of the final hidden states."""

    def __init__(self, gpt, pad_token_id: int):
        super().__init__()
        self.gpt, self.pad_token_id = gpt, pad_token_id
        self.cfg = gpt.cfg

    def forward(self, in_idx, last_only: bool = False):
        ids = np.asarray(in_idx)
        logits = self.gpt(ids)                                                 # (b, T, C)
        weights = (ids != self.pad_token_id).astype(np.float32)[:, :, None]    # (b, T, 1)
        return (logits * weights).sum(axis=1, keepdims=True) / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)


def _decoder(settings: Settings, vocab_size: int, context: int):
    from gpt.model import GPTConfig, GPTModel

    return GPTModel(GPTConfig(vocab_size=vocab_size, context_length=context, emb_dim=settings.emb_dim,
                              n_heads=settings.n_heads, n_layers=settings.n_layers, drop_rate=settings.drop_rate))


def _encoder(settings: Settings, vocab_size: int, context: int, pooling: str):
    cfg = small_bert_config(vocab_size, context, settings.emb_dim, settings.n_layers, settings.n_heads,
                            settings.drop_rate)
    return BertClassifier(cfg, 2, pooling, pad_token_id=0)


def _with_head(gpt):
    replace_output_head(gpt, 2)
    return gpt


MODELS = {
    "encoder-cls": lambda s, v, t: _encoder(s, v, t, "cls"),
    "encoder-mean": lambda s, v, t: _encoder(s, v, t, "mean"),
    "decoder-last": lambda s, v, t: _with_head(_decoder(s, v, t)),
    "decoder-mean": lambda s, v, t: MeanPooledDecoder(_with_head(_decoder(s, v, t)), pad_token_id=0),
}


class _Trainer(train.Trainer):
    """gpt.train.Trainer (warmup + cosine, clipping) with chapter 6's loss on ``model(ids)[:, -1]``."""

    def compute_loss(self, input_batch, target_batch):
        return calc_loss_batch(input_batch, target_batch, self.model)


def _data(task: str, settings: Settings):
    """(tokenizer, labels, train, test datasets) of a task: the same for every model."""
    examples = TASKS[task](settings.examples, settings.seed)
    labels = label_names(ex.label for ex in examples)
    tr, _val, te = random_split(examples, 0.7, 0.1, seed=settings.seed)
    tokenizer = word_tokenizer([ex.text for ex in tr])

    def dataset(part, length=None):
        return ClassificationDataset([ex.text for ex in part], encode_labels([ex.label for ex in part], labels),
                                     tokenizer, max_length=length, pad_token_id=0)

    train_set = dataset(tr)
    return tokenizer, labels, train_set, dataset(te, train_set.max_length)


def _run_one(task: str, name: str, settings: Settings, data, folder: Path, say) -> dict:
    from gpt.atomic import write_text_atomic
    from gpt.data import DataLoader
    from gpt.model import count_parameters
    from minigrad.optim import AdamW

    result_file = folder / "result.json"
    if result_file.is_file():
        result = json.loads(result_file.read_text())
        if result.get("settings") != settings.to_dict():
            raise RuntimeError(f"{folder} holds a result made with other settings; pass another --out")
        say(f"    done before: test accuracy {result['accuracy']:.2%} (not redone)")
        return result
    tokenizer, labels, train_set, test_set = data
    mg.manual_seed(settings.seed)
    model = MODELS[name](settings, tokenizer.vocab_size, train_set.max_length)
    loader = DataLoader(train_set, batch_size=settings.batch_size, shuffle=True, drop_last=True, seed=settings.seed)
    optimizer = AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    trainer = _Trainer(model, optimizer, loader, None, total_steps=settings.steps, peak_lr=settings.lr,
                       warmup_steps=max(1, settings.steps // 10), min_lr=settings.lr / 10, grad_clip=1.0,
                       eval_freq=max(1, settings.steps // 4), eval_iter=4)
    params = count_parameters(model)
    say(f"    {params:,} parameters, {settings.steps} steps of {settings.batch_size} texts")
    started = time.perf_counter()
    trainer.run(on_eval=lambda t, loss, _: say(f"    step {t.state.step}: training loss {loss:.3f}"))
    seconds = time.perf_counter() - started
    accuracy = calc_accuracy_loader(DataLoader(test_set, batch_size=64, drop_last=False), model)
    result = dict(task=task, model=name, parameters=params, seconds=round(seconds, 1), accuracy=round(accuracy, 4),
                  test_texts=len(test_set), settings=settings.to_dict())
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(result_file, json.dumps(result, indent=1) + "\n")
    say(f"    test accuracy {accuracy:.2%} ({seconds:.0f} s)")
    return result


def majority(test_set) -> float:
    """The accuracy of always answering the most common test label (the floor to beat)."""
    return float(np.bincount(test_set.labels).max() / len(test_set.labels))


def run(out: Path, settings: Settings = DEFAULT, say: Callable[[str], None] = print) -> tuple[list[dict], dict]:
    """Train (or reuse) every model on every task; write ``out/results.csv``. Returns (results,
    {task: majority-class accuracy})."""
    from gpt.atomic import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    results, floors = [], {}
    for task in TASKS:
        data = _data(task, settings)
        floors[task] = majority(data[3])
        for name in MODELS:
            say(f"[{task}] {name}")
            results.append(_run_one(task, name, settings, data, out / f"{task}-{name}", say))
    with atomic_write(out / "results.csv", "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("task", "model", "parameters", "seconds", "accuracy"))
        writer.writerows((r["task"], r["model"], r["parameters"], r["seconds"], f"{r['accuracy']:.4f}") for r in results)
    return results, floors


def table(results: list[dict], floors: dict) -> str:
    """Test accuracy, one row per model, one column per task (Markdown), with the majority floor."""
    tasks = list(dict.fromkeys(r["task"] for r in results))
    by = {(r["task"], r["model"]): r for r in results}
    lines = ["| model | parameters (" + " / ".join(tasks) + ") | " + " | ".join(tasks) + " | training time |",
             "|---|---|" + "---|" * len(tasks) + "---|"]
    for name in dict.fromkeys(r["model"] for r in results):
        cells = [f"{100 * by[t, name]['accuracy']:.1f} %" if (t, name) in by else "" for t in tasks]
        seconds = sum(by[t, name]["seconds"] for t in tasks if (t, name) in by)
        params = " / ".join(f"{by[t, name]['parameters']:,}" for t in tasks if (t, name) in by)
        lines.append(f"| {name} | {params} | " + " | ".join(cells) + f" | {seconds:.0f} s |")
    lines.append("| (always the commonest label) | | " + " | ".join(f"{100 * floors[t]:.1f} %" for t in tasks) + " | |")
    return "\n".join(lines)
