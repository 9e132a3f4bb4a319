"""Greedy and beam-search decoding, shared by every seq2seq model here.

A model exposes three methods (all without gradients):

    state = model.start(src, src_lengths)              # encode once: a dict of batch-first arrays
    log_probs, state = model.step(state, prev_ids)     # (n,) previous tokens -> (n, vocab) log-probs
    state = select(state, rows)                        # reorder / repeat the batch (beam search)

``select`` indexes every array of the state along its first axis, so a model keeps everything
batch-first there (its encoder outputs, masks, decoder states, the prefix so far).
"""
from __future__ import annotations

import numpy as np

import minigrad as mg


def select(state: dict, rows: np.ndarray) -> dict:
    """The state of the batch rows ``rows`` (repeats allowed): every array indexed along axis 0."""
    return {k: v[rows] for k, v in state.items()}


def _strip(seq: np.ndarray, eos: int) -> list[int]:
    out = []
    for t in seq:
        out.append(int(t))
        if t == eos:
            break
    return out


def greedy_decode(model, src, src_lengths, max_len: int, bos: int, eos: int) -> list[list[int]]:
    """The most likely next token at every step, for the whole batch at once, until every row has
    produced ``eos`` or ``max_len`` tokens. Returns one id list per row, ending with ``eos`` when
    it was produced."""
    with mg.no_grad():
        state = model.start(src, src_lengths)
        n = len(src_lengths)
        prev = np.full(n, bos, dtype=np.int64)
        out, done = np.zeros((n, 0), dtype=np.int64), np.zeros(n, dtype=bool)
        for _ in range(max_len):
            log_probs, state = model.step(state, prev)
            prev = np.argmax(log_probs, axis=-1)
            out = np.concatenate([out, prev[:, None]], axis=1)
            done |= prev == eos
            if done.all():
                break
    return [_strip(row, eos) for row in out]


def beam_search(model, src, src_lengths, max_len: int, bos: int, eos: int, beam_width: int = 4,
                return_scores: bool = False):
    """Keep the ``beam_width`` most probable prefixes of each row (by the sum of their tokens'
    log-probabilities) and return the most probable finished sequence of each row.

    All rows and beams run as one batch of n * beam_width. A beam that has produced ``eos`` is
    finished: it can only be extended by ``eos`` again at no cost, so it keeps its score and competes
    with the open beams until the end. The best finished sequence of each row is also kept aside
    when it appears, and is the answer whenever there is one: an open prefix cut off by ``max_len``
    has a score that only bounds its completions, so it must not beat a finished sequence (only a
    row with no finished sequence answers with its best open prefix). At the first step only one
    beam per row is open (the others start at -inf), so no prefix is counted twice.
    ``beam_width=1`` is greedy decoding. With ``return_scores`` also returns each answer's total
    log-probability.
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}")
    k = beam_width
    with mg.no_grad():
        state = model.start(src, src_lengths)
        n = len(src_lengths)
        state = select(state, np.repeat(np.arange(n), k))               # row i's beams are rows i*k .. i*k+k-1
        scores = np.full((n, k), -np.inf)
        scores[:, 0] = 0.0
        prev = np.full(n * k, bos, dtype=np.int64)
        seqs = np.zeros((n * k, 0), dtype=np.int64)
        finished = np.zeros((n, k), dtype=bool)
        best_done = np.full(n, -np.inf)                                  # the best finished sequence so far
        best_done_seq: list = [None] * n
        for _ in range(max_len):
            log_probs, state = model.step(state, prev)
            vocab = log_probs.shape[-1]
            log_probs = np.asarray(log_probs, dtype=np.float64).reshape(n, k, vocab)
            log_probs[finished] = -np.inf                                 # a finished beam only repeats eos,
            log_probs[finished, eos] = 0.0                                # at no cost
            candidates = (scores[:, :, None] + log_probs).reshape(n, k * vocab)
            best = np.argsort(-candidates, axis=1, kind="stable")[:, :k]  # ties: the lower index, as argmax
            beam, token = best // vocab, best % vocab
            scores = np.take_along_axis(candidates, best, axis=1)
            rows = (np.arange(n)[:, None] * k + beam).reshape(-1)
            state = select(state, rows)
            seqs = np.concatenate([seqs[rows], token.reshape(-1, 1)], axis=1)
            finished = np.take_along_axis(finished, beam, axis=1) | (token == eos)
            prev = token.reshape(-1)
            done_scores = np.where(finished, scores, -np.inf)
            j = np.argmax(done_scores, axis=1)
            for i in np.flatnonzero(done_scores[np.arange(n), j] > best_done):   # rows whose best improved
                best_done[i], best_done_seq[i] = done_scores[i, j[i]], seqs[i * k + j[i]]
            if finished.all():
                break
    top = np.argmax(scores, axis=1)
    answers = [_strip(best_done_seq[i] if best_done_seq[i] is not None else seqs[i * k + top[i]], eos)
               for i in range(n)]
    if return_scores:
        return answers, np.where(np.isfinite(best_done), best_done, scores[np.arange(n), top])
    return answers
