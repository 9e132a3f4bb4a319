"""Extending a tokenizer and the model that reads its ids (the book's chapter 5 bonus material).

Fine-tuning for chat or tools often needs tokens the pretrained vocabulary lacks (``<|user|>``,
``<|tool_call|>``). Two steps:

1. add them to the tokenizer: ``tokenizer.add_tokens([...], special=...)`` (``BPETokenizer`` and
   ``HFTokenizer`` both have it); each new string gets the next id;
2. give the model a row for each new id in its token embedding and its output head:
   :func:`resize_token_embeddings`. Old rows are kept exactly, new rows are drawn as the model's own
   initialisation draws them, and an output head tied to the embedding stays tied.

:func:`extend_vocabulary` does both. The model's config records the new ``vocab_size``, so
``gpt.checkpoint.save_checkpoint`` / ``load_checkpoint`` save and rebuild the larger model, with
its tokenizer. Resize before creating the optimizer: its state is per parameter and shape.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np

from minigrad import nn
from minigrad import random as _random


def _initial_std(model) -> float | None:
    """The N(0, std^2) the model's class draws its matrices from, or None when it uses the layers'
    own defaults (GPTModel: embedding N(0, 1), linear U(-1/sqrt(d), 1/sqrt(d)), as PyTorch)."""
    cfg = getattr(model, "cfg", None)
    std = getattr(cfg, "initializer_range", None)
    if std is not None:
        return float(std)
    if getattr(cfg, "arch", None) is not None:  # gpt.architectures' families: N(0, 0.02^2), as Hugging Face
        return 0.02
    return None


def _new_rows(n: int, d: int, kind: str, std: float | None, dtype) -> np.ndarray:
    """(n, d) rows for a new token: from N(0, std^2), or else as a fresh layer of that kind draws them."""
    rng = _random.default_generator()
    if std is not None:
        rows = rng.standard_normal((n, d), dtype=np.float32) * np.float32(std)
    elif kind == "embedding":
        rows = nn.Embedding(n, d).weight.data  # N(0, 1)
    else:
        rows = nn.Linear(d, n, bias=False).weight.data  # U(-1/sqrt(d), 1/sqrt(d))
    return rows.astype(dtype, copy=False)


def _resized(old: np.ndarray, new_rows: int, kind: str, std: float | None) -> np.ndarray:
    rows, d = old.shape
    if new_rows <= rows:
        return old[:new_rows].copy()
    return np.concatenate([old, _new_rows(new_rows - rows, d, kind, std, old.dtype)])


def resize_token_embeddings(model, new_vocab_size: int, std: float | None = None):
    """Give ``model`` a token embedding and output head of ``new_vocab_size`` rows (in place; returns it).

    Works for GPTModel and any model with ``tok_emb`` (an Embedding, weight (V, d)) and ``out_head``
    (a Linear, weight (V, d), optional bias (V,)). Rows of existing ids are kept; new rows are drawn
    as the model's initialisation draws them (``std``: force N(0, std^2) instead); a smaller size
    drops the last rows. A tied head (the same Parameter as the embedding) is tied again, and
    ``model.cfg.vocab_size`` is updated so that a checkpoint rebuilds the new shape.
    """
    if isinstance(new_vocab_size, bool) or not isinstance(new_vocab_size, (int, np.integer)) or new_vocab_size <= 0:
        raise ValueError(f"new_vocab_size must be a positive integer, got {new_vocab_size!r}")
    new_vocab_size = int(new_vocab_size)
    for name in ("tok_emb", "out_head"):
        if not hasattr(model, name) or not hasattr(getattr(model, name), "weight"):
            raise ValueError(f"{type(model).__name__} has no {name}.weight; resize_token_embeddings needs tok_emb and out_head")
    std = _initial_std(model) if std is None else float(std)
    if std is not None and not (math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive number, got {std!r}")
    emb, head = model.tok_emb, model.out_head
    tied = head.weight is emb.weight
    emb.weight = nn.Parameter(_resized(emb.weight.data, new_vocab_size, "embedding", std))
    if hasattr(emb, "num_embeddings"):
        emb.num_embeddings = new_vocab_size
    if tied:
        head.weight = emb.weight
    else:
        head.weight = nn.Parameter(_resized(head.weight.data, new_vocab_size, "linear", std))
    bias = getattr(head, "bias", None)
    if bias is not None:
        old = bias.data
        if new_vocab_size <= len(old):
            data = old[:new_vocab_size].copy()
        else:
            bound = 1.0 / math.sqrt(head.weight.shape[1])
            extra = _random.default_generator().random(new_vocab_size - len(old), dtype=np.float32) * (2 * bound) - bound
            data = np.concatenate([old, (np.zeros_like(extra) if std is not None else extra).astype(old.dtype)])
        head.bias = nn.Parameter(data)
    if hasattr(head, "out_features"):
        head.out_features = new_vocab_size
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "vocab_size"):
        if dataclasses.is_dataclass(cfg):
            model.cfg = dataclasses.replace(cfg, vocab_size=new_vocab_size)
        else:
            cfg.vocab_size = new_vocab_size
    return model


def extend_vocabulary(model, tokenizer, tokens: Iterable[str], special: bool = True) -> list[int]:
    """Add ``tokens`` to ``tokenizer`` and resize ``model`` to its new vocabulary; returns the tokens' ids.

    The model keeps at least its current number of rows (a model may have more rows than the
    tokenizer has ids, as GPT-2-sized models padded to a round number do).
    """
    ids = tokenizer.add_tokens(list(tokens), special=special)
    size = tokenizer.n_vocab
    if size > model.tok_emb.weight.shape[0]:
        resize_token_embeddings(model, size)
    return ids
