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
:mod:`gpt.tokenizer.bpe`, so the results are identical. Looking up "do the bytes of tokens ``a`` and
``b`` joined form a token, and which?" needs a table of all such pairs (:class:`PairTable`), built
once per tokenizer from its vocabulary.
"""
from __future__ import annotations

import numpy as np


def byte_pair_table(ranks: dict[bytes, int], missing: int) -> np.ndarray:
    """(65536,) int64: the id of each 2-byte token at 256 * first + second byte, ``missing`` where
    the two bytes are no token."""
    table = np.full(65536, missing, dtype=np.int64)
    for token, token_id in ranks.items():
        if len(token) == 2:
            table[(token[0] << 8) | token[1]] = token_id
    return table


class PairTable:
    """``(a, b) -> id of the token whose bytes are bytes(a) + bytes(b)`` for every such pair, as sorted arrays.

    This is tiktoken's rule (a pair merges if its joined bytes are a token, whatever split made that
    token), so it holds more pairs than the merge list: about 108,000 for GPT-2's 50,000 merges.
    """

    def __init__(self, vocab: list[bytes], ranks: dict[bytes, int]) -> None:
        self.n = len(vocab)
        get = ranks.get
        keys, values = [], []
        for token, token_id in ranks.items():
            for k in range(1, len(token)):
                a = get(token[:k])
                if a is not None:
                    b = get(token[k:])
                    if b is not None:
                        keys.append(a * self.n + b)
                        values.append(token_id)
        order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
        self.keys = np.array(keys, dtype=np.int64)[order]
        self.values = np.array(values, dtype=np.int64)[order]
        if not len(self.keys):  # no merges at all: one impossible key keeps the lookups simple
            self.keys = np.array([-1], dtype=np.int64)
            self.values = np.array([self.n], dtype=np.int64)
        # Two single bytes: a direct table by 256 * first + second byte value (the first round's lookups).
        self.byte_pairs = byte_pair_table(ranks, missing=self.n)

    def lookup(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Joined-token ids for the pairs ``(a[i], b[i])``; ``self.n`` ("no merge") where there is none."""
        query = a * self.n + b
        idx = np.searchsorted(self.keys, query)
        idx[idx == len(self.keys)] = 0
        return np.where(self.keys[idx] == query, self.values[idx], self.n)


def merge_many(pieces: list[bytes], table: PairTable, byte_ids: np.ndarray, finish_below: int = 128):
    """BPE of each piece (its bytes) -> its token ids; a token's id must be its merge rank.

    ``byte_ids[b]`` is the id of byte ``b``. Returns ``(done, unfinished)``: ``done[i]`` is the token
    ids of piece ``i``, or None if it was still merging when fewer than ``finish_below`` pieces were
    left (a NumPy round costs about the same for two pieces as for two thousand); ``unfinished``
    maps those pieces to their tokens so far, from which the one-piece loop can carry on.
    """
    none = table.n
    out: list[list[int] | None] = [None] * len(pieces)
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    raw = np.frombuffer(b"".join(pieces), dtype=np.uint8).astype(np.int64)
    tokens = byte_ids[raw]
    ends = np.cumsum(lengths)  # one past the last position of each live piece
    starts = ends - lengths  # first position of each live piece
    alive = np.arange(len(pieces))  # original index of each live piece
    # pair_rank[i]: id of the token tokens[i] + tokens[i + 1] joins to; none if not a token, or if
    # position i is the last of its piece
    pair_rank = np.full(len(tokens), none, dtype=np.int64)
    inner = np.ones(len(tokens), dtype=bool)
    inner[ends - 1] = False
    inner = np.flatnonzero(inner)
    pair_rank[inner] = table.byte_pairs[(raw[inner] << 8) | raw[inner + 1]]

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
        tokens[pos] = rank
        has_right = pos + 2 < ends
        new_rank = np.full(len(pos), none, dtype=np.int64)
        new_rank[has_right] = table.lookup(rank[has_right], tokens[pos[has_right] + 2])
        pair_rank[pos] = new_rank
        has_left = pos > starts
        left = pos[has_left] - 1
        pair_rank[left] = table.lookup(tokens[left], rank[has_left])
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
