"""The BPE merge loop, shared by :class:`~gpt.tokenizer.BPETokenizer` and the BPE model of
:class:`~gpt.tokenizer.HFTokenizer` (beyond the book: one core, two rule books).

A piece of text starts as a list of token ids (its bytes, or its characters). BPE then repeatedly
joins the adjacent pair with the lowest *rank*, leftmost on ties, until no adjacent pair has a rank.
Only where the ranks come from differs:

* tiktoken's rule (:meth:`MergeRules.from_token_bytes`, GPT-2 via ``BPETokenizer``): a pair merges if
  the bytes of the two tokens joined are a token; its rank is that token's id.
* ``tokenizers``' rule (:meth:`MergeRules.from_merges`, every ``tokenizer.json``): a pair merges only
  if it is in the file's merge list; its rank is its line in that list, and the new token is the
  vocabulary's id of the joined string.

Three ways to run the same loop, with identical results: short pieces rescan a Python list (fast
below about 32 tokens), long pieces use a heap and a linked list (O(n log n) even for a million
bytes), and many new pieces at once merge together in NumPy rounds (:mod:`gpt.tokenizer.batch`).
:class:`PieceCache` remembers the result of each distinct piece and picks among the three.
"""
from __future__ import annotations

import heapq
from array import array
from itertools import repeat
from typing import Callable, Iterable, Sequence

import numpy as np

NO_MERGE = 1 << 62  # "rank" of a pair that does not merge
LONG_PIECE = 32  # pieces longer than this (in starting tokens) use the heap-based merge (measured crossover)
CACHE_LIMIT = 1 << 16  # at most this many remembered multi-token pieces
BATCH_MIN = 256  # this many new pieces in one call are merged together with NumPy (batch.py) ...
BATCH_PIECES = 1 << 12  # ... in batches of at most this many pieces ...
BATCH_PIECE_TOKENS = 256  # ... of at most this many starting tokens (longer ones: the heap merge, one by one)
_ID_TYPECODE = next(code for code in "IL" if array(code).itemsize == 4)  # an array typecode for uint32


def pack_ids(ids) -> bytes:
    """Token ids -> 4 bytes each (native uint32), the form the piece cache stores them in."""
    return array(_ID_TYPECODE, ids).tobytes()


def unpack_ids(packed: bytes) -> list[int]:
    """The inverse of :func:`pack_ids`, for the concatenated ids of many pieces."""
    return np.frombuffer(packed, dtype=np.uint32).tolist()


class MergeRules:
    """Which adjacent pairs of token ids merge, in which order, and into which token.

    Args:
        pair_rank: ``(left_id, right_id) -> rank`` (lower ranks merge first).
        new_id: ``new_id[rank]`` is the id of the token a pair of that rank becomes.
        n_ids: number of token ids (all ids are below it).
    """

    def __init__(self, pair_rank: dict[tuple[int, int], int] | Callable[[], dict], new_id: Sequence[int],
                 n_ids: int) -> None:
        # (a callable builds the table on first use: tiktoken's rule takes 0.2 s for GPT-2)
        self._pair_rank = pair_rank if isinstance(pair_rank, dict) else None
        self._build = None if isinstance(pair_rank, dict) else pair_rank
        self.new_id = list(new_id)
        self.n_ids = n_ids
        self.none = len(self.new_id)  # the batch merge's "no merge" rank: above every real one
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def pair_rank(self) -> dict[tuple[int, int], int]:
        if self._pair_rank is None:
            self._pair_rank = self._build()
        return self._pair_rank

    @classmethod
    def from_merges(cls, merges: Iterable[tuple[int, int, int]], n_ids: int) -> "MergeRules":
        """``tokenizers``' rule: merge ``k`` is ``(left_id, right_id, new_id)``, rank ``k``. A pair
        listed twice keeps its last rank, as the ``tokenizers`` library's hash map does."""
        pair_rank, new_id = {}, []
        for k, (a, b, c) in enumerate(merges):
            pair_rank[(a, b)] = k
            new_id.append(c)
        return cls(pair_rank, new_id, n_ids)

    @classmethod
    def from_token_bytes(cls, vocab: Sequence[bytes], ranks: dict[bytes, int] | None = None) -> "MergeRules":
        """tiktoken's rule for tokens ``vocab[id]``: every split of a token into two tokens merges
        into it, with the token's id as rank (about 108,000 pairs for GPT-2's 50,000 merges)."""
        ranks = {t: i for i, t in enumerate(vocab)} if ranks is None else ranks

        def build() -> dict[tuple[int, int], int]:
            get = ranks.get
            pair_rank = {}
            for token, token_id in ranks.items():
                for k in range(1, len(token)):
                    a = get(token[:k])
                    if a is not None:
                        b = get(token[k:])
                        if b is not None:
                            pair_rank[(a, b)] = token_id
            return pair_rank

        return cls(build, range(len(vocab)), len(vocab))

    # ------------------------------------------------------------------ the NumPy form
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(keys, ranks, new_id)``: the pairs as sorted ``left * n_ids + right`` keys with their
        ranks, and ``new_id`` as an array with one extra entry for the "no merge" rank."""
        if self._arrays is None:
            n = self.n_ids
            if self.pair_rank:
                pairs = np.array(list(self.pair_rank), dtype=np.int64).reshape(-1, 2)
                keys = pairs[:, 0] * n + pairs[:, 1]
                ranks = np.fromiter(self.pair_rank.values(), dtype=np.int64, count=len(self.pair_rank))
                order = np.argsort(keys, kind="stable")
                keys, ranks = keys[order], ranks[order]
            else:  # no merges at all: one impossible key keeps the lookups simple
                keys, ranks = np.array([-1], dtype=np.int64), np.array([self.none], dtype=np.int64)
            new_id = np.array([*self.new_id, -1], dtype=np.int64)
            self._arrays = (keys, ranks, new_id)
        return self._arrays

    def lookup(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Ranks of the pairs ``(a[i], b[i])``; ``self.none`` where a pair does not merge."""
        keys, ranks, _ = self.arrays()
        query = a * self.n_ids + b
        idx = np.searchsorted(keys, query)
        idx[idx == len(keys)] = 0
        return np.where(keys[idx] == query, ranks[idx], self.none)

    # ------------------------------------------------------------------ one piece
    def merge(self, ids: list[int]) -> list[int]:
        """BPE of one piece given as its starting token ids (the list is consumed)."""
        if len(ids) > LONG_PIECE:
            return self._merge_long(ids)
        return self._merge_short(ids)

    def _merge_short(self, ids: list[int]) -> list[int]:
        """Rescan a list: ``pair_ranks[i]`` is the rank of ``(ids[i], ids[i + 1])``. Each step joins
        the leftmost lowest-ranked pair and recomputes only its two neighbours. O(n^2) worst case."""
        get, new_id = self.pair_rank.get, self.new_id
        pair_ranks = list(map(get, zip(ids, ids[1:]), repeat(NO_MERGE)))
        while pair_ranks:
            best = min(pair_ranks)
            if best == NO_MERGE:
                break
            i = pair_ranks.index(best)
            merged = ids[i] = new_id[best]
            del ids[i + 1]
            del pair_ranks[i]
            if i > 0:
                pair_ranks[i - 1] = get((ids[i - 1], merged), NO_MERGE)
            if i < len(pair_ranks):
                pair_ranks[i] = get((merged, ids[i + 1]), NO_MERGE)
        return ids

    def _merge_long(self, ids: list[int]) -> list[int]:
        """The same BPE in O(n log n): a heap of candidate merges, a linked list of parts.

        A part is named by the position ``s`` of its first starting token; ``tok[s]`` is its id.
        ``pair_rank[s]`` is the rank of the part at ``s`` joined with the next part (``NO_MERGE``
        if none, or if ``s`` is gone). The heap holds ``rank * n + s`` (one int sorts faster than a
        tuple): lowest rank first, leftmost on ties, like the list version. Entries are never
        removed early; one whose rank no longer matches ``pair_rank`` is skipped (lazy deletion).
        """
        get, new_id = self.pair_rank.get, self.new_id
        tok = ids
        n = len(tok)
        nxt = list(range(1, n + 1))  # nxt[s]: start of the part after the part at s (n: none)
        prv = list(range(-1, n - 1))  # prv[s]: start of the part before it (-1: none)
        if n > 256:  # NumPy's call overhead only pays off on long pieces
            arr = np.array(tok, dtype=np.int64)
            first = self.lookup(arr[:-1], arr[1:])
            where = np.flatnonzero(first != self.none)
            heap = (first[where] * n + where).tolist()
            pair_rank = np.where(first != self.none, first, NO_MERGE).tolist()
            pair_rank.append(NO_MERGE)
        else:
            pair_rank = list(map(get, zip(tok, tok[1:]), repeat(NO_MERGE)))
            pair_rank.append(NO_MERGE)
            heap = [r * n + i for i, r in enumerate(pair_rank) if r != NO_MERGE]
        heapq.heapify(heap)
        pop, push = heapq.heappop, heapq.heappush
        parts = n
        while heap:
            if len(heap) > 2 * parts + 64:
                # Mostly stale entries: rebuild from the current pairs, walking the parts (O(parts)).
                heap, i = [], 0
                while i < n:
                    if pair_rank[i] != NO_MERGE:
                        heap.append(pair_rank[i] * n + i)
                    i = nxt[i]
                heapq.heapify(heap)
                if not heap:
                    break
            rank, i = divmod(pop(heap), n)
            if pair_rank[i] != rank:
                continue  # stale: the pair at i changed since this entry was pushed
            while True:  # merge at i; then keep going right along a run of the same pair (see below)
                j = nxt[i]
                end = nxt[j]
                merged = tok[i] = new_id[rank]
                nxt[i] = end  # part j joins part i
                pair_rank[j] = NO_MERGE
                parts -= 1
                p = prv[i]
                left = NO_MERGE
                if p >= 0:
                    left = pair_rank[p] = get((tok[p], merged), NO_MERGE)
                    if left != NO_MERGE:
                        push(heap, left * n + p)
                if end >= n:
                    pair_rank[i] = NO_MERGE
                    break
                prv[end] = i
                right = pair_rank[i] = get((merged, tok[end]), NO_MERGE)
                # The next merge is the pair at ``end`` if it has this same rank and no lower-ranked
                # pair was just created: no valid entry ranks lower, and every same-rank entry left
                # of here has been used. Merging it now skips a heap round trip.
                if pair_rank[end] == rank and left > rank and right > rank:
                    i = end
                    continue
                if right != NO_MERGE:
                    push(heap, right * n + i)
                break
        out, i = [], 0
        while i < n:
            out.append(tok[i])
            i = nxt[i]
        return out

    # ------------------------------------------------------------------ many pieces
    def merge_many(self, tokens: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
        """BPE of many pieces at once: NumPy rounds, the last few pieces one by one.

        ``tokens`` (int64) holds the pieces' starting ids end to end, piece ``i`` being
        ``lengths[i] >= 1`` long. Returns each piece's ids.
        """
        from gpt.tokenizer.batch import merge_many

        out: list[list[int]] = []
        ends = np.cumsum(lengths)
        for at in range(0, len(lengths), BATCH_PIECES):  # batches bound the memory used
            stop = min(at + BATCH_PIECES, len(lengths))
            lo, hi = (int(ends[at - 1]) if at else 0), int(ends[stop - 1])
            done, unfinished = merge_many(tokens[lo:hi], lengths[at:stop], self)
            for k, ids in unfinished.items():  # the last few still merging when the batch stopped
                done[k] = self.merge(ids)
            out += done
        return out


def _concatenate(id_lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
    tokens = np.fromiter((i for ids in id_lists for i in ids), dtype=np.int64, count=int(lengths.sum()))
    return tokens, lengths


class PieceCache(dict):
    """Pre-split piece (str) -> its token ids, packed (see :func:`pack_ids`).

    ``known`` holds pieces whose ids are fixed in advance (whole-piece tokens); ``start(piece)``
    gives a piece's starting token ids, which ``rules`` then merge; ``start_many(pieces)``
    (optional, for speed) gives those of many pieces as ``(ids end to end, lengths)`` arrays. Looking up a piece that is not
    there runs BPE on it (``__missing__``) and remembers the result, so one pass of
    ``map(cache.__getitem__, pieces)`` both fills the cache and reads it.
    """

    __slots__ = ("rules", "start", "start_many", "limit")

    def __init__(self, known: dict[str, bytes], rules: MergeRules, start: Callable[[str], list[int]],
                 start_many: Callable[[list[str]], tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        super().__init__(known)
        self.rules, self.start = rules, start
        self.start_many = start_many or (lambda pieces: _concatenate(list(map(start, pieces))))
        self.limit = len(known) + CACHE_LIMIT

    def __missing__(self, piece: str) -> bytes:
        packed = pack_ids(self.rules.merge(self.start(piece)))
        self[piece] = packed
        return packed

    def add_many(self, pieces: list[str]) -> None:
        """BPE of many new pieces together (short ones in NumPy rounds, very long ones alone)."""
        tokens, lengths = self.start_many(pieces)
        odd = (lengths > BATCH_PIECE_TOKENS) | (lengths == 0)
        if odd.any():  # rare: long pieces merge alone, empty ones (no known character) have no ids
            ends = np.cumsum(lengths)
            for k in np.flatnonzero(odd).tolist():
                self[pieces[k]] = pack_ids(self.rules.merge(tokens[ends[k] - lengths[k] : ends[k]].tolist()))
            keep = ~odd
            tokens, lengths = tokens[np.repeat(keep, lengths)], lengths[keep]
            pieces = [p for p, k in zip(pieces, keep.tolist()) if k]
        if pieces:
            self.update(zip(pieces, map(pack_ids, self.rules.merge_many(tokens, lengths))))

    def encode(self, pieces: list[str]) -> list[int]:
        """Pre-split pieces -> ids; BPE runs once per distinct piece not yet here, many new ones
        together. Returns the ids; the caller empties the cache when :meth:`full`."""
        if len(pieces) >= BATCH_MIN:
            new = set(pieces).difference(self)
            if len(new) >= BATCH_MIN:
                self.add_many(list(new))
        return unpack_ids(b"".join(map(self.__getitem__, pieces)))

    def full(self) -> bool:
        return len(self) > self.limit
