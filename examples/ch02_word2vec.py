"""Chapter 2's aside, "Understanding word embeddings": Word2Vec, trained here, beside a GPT's own embeddings.

The book notes that word vectors can be learned on their own ("words in similar contexts have
similar meanings", the Word2Vec approach) before it lets the GPT learn its token embeddings as
part of next-token prediction. This script does both on the same words of the embedded corpus
(CPython's reference documentation and docstrings) and measures the result the same way:

    1  words, a vocabulary, subsampling of frequent words, the unigram^0.75 noise distribution
    2  skip-gram pairs (center, context) from a shrinking window
    3  before training: where "tuple" ranks among the neighbours of "list" (random vectors)
    4  skip-gram with negative sampling, trained with minigrad (about a minute), then CBOW
    5  after training: the same ranks, nearest neighbours, analogies
    6  a small GPT trained on the same word ids: do its token embeddings put the same words together?

    python examples/ch02_word2vec.py            (about two minutes)
    python examples/ch02_word2vec.py --fast     (a few seconds, on a slice of the corpus)
"""
from __future__ import annotations

import sys

import numpy as np
from _common import Stopwatch, parse_args, section

import minigrad as mg
from minigrad.optim import AdamW

from gpt import word2vec as w2v
from gpt.corpus import default_corpus
from gpt.model import GPTConfig, GPTModel

# related words of the corpus's subject (Python): each pair should end up near each other
PAIRS = [("list", "tuple"), ("read", "write"), ("int", "float"), ("true", "false"), ("key", "value"),
         ("open", "close"), ("thread", "process"), ("error", "exception"), ("method", "function"),
         ("string", "bytes")]


def ranks(vectors: np.ndarray, vocab: w2v.Vocabulary, pairs) -> list[int]:
    return [w2v.rank_of(vectors, vocab, a, b) for a, b in pairs]


def train_word_gpt(ids: np.ndarray, vocab_size: int, steps: int, seed: int = 0) -> GPTModel:
    """A small GPT whose tokens are the same words, trained to predict the next word for ``steps`` steps."""
    mg.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab_size, context_length=32, emb_dim=64, n_heads=2, n_layers=2, drop_rate=0.0)
    model = GPTModel(cfg)
    optimizer = AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    batch, t = 32, cfg.context_length
    for step in range(steps):
        starts = rng.integers(0, len(ids) - t - 1, batch)
        windows = ids[starts[:, None] + np.arange(t + 1)]          # (batch, t + 1)
        loss = mg.cross_entropy(model(windows[:, :-1]), windows[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 0 or (step + 1) % max(1, steps // 4) == 0:
            print(f"  GPT step {step + 1:4d}: next-word loss {loss.item():.3f}")
    return model


def main() -> int:
    args = parse_args("Chapter 2: Word2Vec (skip-gram and CBOW with negative sampling) vs a GPT's embeddings.")
    np.set_printoptions(precision=4, suppress=True)
    fast = args.fast

    section("1 Words and a vocabulary")
    text = default_corpus(max_chars=400_000 if fast else None)
    tokens = w2v.words(text)
    vocab = w2v.Vocabulary.build(tokens, min_count=5)
    ids = vocab.encode(tokens)
    print(f"Text: the embedded corpus, {len(text):,} characters, {len(tokens):,} words")
    print(f"Vocabulary: {len(vocab):,} words seen at least 5 times, {len(ids):,} word ids in the text")
    print("Most frequent:", ", ".join(f"{w} ({c})" for w, c in zip(vocab.words[:8], vocab.counts[:8])))
    keep = w2v.keep_probabilities(vocab.counts, 1e-3)
    kept = w2v.subsample(ids, keep, np.random.default_rng(0))
    print(f"Subsampling (t = 1e-3) keeps 'the' with probability {keep[vocab.id('the')]:.3f}, "
          f"'tuple' with {keep[vocab.id('tuple')]:.3f}: {len(kept):,} of {len(ids):,} words remain")
    noise = w2v.noise_distribution(vocab.counts)
    print(f"Negatives are drawn from counts^0.75: 'the' {noise[0]:.4f} (its frequency {vocab.counts[0] / vocab.counts.sum():.4f}), "
          f"'tuple' {noise[vocab.id('tuple')]:.5f} ({vocab.counts[vocab.id('tuple')] / vocab.counts.sum():.5f})")

    section("2 Skip-gram pairs")
    sentence = vocab.encode(w2v.words("Return a new list containing the items of the tuple"))
    centers, contexts = w2v.skipgram_pairs(sentence, 2, np.random.default_rng(1))
    print("Sentence:", " ".join(vocab.words[i] for i in sentence))
    print("Some (center, context) pairs:",
          ", ".join(f"({vocab.words[c]}, {vocab.words[x]})" for c, x in list(zip(centers, contexts))[:8]))

    section("3 Before training")
    pairs = [(a, b) for a, b in PAIRS if a in vocab and b in vocab]
    random_model = w2v.Word2Vec(len(vocab), 100)
    before = ranks(random_model.vectors(), vocab, pairs)
    print(f"Rank of 'tuple' among the neighbours of 'list' with random vectors: {before[0]} of {len(vocab) - 1}")

    section("4 Training skip-gram and CBOW with negative sampling")
    settings = dict(dim=50 if fast else 100, window=5, negatives=5, batch_size=256 if fast else 1024, sample=1e-3,
                    seed=0)
    with Stopwatch() as sw:
        skipgram, report = w2v.train_word2vec(ids, vocab, mode="skipgram", epochs=4 if fast else 3, lr=0.025,
                                              progress=lambda e, loss: print(f"  skip-gram epoch {e}: loss {loss:.4f}"),
                                              **settings)
    print(f"Skip-gram: {report.examples:,} pairs in {report.steps} steps, {sw.seconds:.1f} s")
    with Stopwatch() as sw:
        cbow, report = w2v.train_word2vec(ids, vocab, mode="cbow", epochs=4 if fast else 5, lr=0.05,
                                          progress=lambda e, loss: print(f"  CBOW epoch {e}: loss {loss:.4f}"),
                                          **{**settings, "batch_size": 128 if fast else 512})
    print(f"CBOW: {report.examples:,} examples in {report.steps} steps, {sw.seconds:.1f} s")

    section("5 After training")
    vectors = skipgram.vectors()
    after = ranks(vectors, vocab, pairs)
    print(f"Rank of 'tuple' among the neighbours of 'list': before {before[0]}, after {after[0]}")
    for word in [w for w in ("list", "file", "thread", "error") if w in vocab]:
        print(f"Nearest to {word!r}:", ", ".join(f"{w} ({s:.2f})" for w, s in w2v.nearest(vectors, vocab, word, 6)))
    for a, b, c in (("list", "lists", "tuple"), ("read", "reading", "write"), ("int", "integer", "str")):
        if all(w in vocab for w in (a, b, c)):
            best = w2v.analogy(vectors, vocab, a, b, c, 3)
            print(f"{a} : {b} = {c} : ?", ", ".join(f"{w} ({s:.2f})" for w, s in best))

    section("6 A GPT's token embeddings on the same words")
    with Stopwatch() as sw:
        gpt = train_word_gpt(ids, len(vocab), steps=60 if fast else 600)
    print(f"GPT trained in {sw.seconds:.1f} s")
    gpt_ranks = ranks(gpt.tok_emb.weight.data, vocab, pairs)
    cbow_ranks = ranks(cbow.vectors(), vocab, pairs)
    print(f"\nRank of the second word among the first word's {len(vocab) - 1:,} neighbours (1 = nearest):")
    print(f"  {'pair':22s} {'random':>7s} {'skip-gram':>10s} {'CBOW':>6s} {'GPT tok_emb':>12s}")
    for (a, b), r0, r1, r2, r3 in zip(pairs, before, after, cbow_ranks, gpt_ranks):
        print(f"  {a + ' / ' + b:22s} {r0:7d} {r1:10d} {r2:6d} {r3:12d}")
    medians = [int(np.median(r)) for r in (before, after, cbow_ranks, gpt_ranks)]
    print(f"  {'median':22s} {medians[0]:7d} {medians[1]:10d} {medians[2]:6d} {medians[3]:12d}")
    print(f"Median rank: random {medians[0]}, skip-gram {medians[1]}, CBOW {medians[2]}, GPT {medians[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
