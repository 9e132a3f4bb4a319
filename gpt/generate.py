"""Chapters 4-5: turning logits into text.

* :func:`generate_text_simple` is the book's greedy loop (section 4.7): run the model on the last
  ``context_size`` tokens, take the most likely next token, append, repeat.
* :func:`generate` is the book's section 5.3 version (temperature, top-k) plus what the book leaves
  out: nucleus (top-p) sampling, a batch of prompts with per-row top-k/top-p thresholds and
  per-row end-of-text stopping, reproducible sampling from a seeded ``np.random.Generator``, and a
  KV cache so that each new token costs one token's worth of computation.
* :func:`text_to_token_ids` / :func:`token_ids_to_text` are the book's helpers.

Everything here runs under ``no_grad``: generation never needs gradients.
"""
from __future__ import annotations

import functools
import inspect
from typing import Callable, Sequence

import numpy as np

import minigrad as mg


def _encode_takes(tokenizer, option: str) -> bool:
    """Whether ``tokenizer.encode`` accepts tiktoken's keyword ``option``. The book's SimpleTokenizer
    does not (it has ``<|endoftext|>`` in its vocabulary as a word) and is given the text alone.
    Asked once per tokenizer class (reading a signature costs more than encoding a short text)."""
    if "encode" in getattr(tokenizer, "__dict__", {}):    # an encode set on the object itself: ask it
        return _takes(tokenizer.encode, option)
    return _class_encode_takes(type(tokenizer), option)


def _takes(function, option: str) -> bool:
    params = inspect.signature(function).parameters.values()
    return any(p.name == option or p.kind is p.VAR_KEYWORD for p in params)


@functools.lru_cache(maxsize=64)
def _class_encode_takes(cls, option: str) -> bool:
    return _takes(cls.encode, option)


def text_to_token_ids(text: str, tokenizer) -> np.ndarray:
    """Encode ``text`` to a (1, T) int64 array (a batch of one), allowing ``<|endoftext|>``."""
    if _encode_takes(tokenizer, "allowed_special"):
        ids = tokenizer.encode(text, allowed_special={"<|endoftext|>"})
    else:
        ids = tokenizer.encode(text)
    return np.asarray(ids, dtype=np.int64)[None, :]


def encode_as_text(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` in which a written "<|endoftext|>" is ordinary text, not the special
    token: for data people wrote (messages to classify, instructions)."""
    if _encode_takes(tokenizer, "disallowed_special"):
        return list(tokenizer.encode(text, disallowed_special=()))
    return list(tokenizer.encode(text))


def token_ids_to_text(token_ids, tokenizer) -> str:
    """Decode a (1, T) or (T,) array of ids back to text."""
    ids = np.asarray(getattr(token_ids, "data", token_ids)).reshape(-1)
    return tokenizer.decode(ids.tolist())


def _ids(idx) -> np.ndarray:
    ids = np.asarray(getattr(idx, "data", idx))
    if ids.ndim != 2:
        raise ValueError(f"expected token ids of shape (batch, tokens), got {ids.shape}")
    if ids.dtype.kind not in "iu":
        raise TypeError(f"token ids must be integers, got {ids.dtype}")
    return ids.astype(np.int64, copy=False)


def generate_text_simple(model, idx, max_new_tokens: int, context_size: int) -> np.ndarray:
    """Greedy decoding, exactly as the book's section 4.7. idx: (b, T) -> (b, T + max_new_tokens)."""
    idx = _ids(idx)
    with mg.no_grad():
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -context_size:]
            logits = model(idx_cond)
            logits = logits.data[:, -1, :]                         # (b, vocab): the last position
            idx_next = np.argmax(logits, axis=-1)[:, None]         # (b, 1)
            idx = np.concatenate([idx, idx_next], axis=1)
    return idx


def _top_k_filter(logits: np.ndarray, top_k: int) -> np.ndarray:
    """Keep each row's ``top_k`` largest logits (and ties with the k-th), set the rest to -inf."""
    if top_k >= logits.shape[-1]:
        return logits
    kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]   # per-row threshold
    return np.where(logits < kth, -np.inf, logits)


def _top_p_filter(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the smallest set of most likely tokens whose probability adds up to ``top_p`` (per row);
    renormalise. The most likely token is always kept."""
    order = np.argsort(-probs, axis=-1, kind="stable")
    sorted_p = np.take_along_axis(probs, order, axis=-1)
    before = np.cumsum(sorted_p, axis=-1) - sorted_p          # mass strictly above each token
    keep_sorted = before < top_p
    keep_sorted[:, 0] = True
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    probs = np.where(keep, probs, 0.0)
    return probs / probs.sum(axis=-1, keepdims=True)


def sampling_probs(logits: np.ndarray, temperature: float = 0.0, top_k: int | None = None,
                   top_p: float | None = None) -> np.ndarray:
    """The distribution :func:`sample_next` draws from, float64 (b, vocab) from logits (b, vocab):
    top-k on the logits, then temperature, softmax, and top-p on the probabilities (renormalised).
    Temperature 0 (greedy) puts all the probability on the largest logit."""
    if temperature <= 0.0:
        probs = np.zeros(logits.shape, dtype=np.float64)
        np.put_along_axis(probs, np.argmax(logits, axis=-1)[:, None], 1.0, axis=-1)
        return probs
    logits = logits.astype(np.float64)   # sampling arithmetic in float64: tiny tail probabilities stay exact
    if top_k is not None:
        logits = _top_k_filter(logits, top_k)
    logits = logits / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None and top_p < 1.0:
        probs = _top_p_filter(probs, top_p)
    return probs


def sample_next(logits: np.ndarray, temperature: float = 0.0, top_k: int | None = None,
                top_p: float | None = None, rngs: Sequence[np.random.Generator] | None = None) -> np.ndarray:
    """Pick one token per row of ``logits`` (b, vocab). temperature 0 means greedy (argmax).

    ``rngs``: one Generator per row (the same one may repeat); None draws from a fresh, unseeded one.
    """
    if temperature <= 0.0:
        return np.argmax(logits, axis=-1)   # (top-k always keeps the largest logit)
    probs = sampling_probs(logits, temperature, top_k, top_p)
    if rngs is None:
        rngs = [np.random.default_rng()] * len(probs)
    # inverse-CDF sampling with one uniform number per row, each row from its own generator: the
    # first token whose cumulative probability reaches u * total. u is in (0, 1], never 0, so a
    # token of probability 0 (filtered out) can never be that first token.
    u = 1.0 - np.array([r.random() for r in rngs])[:, None]
    cdf = np.cumsum(probs, axis=-1)
    choice = (cdf < u * cdf[:, -1:]).sum(axis=-1)
    return np.minimum(choice, probs.shape[-1] - 1)


def generate(model, idx, max_new_tokens: int, context_size: int | None = None, temperature: float = 0.0,
             top_k: int | None = None, top_p: float | None = None, eos_id: int | Sequence[int] | None = None,
             rng: np.random.Generator | Sequence[np.random.Generator] | int | None = None,
             use_cache: bool = True, on_token: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """Generate up to ``max_new_tokens`` tokens after each prompt row of ``idx`` (b, T).

    Args:
        temperature: 0 for greedy decoding; otherwise logits are divided by it before sampling.
        top_k: sample only among each row's k most likely tokens.
        top_p: nucleus sampling, among the most likely tokens whose probabilities sum to top_p.
        eos_id: a row stops when it produces this id (or any of several, as today's chat models
            have: Llama 3.2 Instruct ends a turn with either of three). Rows that stopped are padded
            with ``eos_id`` (the first of several) while the others go on; when every row has
            stopped, generation ends. (As in the book, the eos token that ends the last running
            rows is not appended.)
        rng: a seed, a Generator, or one Generator per row. With one Generator per row, each row
            samples exactly what it would sample alone.
        context_size: how many of the last tokens the model sees (default and maximum: its context
            length; a model without a position table, pos_emb rope/alibi/t5/none, may be given more).
        use_cache: keep keys and values in a KV cache so each step processes one new token. Past
            ``context_size`` every cached key would change as the window slides (each key was computed
            from tokens that leave the window), so the cache is then refilled from the cropped window
            each step: the ids are identical either way.
        on_token: called with the (b,) array of new ids after each step (for streaming output).

    Returns the (b, T + n) array of prompt and generated ids, n <= max_new_tokens.
    """
    idx = _ids(idx)
    batch = idx.shape[0]
    # a model with learned positions cannot look further back than its context length, whatever is
    # asked; one without a position table (rope, alibi, t5, none) looks back context_size tokens
    cfg = getattr(model, "cfg", None)
    model_ctx = getattr(cfg, "context_length", None)
    if not (context_size and model_ctx and getattr(cfg, "extrapolates", False)):
        context_size = min(c for c in (context_size, model_ctx) if c) if (context_size or model_ctx) else None
    if context_size is None:
        raise ValueError("pass context_size: the model has no cfg.context_length to take it from")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if rng is None or isinstance(rng, (int, np.integer)):
        rng = np.random.default_rng(rng)
    rngs = list(rng) if isinstance(rng, (list, tuple)) else [rng] * batch
    if len(rngs) != batch:
        raise ValueError(f"got {len(rngs)} generators for a batch of {batch} prompts")

    was_training = model.training
    model.eval()
    finished = np.zeros(batch, dtype=bool)
    eos_ids = None if eos_id is None else np.atleast_1d(np.asarray(eos_id, dtype=np.int64))
    cache = None
    if use_cache and hasattr(model, "new_kv_cache"):
        longer = model_ctx and context_size > model_ctx      # a model that extrapolates, asked to look further back
        cache = model.new_kv_cache(batch, context_size) if longer else model.new_kv_cache(batch)
    try:
        with mg.no_grad():
            pending = idx          # tokens not yet seen by the cached model
            for _ in range(max_new_tokens):
                if cache is None:
                    logits = model(idx[:, -context_size:], last_only=True)
                else:
                    if cache.length + pending.shape[1] > min(context_size, cache.max_len):
                        cache.reset()                       # the window slides: refill from scratch
                        pending = idx[:, -context_size:]
                    logits = model(pending, kv_cache=cache, last_only=True)
                next_ids = sample_next(logits.data[:, -1, :], temperature, top_k, top_p, rngs)
                if eos_ids is not None:
                    hit = np.isin(next_ids, eos_ids)
                    if np.all(finished | hit):
                        break
                    next_ids = np.where(finished, eos_ids[0], next_ids)
                    finished |= hit
                next_ids = next_ids.astype(np.int64)
                idx = np.concatenate([idx, next_ids[:, None]], axis=1)
                pending = next_ids[:, None]
                if on_token is not None:
                    on_token(next_ids)
    finally:
        model.train(was_training)
    return idx
