"""Word2Vec: word embeddings learned from which words occur near which (chapter 2's aside; beyond the book).

The book mentions Word2Vec as the classic way to embed words ("words in similar contexts have
similar meanings") before it lets the GPT learn its own token embeddings. This module trains it
with minigrad, as Mikolov et al. (2013) describe:

* **skip-gram**: from a word (the *center*) predict each word around it (its *contexts*, up to
  ``window`` positions either side; the window shrinks at random, so near words count more).
* **CBOW** (continuous bag of words): from the mean of the context vectors predict the center.
* **negative sampling** instead of a softmax over the vocabulary: the true pair should score
  high, and ``negatives`` words drawn from the unigram distribution raised to 0.75 (which gives
  rare words more chances than their frequency) should score low:

      loss = -log sigmoid(u_o . v_c) - sum_k log sigmoid(-u_k . v_c)

  with v the *input* vectors (the embeddings we keep) and u the *output* vectors.
* **subsampling** of frequent words: each occurrence of a word of frequency f is dropped with
  probability 1 - (sqrt(f / t) + 1) t / f (word2vec.c's rule, t = ``sample``), so "the" and "a"
  stop dominating the pairs, and the window reaches further.

Everything is vectorised: one epoch's (center, context) pairs come from a loop over the window
*offsets* (at most ``window``), never over tokens; a batch is three index arrays (centers,
contexts, negatives) and the model is two embedding lookups and one fused loss node.

Afterwards: :func:`nearest` neighbours and :func:`analogy` ("a is to b as c is to ?") by cosine,
and :func:`rank_of` (where one word ranks among another's neighbours) as a measurement.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import regex

import minigrad as mg
from minigrad import nn
from minigrad.function import Function

# lower-case words; Python names such as dict_keys stay whole, __init__ is init
WORD = regex.compile(r"[a-z]+(?:_[a-z0-9]+)*")


def words(text: str) -> list[str]:
    """The words of a text, lower-cased, without punctuation or numbers."""
    return WORD.findall(text.lower())


@dataclass
class Vocabulary:
    """The words kept (seen at least ``min_count`` times), most frequent first, and their counts."""

    words: list[str]
    counts: np.ndarray

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, tokens: Sequence[str], min_count: int = 5, max_size: int | None = None) -> "Vocabulary":
        unique, counts = np.unique(np.asarray(tokens, dtype=object).astype(str), return_counts=True)
        order = np.lexsort((unique, -counts))              # by count, ties alphabetically
        keep = [i for i in order if counts[i] >= min_count][:max_size]
        if not keep:
            raise ValueError(f"no word occurs {min_count} times or more; lower min_count or give more text")
        return cls([str(unique[i]) for i in keep], counts[keep].astype(np.int64))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        """Token strings -> ids (int64); words not in the vocabulary are dropped (as word2vec.c does)."""
        return np.array([self.index[t] for t in tokens if t in self.index], dtype=np.int64)

    def id(self, word: str) -> int:
        if word not in self.index:
            raise KeyError(f"{word!r} is not in the vocabulary ({len(self)} words seen at least min_count times)")
        return self.index[word]


def keep_probabilities(counts: np.ndarray, sample: float = 1e-3) -> np.ndarray:
    """(V,) probability of keeping one occurrence of each word: (sqrt(f / t) + 1) t / f, at most 1,
    with f the word's frequency and t = ``sample`` (0 keeps every word)."""
    if sample <= 0:
        return np.ones(len(counts))
    f = counts / counts.sum()
    return np.minimum((np.sqrt(f / sample) + 1) * sample / f, 1.0)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """(V,) the distribution negatives are drawn from: counts ** 0.75, normalised."""
    p = counts.astype(np.float64) ** power
    return p / p.sum()


def subsample(ids: np.ndarray, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ids with each occurrence kept with probability ``keep[id]`` (new draws every epoch)."""
    return ids[rng.random(len(ids)) < keep[ids]]


def skipgram_pairs(ids: np.ndarray, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(centers, contexts), each (N,): every pair of positions at most b apart, with b drawn
    uniformly from 1..window for each center (word2vec's shrinking window). Loops over the offsets."""
    n = len(ids)
    reach = rng.integers(1, window + 1, n)                   # (n,) the window of each center
    centers, contexts = [], []
    for d in range(1, min(window, n - 1) + 1):
        left = np.flatnonzero(reach[d:] >= d) + d            # centers with a context d to their left
        right = np.flatnonzero(reach[:n - d] >= d)           # ... and d to their right
        centers += [ids[left], ids[right]]
        contexts += [ids[left - d], ids[right + d]]
    if not centers:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(centers), np.concatenate(contexts)


def cbow_examples(ids: np.ndarray, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(contexts (n, 2 window) with -1 where there is none, centers (n,)) with the same shrinking window."""
    n = len(ids)
    reach = rng.integers(1, window + 1, n)
    contexts = np.full((n, 2 * window), -1, dtype=np.int64)
    for d in range(1, window + 1):
        if d >= n:
            break
        pos = np.arange(n)
        ok_left = (reach >= d) & (pos - d >= 0)
        ok_right = (reach >= d) & (pos + d < n)
        contexts[ok_left, 2 * (d - 1)] = ids[pos[ok_left] - d]
        contexts[ok_right, 2 * d - 1] = ids[pos[ok_right] + d]
    has_context = (contexts >= 0).any(axis=1)
    return contexts[has_context], ids[has_context]


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    """log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|)), finite for every finite x."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


class NegativeSamplingLoss(Function):
    """mean over the batch of -log sigmoid(u_0 . v) - sum_{k>=1} log sigmoid(-u_k . v), one node.

    v: (B, d) input vectors (centers, or CBOW's context means); u: (B, 1 + K, d) output vectors of
    the true word (index 0) and the K negatives -> a scalar. With s_j = u_j . v and sign +1 for
    j = 0, -1 otherwise, each term is -log sigmoid(sign_j s_j).
    Backward: dL/ds_j = -sign_j sigmoid(-sign_j s_j) / B; dv = sum_j dL/ds_j u_j; du_j = dL/ds_j v.
    """

    def forward(self, v, u):
        s = np.einsum("bkd,bd->bk", u, v)                     # (B, 1 + K) scores
        s[:, 1:] *= -1                                         # sign_j s_j
        loss = -_log_sigmoid(s).sum() / len(v)
        if any(self.needs_input_grad):
            self.save_for_backward(v, u, s)
        return np.asarray(loss, dtype=v.dtype)

    def backward(self, grad):
        v, u, s = self.saved_tensors
        ds = np.exp(_log_sigmoid(-s))                          # sigmoid(-sign s), stable
        ds *= -grad / len(v)
        ds[:, 1:] *= -1                                        # dL/ds_j
        dv = np.einsum("bk,bkd->bd", ds, u) if self.needs_input_grad[0] else None
        du = ds[:, :, None] * v[:, None, :] if self.needs_input_grad[1] else None
        return dv, du


def negative_sampling_loss(v, u):
    """See :class:`NegativeSamplingLoss`: v (B, d), u (B, 1 + K, d) -> scalar Tensor."""
    return NegativeSamplingLoss.apply(v, u)


class Word2Vec(nn.Module):
    """Two tables of ``dim``-dimensional vectors: ``in_emb`` (the word vectors we keep) and
    ``out_emb`` (used only to score pairs). word2vec.c's initialisation: input vectors uniform in
    +-0.5 / dim, output vectors 0."""

    def __init__(self, vocab_size: int, dim: int = 100):
        super().__init__()
        self.in_emb = nn.Embedding(vocab_size, dim)
        self.out_emb = nn.Embedding(vocab_size, dim)
        rng = mg.random.default_generator()
        self.in_emb.weight.data[...] = (rng.random((vocab_size, dim), dtype=np.float32) - 0.5) / dim
        self.out_emb.weight.data[...] = 0

    def skipgram_loss(self, centers, contexts, negatives):
        """centers, contexts: (B,) ids; negatives: (B, K) ids -> the mean negative-sampling loss."""
        v = self.in_emb(centers)                                                     # (B, d)
        u = self.out_emb(np.concatenate([contexts[:, None], negatives], axis=1))     # (B, 1 + K, d)
        return negative_sampling_loss(v, u)

    def cbow_loss(self, contexts, centers, negatives):
        """contexts: (B, C) ids, -1 where there is none; centers: (B,); negatives: (B, K)."""
        present = (contexts >= 0).astype(np.float32)[:, :, None]                    # (B, C, 1)
        summed = (self.in_emb(np.maximum(contexts, 0)) * present).sum(axis=1)        # (B, d)
        v = summed / present.sum(axis=1)                                             # the mean context vector
        u = self.out_emb(np.concatenate([centers[:, None], negatives], axis=1))
        return negative_sampling_loss(v, u)

    def vectors(self) -> np.ndarray:
        """(V, dim) the input vectors scaled to length 1 (so a dot product is a cosine)."""
        w = self.in_emb.weight.data
        return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)


@dataclass
class TrainingReport:
    epochs: int
    steps: int
    examples: int
    seconds: float
    losses: list           # mean loss of each epoch


def train_word2vec(ids: np.ndarray, vocab: Vocabulary, mode: str = "skipgram", dim: int = 100, window: int = 5,
                   negatives: int = 5, epochs: int = 3, batch_size: int = 1024, lr: float = 0.025,
                   sample: float = 1e-3, seed: int = 0, progress: Callable[[int, float], None] | None = None,
                   ) -> tuple[Word2Vec, TrainingReport]:
    """Train Word2Vec on a sequence of word ids (``vocab.encode(words(text))``).

    ``lr`` is word2vec.c's learning rate per example (0.025 for skip-gram, 0.05 is its CBOW
    default), decayed linearly to 1e-4 of itself; since a batch's loss is a mean, each step uses
    ``lr * batch_size``. Returns the model and a :class:`TrainingReport`.
    """
    if mode not in ("skipgram", "cbow"):
        raise ValueError(f"mode must be 'skipgram' or 'cbow', not {mode!r}")
    for name, value in (("dim", dim), ("window", window), ("negatives", negatives), ("epochs", epochs),
                        ("batch_size", batch_size)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    rng = np.random.default_rng(seed)
    mg.manual_seed(seed)
    model = Word2Vec(len(vocab), dim)
    keep = keep_probabilities(vocab.counts, sample)
    noise_cdf = np.cumsum(noise_distribution(vocab.counts))
    noise_cdf[-1] = 1.0
    # the number of examples varies a little by epoch (random subsampling and windows): estimate once
    estimate = len(subsample(ids, keep, np.random.default_rng(seed))) * ((window + 1) if mode == "skipgram" else 1)
    total_steps = max(1, epochs * math.ceil(estimate / batch_size))
    optimizer = mg.optim.SGD(model.parameters(), lr=lr * batch_size)
    step, seen, losses, start = 0, 0, [], time.perf_counter()
    for epoch in range(epochs):
        kept = subsample(ids, keep, rng)
        if mode == "skipgram":
            inputs, targets = skipgram_pairs(kept, window, rng)
        else:
            inputs, targets = cbow_examples(kept, window, rng)
        if len(targets) == 0:
            raise ValueError("the text is too short to make a single training example; give more text")
        order = rng.permutation(len(targets))
        epoch_loss = 0.0
        for begin in range(0, len(order), batch_size):
            chosen = order[begin:begin + batch_size]
            noise = np.searchsorted(noise_cdf, rng.random((len(chosen), negatives)), side="right")
            noise = np.minimum(noise, len(vocab) - 1)
            if mode == "skipgram":
                loss = model.skipgram_loss(inputs[chosen], targets[chosen], noise)
            else:
                loss = model.cbow_loss(inputs[chosen], targets[chosen], noise)
            optimizer.zero_grad()
            loss.backward()
            for group in optimizer.param_groups:            # linear decay, as word2vec.c
                group["lr"] = lr * batch_size * max(1e-4, 1 - step / total_steps)
            optimizer.step()
            epoch_loss += loss.item() * len(chosen)
            step += 1
        seen += len(order)
        losses.append(epoch_loss / len(order))
        if progress is not None:
            progress(epoch + 1, losses[-1])
    return model, TrainingReport(epochs, step, seen, time.perf_counter() - start, losses)


# ---------------------------------------------------------------------- using the vectors
def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def nearest(vectors: np.ndarray, vocab: Vocabulary, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The ``k`` words with the highest cosine to ``word`` (itself excluded), with their cosines."""
    unit = _unit(vectors)
    sims = unit @ unit[vocab.id(word)]
    sims[vocab.id(word)] = -np.inf
    best = np.argsort(-sims, kind="stable")[:k]
    return [(vocab.words[i], float(sims[i])) for i in best]


def analogy(vectors: np.ndarray, vocab: Vocabulary, a: str, b: str, c: str, k: int = 5) -> list[tuple[str, float]]:
    """"a is to b as c is to ?": the words nearest to b - a + c (unit vectors), a, b and c excluded."""
    unit = _unit(vectors)
    query = unit[vocab.id(b)] - unit[vocab.id(a)] + unit[vocab.id(c)]
    sims = unit @ (query / np.linalg.norm(query))
    for w in (a, b, c):
        sims[vocab.id(w)] = -np.inf
    best = np.argsort(-sims, kind="stable")[:k]
    return [(vocab.words[i], float(sims[i])) for i in best]


def rank_of(vectors: np.ndarray, vocab: Vocabulary, word: str, other: str) -> int:
    """Where ``other`` ranks among the neighbours of ``word`` by cosine: 1 = the nearest word."""
    unit = _unit(vectors)
    sims = unit @ unit[vocab.id(word)]
    target = sims[vocab.id(other)]
    sims[vocab.id(word)] = -np.inf
    return int((sims > target).sum()) + 1
