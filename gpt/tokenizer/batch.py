"""BPE for many short pieces at once, vectorized with NumPy (beyond the book: a speed-up only).

Encoding a text with a cold cache means running BPE on a few thousand distinct short pieces. In
Python each merge step costs about a microsecond of interpreter work; here all pieces take their
step together. The pieces are laid end to end in one array of token ids, and every round:

1. for each piece, find its lowest-ranked adjacent pair, leftmost on ties (one ``minimum.reduceat``
   over ``rank * n + position``);
2. pieces without any mergeable pair are finished and leave the arrays;
3. every other piece merges its pair: the left token becomes the new token, the right one is
   deleted, and only the two pairs next to it get new ranks.

Each piece sees exactly the merges, in exactly the order, of the one-piece loop in
:mod:`gpt.tokenizer.merge`, so the results are identical. Which pairs merge, and into what, is a
:class:`~gpt.tokenizer.merge.MergeRules` (looked up as sorted NumPy arrays).
"""
from __future__ import annotations

import numpy as np


def merge_many(tokens: np.ndarray, lengths: np.ndarray, rules, finish_below: int = 128):
    """BPE of each piece -> its token ids. The pieces' starting ids are ``tokens`` (int64), laid
    end to end, piece ``i`` being ``lengths[i]`` long; ``rules`` is a ``MergeRules``.

    Returns ``(done, unfinished)``: ``done[i]`` is the token ids of piece ``i``, or None if it was
    still merging when fewer than ``finish_below`` pieces were left (a NumPy round costs about the
    same for two pieces as for two thousand); ``unfinished`` maps those pieces to their tokens so
    far, from which the one-piece loop can carry on.
    """
    none = rules.none
    new_id = rules.arrays()[2]
    out: list[list[int] | None] = [None] * len(lengths)
    tokens = np.array(tokens, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)  # one past the last position of each live piece
    starts = ends - lengths  # first position of each live piece
    alive = np.arange(len(lengths))  # original index of each live piece
    # pair_rank[i]: id of the token tokens[i] + tokens[i + 1] joins to; none if not a token, or if
    # position i is the last of its piece
    pair_rank = np.full(len(tokens), none, dtype=np.int64)
    inner = np.ones(len(tokens), dtype=bool)
    inner[ends - 1] = False
    inner = np.flatnonzero(inner)
    pair_rank[inner] = rules.lookup(tokens[inner], tokens[inner + 1])

    while len(alive) >= finish_below:
        n = len(tokens)
        best = np.minimum.reduceat(pair_rank * n + np.arange(n), starts)  # lowest rank, then leftmost
        rank, pos = np.divmod(best, n)
        finished = rank == none
        if finished.any():
            keep = ~finished
            keep_position = np.repeat(keep, ends - starts)
            done_tokens = tokens[~keep_position].tolist()  # the finished pieces' tokens, end to end
            at = 0
            for k, size in zip(alive[finished].tolist(), (ends - starts)[finished].tolist()):
                out[k] = done_tokens[at : at + size]
                at += size
            new_index = np.cumsum(keep_position) - 1
            pos, rank, alive = new_index[pos[keep]], rank[keep], alive[keep]
            tokens, pair_rank = tokens[keep_position], pair_rank[keep_position]
            ends = np.cumsum((ends - starts)[keep])
            starts = np.append(0, ends[:-1])
            n = len(tokens)
            if len(alive) < finish_below:
                break
        # Merge each live piece's pair at pos: tokens[pos] becomes the new token, pos + 1 goes.
        merged = tokens[pos] = new_id[rank]
        has_right = pos + 2 < ends
        new_rank = np.full(len(pos), none, dtype=np.int64)
        new_rank[has_right] = rules.lookup(merged[has_right], tokens[pos[has_right] + 2])
        pair_rank[pos] = new_rank
        has_left = pos > starts
        left = pos[has_left] - 1
        pair_rank[left] = rules.lookup(tokens[left], merged[has_left])
        keep_position = np.ones(n, dtype=bool)
        keep_position[pos + 1] = False
        tokens, pair_rank = tokens[keep_position], pair_rank[keep_position]
        shift = np.arange(len(starts))  # pieces before piece k lost k positions; piece k one more
        starts = starts - shift
        ends = ends - shift - 1
    unfinished = {}
    for k, a, b in zip(alive.tolist(), starts.tolist(), ends.tolist()):
        unfinished[k] = tokens[a:b].tolist()
    return out, unfinished
