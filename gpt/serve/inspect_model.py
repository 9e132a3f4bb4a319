"""Looking inside a causal language model, for any architecture the project has.

Nothing here copies a model's forward pass. What a model computes is read through two generic
mechanisms, so every family (GPTModel with each position scheme, and the families in
``gpt/architectures/``) is inspected by the same code:

* forward hooks (:meth:`minigrad.nn.Module.register_forward_hook`) on the blocks of
  ``model.trf_blocks``: the input of block 0 is the embedded text, the output of block i is the
  residual stream after layer i + 1;
* attention modules that keep their softmax weights (b, H, T, T_keys) in ``last_attn_weights`` while
  ``keep_attention`` is True (MultiHeadAttention, GroupedQueryAttention).

The functions take a model and token ids (a list of ints, one sequence) and return NumPy arrays or
plain Python values; :mod:`gpt.serve.api` turns them into JSON for the page.
"""
from __future__ import annotations

import contextlib
import csv
import math
from pathlib import Path
from typing import Sequence

import numpy as np

import minigrad as mg

from gpt.generate import sampling_probs
from gpt.tokenizer.bpe import readable


# ---------------------------------------------------------------------- running the model
@contextlib.contextmanager
def evaluating(model):
    """Eval mode (no dropout) and no gradients inside the block; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with mg.no_grad():
            yield model
    finally:
        model.train(was_training)


def _batch(ids: Sequence[int]) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"expected a non-empty list of token ids, got shape {ids.shape}")
    return ids[None, :]                                                      # (1, T)


def attention_modules(block) -> list:
    """The attention modules inside one block: those that follow the ``keep_attention`` contract."""
    return [m for m in block.modules() if hasattr(m, "keep_attention") and hasattr(m, "last_attn_weights")]


def run_with_internals(model, ids: Sequence[int], attention_layers: Sequence[int] = ()) -> dict:
    """One forward pass over ``ids`` (T,) that also collects what happens inside.

    Returns ``{"logits": (T, V) float32, "hidden": (L + 1, T, d) float32, "attention": {layer: (H, T, T)}}``:
    ``hidden[0]`` is the input of the first block (the embedded text), ``hidden[i]`` the residual
    stream after block i; ``attention`` holds the softmax weights of each layer asked for.
    """
    blocks = list(model.trf_blocks)
    hidden: list = [None] * (len(blocks) + 1)

    def keep_input(module, args, output):
        hidden[0] = np.array(args[0].data if isinstance(args[0], mg.Tensor) else args[0])

    def keep_output(i):
        def hook(module, args, output):
            hidden[i + 1] = np.array(output.data)
        return hook

    handles = [blocks[0].register_forward_hook(keep_input)]
    handles += [b.register_forward_hook(keep_output(i)) for i, b in enumerate(blocks)]
    watched = {}
    for layer in attention_layers:
        if not 0 <= layer < len(blocks):
            raise ValueError(f"layer must be between 0 and {len(blocks) - 1}, got {layer}")
        mods = attention_modules(blocks[layer])
        if not mods:
            raise ValueError(f"block {layer} ({type(blocks[layer]).__name__}) has no attention module that keeps "
                             "its weights (keep_attention)")
        watched[layer] = mods[0]
    try:
        for m in watched.values():
            m.keep_attention, m.last_attn_weights = True, None
        with evaluating(model):
            logits = model(_batch(ids)).data[0]                               # (T, V)
        attention = {layer: m.last_attn_weights[0] for layer, m in watched.items()}
    finally:
        for h in handles:
            h.remove()
        for m in watched.values():
            m.keep_attention, m.last_attn_weights = False, None
    return {"logits": logits, "hidden": np.stack([h[0] for h in hidden]), "attention": attention}


# ---------------------------------------------------------------------- tokens
def token_bytes(tokenizer, token_id: int) -> bytes:
    """The bytes one token stands for (a special token: its text in UTF-8)."""
    if hasattr(tokenizer, "decode_single_token_bytes"):
        return tokenizer.decode_single_token_bytes(int(token_id))
    return tokenizer.decode([int(token_id)]).encode("utf-8")


def merge_rank(tokenizer, token_id: int) -> int | None:
    """For the project's byte-level :class:`~gpt.tokenizer.BPETokenizer` (merge k makes token 256 + k):
    the rank k of the merge that made this token, so 0 is the most frequent pair of the training text.
    None for the 256 single bytes, special tokens, and other tokenizers."""
    from gpt.tokenizer import BPETokenizer

    if not isinstance(tokenizer, BPETokenizer):
        return None
    merges = tokenizer.merges
    rank = int(token_id) - 256
    return rank if 0 <= rank < len(merges) else None


def describe_tokens(tokenizer, ids: Sequence[int]) -> list[dict]:
    """Per token: ``id``, ``piece`` (its bytes as readable text), ``bytes`` (list of ints), ``rank``
    (:func:`merge_rank`) and ``special``."""
    special = set((getattr(tokenizer, "special_tokens", None) or {}).values())
    out = []
    for i in ids:
        b = token_bytes(tokenizer, i)
        out.append({"id": int(i), "piece": readable(b), "bytes": list(b), "rank": merge_rank(tokenizer, i),
                    "special": int(i) in special})
    return out


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text``, special tokens written in it allowed (as ``python -m gpt generate`` does)."""
    from gpt.generate import _encode_takes

    if _encode_takes(tokenizer, "allowed_special"):
        return list(tokenizer.encode(text, allowed_special="all"))
    return list(tokenizer.encode(text))


# ---------------------------------------------------------------------- the next token
def next_token_distribution(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None,
                            n: int = 20) -> dict:
    """What sampling does to the distribution of the next token, from one position's logits (V,).

    Returns float64 arrays over the ``n`` most likely tokens (by the model, most likely first):
    ``ids``; ``p_model`` (softmax of the raw logits); ``p_scaled`` (after top-k and temperature, the
    distribution top-p cuts); ``cumulative`` (running sum of ``p_scaled`` in that order: top-p keeps
    the tokens whose mass before them is below top_p); ``p_sample`` (what
    :func:`gpt.generate.sample_next` draws from: after top-p, renormalised); plus ``kept`` (how many
    tokens of the whole vocabulary have a non-zero ``p_sample``) and ``entropy`` (of ``p_model``, nats).
    """
    row = np.asarray(logits, dtype=np.float64)[None, :]                     # (1, V)
    p_model = sampling_probs(row, 1.0)[0]
    scaled = sampling_probs(row, temperature, top_k, None)[0]
    final = sampling_probs(row, temperature, top_k, top_p)[0]
    order = np.argsort(-row[0], kind="stable")[:n]
    full_order = np.argsort(-scaled, kind="stable")
    cumulative = np.cumsum(scaled[full_order])
    position = np.empty_like(full_order)
    position[full_order] = np.arange(len(full_order))
    with np.errstate(divide="ignore"):
        entropy = float(-(p_model * np.where(p_model > 0, np.log(p_model), 0.0)).sum())
    return {"ids": order, "p_model": p_model[order], "p_scaled": scaled[order],
            "cumulative": cumulative[position[order]], "p_sample": final[order],
            "kept": int((final > 0).sum()), "entropy": entropy}


# ---------------------------------------------------------------------- attention
def attention(model, ids: Sequence[int], layer: int) -> np.ndarray:
    """The attention weights of every head of ``layer``: (H, T, T), row i = what query i attends to."""
    return run_with_internals(model, ids, attention_layers=[layer])["attention"][layer]


# ---------------------------------------------------------------------- the logit lens
def logit_lens(model, ids: Sequence[int], internals: dict | None = None) -> dict:
    """The logit lens: each layer's hidden state read as if it were the last.

    Every row of ``hidden`` (the embedded text, then the residual stream after each block) goes
    through the model's own final norm -- computed with that row's own statistics, since the norm
    is applied to it afresh -- and output head. Returns ``top_ids`` (L + 1, T) int, ``top_probs``
    (L + 1, T) (the probability of that most likely token) and ``norms`` (L + 1, T): the L2 norm of the
    residual stream at each layer and position. The last row equals what the model itself predicts.
    """
    internals = internals or run_with_internals(model, ids)
    hidden = internals["hidden"]                                             # (L + 1, T, d)
    top_ids = np.zeros(hidden.shape[:2], dtype=np.int64)
    top_probs = np.zeros(hidden.shape[:2], dtype=np.float64)
    with evaluating(model):
        for layer, h in enumerate(hidden):            # one layer at a time: (T, V) each, not (L + 1, T, V)
            logits = model.out_head(model.final_norm(mg.Tensor(h[None]))).data[0].astype(np.float64)
            top = np.argmax(logits, axis=-1)
            z = logits - logits.max(axis=-1, keepdims=True)
            top_ids[layer] = top
            top_probs[layer] = 1.0 / np.exp(z).sum(axis=-1)                # p(top) = e^0 / sum e^z
    return {"top_ids": top_ids, "top_probs": top_probs,
            "norms": np.linalg.norm(hidden.astype(np.float64), axis=-1)}


# ---------------------------------------------------------------------- losses
def position_losses(model, ids: Sequence[int]) -> np.ndarray:
    """Cross-entropy of predicting each token from the ones before it: (T - 1,) float64, entry i is
    the loss on token i + 1."""
    if len(ids) < 2:
        raise ValueError("a loss per position needs at least 2 tokens")
    batch = _batch(ids)
    with evaluating(model):
        logits = model(batch[:, :-1]).data[0].astype(np.float64)             # (T - 1, V)
    z = logits - logits.max(axis=-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return -log_probs[np.arange(len(ids) - 1), batch[0, 1:]]


def read_log_csv(path) -> dict:
    """A run's ``log.csv`` (``gpt.cli.common.write_logs``: step, tokens_seen, train_loss, val_loss,
    lr; one row per evaluation) as columns: name -> list of floats (NaN -> None)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list] = {}
    for row in rows:
        for name, value in row.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            columns.setdefault(name, []).append(number if math.isfinite(number) else None)
    return columns


def run_checkpoints(run: Path) -> list[str]:
    """The step folders of a run (``step-NNNNNN`` with a model.safetensors), oldest first."""
    found = [p for p in Path(run).glob("step-*") if (p / "model.safetensors").is_file() and p.name[5:].isdigit()]
    return [p.name for p in sorted(found, key=lambda p: int(p.name[5:]))]


__all__ = ["evaluating", "attention_modules", "run_with_internals", "token_bytes", "merge_rank", "describe_tokens",
           "encode", "next_token_distribution", "attention", "logit_lens", "position_losses", "read_log_csv",
           "run_checkpoints"]
