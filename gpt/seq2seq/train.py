"""Teacher-forced training of a seq2seq model on the read-aloud task, and exact-match accuracy by
input length.

Teacher forcing: at every output step the decoder reads the *true* previous digit (``tgt_in`` =
<bos> + target), so all steps are trained in one forward pass; at test time it reads its own
previous output (greedy or beam search), and one wrong digit makes the whole answer wrong.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

import minigrad as mg

from gpt.seq2seq import task
from gpt.seq2seq.decode import beam_search, greedy_decode


def sequence_loss(model, batch: task.Batch):
    """Mean cross-entropy over the real target tokens (padding ignored)."""
    logits = model(batch.src, batch.src_lengths, batch.tgt_in)                   # (b, T, V)
    return mg.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1),
                            ignore_index=task.IGNORE)


def train_model(model, steps: int, batch_size: int, min_words: int, max_words: int, lr: float = 2e-3,
                seed: int = 0, say: Callable[[str], None] | None = None, report_every: int = 100) -> dict:
    """Adam on fresh random batches (seeded), linear warmup over the first 5% of steps then cosine
    decay to lr/10, gradients clipped to norm 1. Returns {"losses": [...], "seconds": wall time}."""
    rng = np.random.default_rng([seed, 0])
    params = list(model.parameters())
    opt = mg.optim.Adam(params, lr=lr)
    warmup = max(1, steps // 20)
    losses, started = [], time.perf_counter()
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = mg.optim.warmup_cosine_lr(step, peak_lr=lr, total_steps=steps, warmup_steps=warmup,
                                                    min_lr=lr / 10)
        loss = sequence_loss(model, task.sample_batch(rng, batch_size, min_words, max_words))
        loss.backward()
        mg.optim.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        if say is not None and ((step + 1) % report_every == 0 or step + 1 == steps):
            recent = losses[-report_every:]
            say(f"    step {step + 1}/{steps}  loss {sum(recent) / len(recent):.4f}  "
                f"{time.perf_counter() - started:.0f} s")
    model.eval()
    return {"losses": losses, "seconds": time.perf_counter() - started}


def answers(model, readings: list[list[str]], beam_width: int = 1, batch_size: int = 200) -> list[str]:
    """The model's written answer to each reading (greedy, or beam search when beam_width > 1);
    decoding stops after as many tokens as the longest right answer of the batch plus its <eos>, and
    an answer without <eos> by then counts as unfinished ('…'). (Each reading's own right answer
    always fits; only how far a wrong answer may run depends on the batch.)"""
    out = []
    for i in range(0, len(readings), batch_size):
        b = task.encode_batch(readings[i:i + batch_size])
        max_len = b.tgt_out.shape[1]                          # the longest right answer + <eos>
        if beam_width == 1:
            ids = greedy_decode(model, b.src, b.src_lengths, max_len, task.BOS, task.EOS)
        else:
            ids = beam_search(model, b.src, b.src_lengths, max_len, task.BOS, task.EOS, beam_width=beam_width)
        out += [task.decode_digits(r) if r and r[-1] == task.EOS else task.decode_digits(r) + "…" for r in ids]
    return out


def accuracy_by_length(model, test_set: dict, beam_width: int = 1) -> dict:
    """{(lo, hi): fraction of the bucket's readings written exactly right}."""
    result = {}
    for bucket, readings in test_set.items():
        got = answers(model, readings, beam_width)
        result[bucket] = float(np.mean([g == task.read_aloud(r) for g, r in zip(got, readings)]))
    return result
