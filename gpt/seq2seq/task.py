"""The task the seq2seq models learn: write down a number that is read aloud.

A phone or card number read out digit by digit, the way people say it ("four one five double five
two six seven one", or "triple zero" for 000), must be written in digits ("4 1 5 5 5 2 6 7 1").
Every input word matters and the output has to reproduce all of it in order, so a model that
squeezes the whole input into one vector must remember every digit there; "double" and "triple"
make the output longer than the input and the alignment between them not a plain diagonal.
Scoring is exact: an answer is right only if every digit is. Any number of words can be generated
from a seed, so accuracy can be measured by input length, up to lengths never seen in training.

    source words: zero one two three four five six seven eight nine double triple
    target:       0 1 2 3 4 5 6 7 8 9, then <eos>

One vocabulary holds both sides (as the original Transformer shares one between its encoder and
decoder): ``<pad>`` = 0, ``<bos>`` = 1 (starts every decoder input), ``<eos>`` = 2, then the words,
then the digits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
REPEAT_WORDS = {"double": 2, "triple": 3}
SOURCE_WORDS = DIGIT_WORDS + tuple(REPEAT_WORDS)
DIGITS = tuple("0123456789")
VOCAB = SPECIALS + SOURCE_WORDS + DIGITS
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
VOCAB_SIZE = len(VOCAB)
#: targets at padded positions: ignored by the loss (cross_entropy's ignore_index)
IGNORE = -100


def read_aloud(words: list[str] | str) -> str:
    """The digits a reading means: ``"four double five"`` -> ``"455"``."""
    if isinstance(words, str):
        words = words.split()
    out, repeat = [], 1
    for w in words:
        if w in REPEAT_WORDS:
            if repeat != 1:
                raise ValueError(f"{w!r} after another repeat word in {' '.join(words)!r}")
            repeat = REPEAT_WORDS[w]
            continue
        if w not in DIGIT_WORDS:
            raise ValueError(f"unknown word {w!r}; the words are: {', '.join(SOURCE_WORDS)}")
        out.append(str(DIGIT_WORDS.index(w)) * repeat)
        repeat = 1
    if repeat != 1:
        raise ValueError(f"{' '.join(words)!r} ends with a repeat word")
    return "".join(out)


def random_reading(rng: np.random.Generator, n_words: int, p_double: float = 0.15, p_triple: float = 0.08) -> list[str]:
    """A reading of exactly ``n_words`` words: each digit said on its own, or (when at least two
    words are left) as "double d" / "triple d" with the given probabilities."""
    words = []
    while len(words) < n_words:
        digit = DIGIT_WORDS[rng.integers(10)]
        u = rng.random()
        if n_words - len(words) >= 2 and u < p_double + p_triple:
            words += ["double" if u < p_double else "triple", digit]
        else:
            words.append(digit)
    return words


@dataclass
class Batch:
    """A padded batch. src (b, S) word ids, right-padded with PAD; src_lengths (b,);
    tgt_in (b, T) = <bos> + digits (the decoder's teacher-forced input), tgt_out (b, T) = digits +
    <eos>, padded with IGNORE; answers: the digit strings."""

    src: np.ndarray
    src_lengths: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    answers: list[str]


def encode_batch(readings: list[list[str]]) -> Batch:
    """Token ids for a list of readings (lists of words), padded to the longest."""
    answers = [read_aloud(r) for r in readings]
    b = len(readings)
    src_len = np.array([len(r) for r in readings])
    tgt_len = np.array([len(a) for a in answers]) + 1
    src = np.full((b, src_len.max()), PAD, dtype=np.int64)
    tgt_in = np.full((b, tgt_len.max()), PAD, dtype=np.int64)
    tgt_out = np.full((b, tgt_len.max()), IGNORE, dtype=np.int64)
    for i, (r, a) in enumerate(zip(readings, answers)):
        src[i, :len(r)] = [TOKEN_ID[w] for w in r]
        digits = [TOKEN_ID[d] for d in a]
        tgt_in[i, :len(a) + 1] = [BOS, *digits]
        tgt_out[i, :len(a) + 1] = [*digits, EOS]
    return Batch(src, src_len, tgt_in, tgt_out, answers)


def sample_batch(rng: np.random.Generator, batch_size: int, min_words: int, max_words: int) -> Batch:
    """``batch_size`` random readings, lengths uniform in ``[min_words, max_words]``."""
    lengths = rng.integers(min_words, max_words + 1, size=batch_size)
    return encode_batch([random_reading(rng, int(n)) for n in lengths])


def decode_digits(ids) -> str:
    """Output ids -> the digit string, stopping at <eos> (non-digit tokens are written as '?')."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        out.append(VOCAB[i] if VOCAB[i] in DIGITS else "?")
    return "".join(out)


def make_test_set(seed: int, buckets: list[tuple[int, int]], per_bucket: int) -> dict[tuple[int, int], list[list[str]]]:
    """``per_bucket`` readings for each (lo, hi) word-length bucket, from their own seed (short
    readings can also occur in training: there are only so many of them)."""
    rng = np.random.default_rng([seed, 1])
    return {(lo, hi): [random_reading(rng, int(n)) for n in rng.integers(lo, hi + 1, size=per_bucket)]
            for lo, hi in buckets}
