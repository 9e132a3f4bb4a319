"""Learning BPE merges from text, fast.

The textbook algorithm (book chapter 2.5, and minbpe) counts every adjacent token pair in the corpus,
merges the most frequent pair into a new token, and starts over: thousands of passes over the whole
corpus. This trainer does the same merges with far less work:

* The corpus is pre-split with the tokenizer's regex (merges never cross pieces) and only the
  *distinct* pieces are kept, each with its frequency: a 465 KB text has about 6,000 of them.
* ``pair_count[(a, b)]`` is the number of times tokens ``a`` and ``b`` are adjacent, summed over
  pieces weighted by frequency (overlapping occurrences count: ``"aaa"`` holds ``(a, a)`` twice).
* ``pieces_with[(a, b)]`` lists the pieces where the pair occurs, so a merge only touches those, and
  only the pairs next to each merged occurrence change.
* A heap of ``(-count, a, b)`` finds the most frequent pair. Entries are not updated in place: when a
  count drops, the old entry stays (lazy deletion) and is corrected when it reaches the top; when a
  count grows, a new entry is pushed.

Tie-break rule (deterministic, independent of PYTHONHASHSEED): among pairs with the highest count, the
pair with the smallest left id wins, then the smallest right id, i.e. the smallest ``(count desc,
left, right)`` tuple. A pair whose joined bytes already form a token (the same bytes reached by a
different split) is never merged, so every token's bytes are unique, as tiktoken's rank table requires.
"""
from __future__ import annotations

import heapq
import sys
import time
import warnings
from collections import Counter, defaultdict
from typing import Iterable

import regex

from gpt.tokenizer.pretokenize import Splitter, replace_lone_surrogates


def count_pieces(texts: Iterable[str], splitter: Splitter, special_tokens: Iterable[str] = ()) -> Counter:
    """Distinct pre-split pieces of the texts (as UTF-8 bytes) -> how often each occurs.

    Special tokens found in the texts are cut out first, so they are never learned as ordinary text
    and no piece spans one. Lone surrogates become U+FFFD, as in encoding.
    """
    specials = sorted(set(special_tokens), key=lambda s: (-len(s), s))
    cut = regex.compile("|".join(regex.escape(s) for s in specials)) if specials else None
    counts: Counter = Counter()
    any_text = False
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"training texts must be str, got {type(text).__name__}")
        any_text = any_text or bool(text)
        text = replace_lone_surrogates(text)
        for chunk in cut.split(text) if cut is not None else (text,):
            counts.update(splitter.split(chunk))
    if not any_text:
        raise ValueError("the training corpus is empty; give it some text")
    return Counter({piece.encode("utf-8"): n for piece, n in counts.items()})


def learn_merges(piece_counts: dict[bytes, int], n_merges: int, verbose: bool | None = None) -> list[tuple[int, int]]:
    """Learn up to ``n_merges`` merges from distinct pieces (bytes -> frequency); ids are byte values, then 256, 257, ...

    Returns the merges ``(left_id, right_id)`` in order (merge ``k`` makes token ``256 + k``). Stops
    early with a warning if no pair of adjacent tokens is left to merge.
    """
    # Order the pieces by their bytes, so nothing below depends on dict or set iteration order.
    items = sorted(piece_counts.items())
    words: list[list[int]] = [list(piece) for piece, _ in items]
    freqs: list[int] = [n for _, n in items]
    token_bytes: list[bytes] = [bytes((b,)) for b in range(256)]
    known = set(token_bytes)

    pair_count: defaultdict[tuple[int, int], int] = defaultdict(int)
    pieces_with: defaultdict[tuple[int, int], set[int]] = defaultdict(set)
    for w, (word, f) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_count[pair] += f
            pieces_with[pair].add(w)
    heap = [(-c, a, b) for (a, b), c in pair_count.items()]
    heapq.heapify(heap)

    progress = _Progress(n_merges, verbose)
    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges:
        if not heap:
            warnings.warn(
                f"training stopped after {len(merges)} of {n_merges} merges: the corpus has no pair of "
                f"adjacent tokens left to merge (give it more text or ask for a smaller vocab_size)",
                stacklevel=3,
            )
            break
        neg, a, b = heapq.heappop(heap)
        count = pair_count.get((a, b), 0)
        if count != -neg:
            if 0 < count < -neg:  # the count dropped since this entry was pushed: re-file it
                heapq.heappush(heap, (-count, a, b))
            continue  # (a count above the entry's has a newer entry of its own)
        joined = token_bytes[a] + token_bytes[b]
        if joined in known:  # the same bytes are a token already: never merge this pair
            continue  # (its count cannot grow again, so it is never pushed again)
        new = 256 + len(merges)
        merges.append((a, b))
        token_bytes.append(joined)
        known.add(joined)
        _apply_merge(a, b, new, words, freqs, pair_count, pieces_with, heap)
        progress.update(len(merges))
    progress.done(len(merges))
    return merges


def _apply_merge(a, b, new, words, freqs, pair_count, pieces_with, heap) -> None:
    """Replace every ``a, b`` (left to right, non-overlapping) by ``new`` in the pieces that hold it.

    For each occurrence, the pairs that touched ``a`` or ``b`` lose the piece's frequency and the pairs
    that touch ``new`` gain it; only pairs with ``new`` can grow, so only they are pushed on the heap.
    """
    grown: set[tuple[int, int]] = set()
    for w in sorted(pieces_with.pop((a, b))):  # sorted: the same work in the same order every run
        word = words[w]
        n = len(word)
        # Find the occurrences, left to right, without overlap.
        starts = []
        i = 0
        while True:
            try:
                i = word.index(a, i)
            except ValueError:
                break
            if i + 1 < n and word[i + 1] == b:
                starts.append(i)
                i += 2
            else:
                i += 1
        if not starts:
            continue  # the piece no longer holds the pair (pieces_with is never pruned)
        f = freqs[w]
        # Old pairs that disappear: at positions s-1, s, s+1 of each occurrence (once each).
        gone = set()
        for s in starts:
            gone.update((s - 1, s, s + 1))
        for p in gone:
            if 0 <= p < n - 1:
                pair_count[(word[p], word[p + 1])] -= f
        # Build the new piece, remembering where ``new`` landed.
        out: list[int] = []
        placed = []
        prev = 0
        for s in starts:
            out.extend(word[prev:s])
            placed.append(len(out))
            out.append(new)
            prev = s + 2
        out.extend(word[prev:])
        words[w] = out
        # New pairs: on either side of each placed token (once each).
        m = len(out)
        born = set()
        for q in placed:
            born.update((q - 1, q))
        for p in born:
            if 0 <= p < m - 1:
                pair = (out[p], out[p + 1])
                pair_count[pair] += f
                pieces_with[pair].add(w)
                grown.add(pair)
    # Push the grown pairs once each, with their final counts.
    for pair in grown:
        heapq.heappush(heap, (-pair_count[pair], pair[0], pair[1]))
    del pair_count[(a, b)]


class _Progress:
    """Prints ``merges done / total`` to stderr about once a second (verbose=None: only after 2 s)."""

    def __init__(self, total: int, verbose: bool | None) -> None:
        self.total, self.verbose = total, verbose
        self.start = self.last = time.perf_counter()
        self.shown = False

    def update(self, done: int) -> None:
        if self.verbose is False or done % 64:
            return
        now = time.perf_counter()
        if now - self.last < 1.0 or (self.verbose is None and now - self.start < 2.0):
            return
        self.last, self.shown = now, True
        rate = done / (now - self.start)
        print(f"\rtraining BPE: {done}/{self.total} merges ({rate:.0f}/s)", end="", file=sys.stderr, flush=True)

    def done(self, done: int) -> None:
        if self.shown or self.verbose:
            elapsed = time.perf_counter() - self.start
            print(f"\rtraining BPE: {done}/{self.total} merges in {elapsed:.1f} s", file=sys.stderr, flush=True)
