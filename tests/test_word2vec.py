"""Word2Vec (gpt/word2vec.py): the negative-sampling loss against a NumPy formula and central
differences, the pairs and probabilities word2vec.c defines, and training that puts words of the
same topic closer together than words of different topics on a small generated corpus."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import gradcheck
from minigrad.testing import arrays, assert_gradients_match
from gpt import word2vec as w2v

seeds = st.integers(0, 2**16)


def log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


def sgns_reference(v, u):
    """The loss written out with math: mean over b of -log s(u_b0 . v_b) - sum_k log s(-u_bk . v_b)."""
    total = 0.0
    for vb, ub in zip(v, u):
        total -= log_sigmoid(float(ub[0] @ vb)) + sum(log_sigmoid(-float(uk @ vb)) for uk in ub[1:])
    return total / len(v)


@st.composite
def sgns_inputs(draw, dtype=np.float64):
    b, k, d = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    v = draw(arrays((b, d), dtype=dtype, min_value=-2, max_value=2))
    u = draw(arrays((b, 1 + k, d), dtype=dtype, min_value=-2, max_value=2))
    return v, u


@given(inputs=sgns_inputs(), seed=seeds)
def test_negative_sampling_loss_gradient(inputs, seed):
    v, u = inputs
    assert_gradients_match(w2v.negative_sampling_loss, mg.tensor(v, requires_grad=True),
                           mg.tensor(u, requires_grad=True), seed=seed, atol=1e-8, rtol=1e-6)


@given(inputs=sgns_inputs())
def test_negative_sampling_loss_is_the_formula(inputs):
    v, u = inputs
    assert w2v.negative_sampling_loss(mg.tensor(v), mg.tensor(u)).item() == pytest.approx(sgns_reference(v, u), rel=1e-12)


def test_negative_sampling_loss_float32_and_extreme_scores():
    v = np.full((2, 3), 40.0, dtype=np.float32)
    u = np.stack([np.full((3, 3), 40.0), -np.full((3, 3), 40.0)]).astype(np.float32)   # s = +-4800
    tv, tu = mg.tensor(v, requires_grad=True), mg.tensor(u, requires_grad=True)
    loss = w2v.negative_sampling_loss(tv, tu)
    loss.backward()
    assert loss.dtype == np.float32 and tv.grad.dtype == np.float32 and np.isfinite(tv.grad).all()
    # sample 0: the true pair scores +4800 (no loss), the negatives +4800 (loss 4800 each);
    # sample 1: the true pair -4800 (loss 4800), the negatives -4800 (no loss)
    assert loss.item() == pytest.approx((2 * 4800 + 4800) / 2, rel=1e-6)


@settings(max_examples=10)
@given(seed=seeds, mode=st.sampled_from(["skipgram", "cbow"]))
def test_model_losses_gradients_reach_both_tables(seed, mode):
    mg.manual_seed(seed)
    model = w2v.Word2Vec(6, 3).double()
    rng = np.random.default_rng(seed)
    model.out_emb.weight.data[...] = rng.normal(0, 0.5, (6, 3))      # not 0, so the input gradient is not 0
    negatives = rng.integers(0, 6, (4, 2))
    centers = rng.integers(0, 6, 4)
    if mode == "skipgram":
        fn = lambda *ps: model.skipgram_loss(centers, rng_ids, negatives)  # noqa: E731
        rng_ids = rng.integers(0, 6, 4)
    else:
        contexts = np.where(rng.random((4, 4)) < 0.3, -1, rng.integers(0, 6, (4, 4)))
        contexts[:, 0] = rng.integers(0, 6, 4)                           # at least one context each
        fn = lambda *ps: model.cbow_loss(contexts, centers, negatives)  # noqa: E731
    assert gradcheck(fn, *model.parameters(), seed=seed, atol=1e-8, rtol=1e-6)


# ---------------------------------------------------------------------- pairs and probabilities
def test_skipgram_pairs_of_a_full_window():
    class Widest:   # a generator whose "random" window is always the widest
        def integers(self, low, high, n):
            return np.full(n, high - 1)

    ids = np.array([10, 11, 12, 13])
    centers, contexts = w2v.skipgram_pairs(ids, 2, Widest())
    got = sorted(zip(centers.tolist(), contexts.tolist()))
    want = sorted((ids[i], ids[j]) for i in range(4) for j in range(4) if 0 < abs(i - j) <= 2)
    assert got == want


@given(seed=seeds, n=st.integers(1, 40), window=st.integers(1, 5))
def test_skipgram_pairs_stay_inside_the_window(seed, n, window):
    ids = np.arange(n) * 7        # id = 7 * position: the distance of a pair can be read back
    centers, contexts = w2v.skipgram_pairs(ids, window, np.random.default_rng(seed))
    distance = np.abs(centers - contexts) // 7
    assert ((distance >= 1) & (distance <= window)).all()
    assert len(set(zip(centers.tolist(), contexts.tolist()))) == len(centers)     # no pair twice
    if n > 1:   # every position has at least its neighbours at distance 1
        assert {(a, b) for a, b in zip(centers.tolist(), contexts.tolist()) if abs(a - b) == 7} == \
            {(7 * i, 7 * j) for i in range(n) for j in range(n) if abs(i - j) == 1}


@given(seed=seeds, n=st.integers(2, 30), window=st.integers(1, 4))
def test_cbow_contexts_are_the_skipgram_contexts(seed, n, window):
    ids = np.arange(n) * 7
    contexts, centers = w2v.cbow_examples(ids, window, np.random.default_rng(seed))
    pairs = {(c, x) for c, row in zip(centers.tolist(), contexts.tolist()) for x in row if x >= 0}
    sg_centers, sg_contexts = w2v.skipgram_pairs(ids, window, np.random.default_rng(seed))
    assert pairs == set(zip(sg_centers.tolist(), sg_contexts.tolist()))        # same windows from the same seed


def test_keep_probabilities_and_noise_follow_word2vec():
    counts = np.array([1000, 100, 10, 1])
    f = counts / counts.sum()
    np.testing.assert_allclose(w2v.keep_probabilities(counts, 1e-2), np.minimum((np.sqrt(f / 1e-2) + 1) * 1e-2 / f, 1))
    assert w2v.keep_probabilities(counts, 1e-2)[0] < 0.2 and w2v.keep_probabilities(counts, 1e-2)[-1] == 1.0
    np.testing.assert_array_equal(w2v.keep_probabilities(counts, 0), 1.0)
    noise = w2v.noise_distribution(counts)
    np.testing.assert_allclose(noise, counts ** 0.75 / (counts ** 0.75).sum())
    assert noise[-1] > counts[-1] / counts.sum()         # rare words are drawn more often than their frequency


def test_vocabulary():
    vocab = w2v.Vocabulary.build(["b", "a", "b", "c", "a", "b", "d"], min_count=2)
    assert vocab.words == ["b", "a"] and vocab.counts.tolist() == [3, 2]
    assert vocab.encode(["a", "x", "b"]).tolist() == [1, 0]
    with pytest.raises(KeyError, match="'zebra' is not in the vocabulary"):
        vocab.id("zebra")
    with pytest.raises(ValueError, match="no word occurs 9 times"):
        w2v.Vocabulary.build(["a"], min_count=9)
    assert w2v.words("The __init__ of dict_keys, 3 lists.") == ["the", "init", "of", "dict_keys", "lists"]


def test_nearest_analogy_and_rank_on_hand_made_vectors():
    vocab = w2v.Vocabulary(["man", "woman", "king", "queen", "apple"], np.ones(5, dtype=np.int64))
    vectors = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [-1, 0, 0.1]], dtype=np.float64)
    assert w2v.analogy(vectors, vocab, "man", "woman", "king", k=1)[0][0] == "queen"
    assert [w for w, _ in w2v.nearest(vectors, vocab, "man", 4)][-1] == "apple"
    assert w2v.rank_of(vectors, vocab, "man", "apple") == 4
    assert w2v.rank_of(vectors, vocab, "queen", w2v.nearest(vectors, vocab, "queen", 1)[0][0]) == 1


# ---------------------------------------------------------------------- training
TOPICS = {
    "animals": (["cat", "dog", "horse", "mouse"], ["fur", "tail", "paws", "barks", "eats", "sleeps"]),
    "vehicles": (["car", "bus", "truck", "train"], ["wheels", "engine", "road", "fuel", "drives", "brakes"]),
    "fruit": (["apple", "pear", "plum", "cherry"], ["sweet", "juice", "tree", "ripe", "seeds", "peel"]),
}
FILLER = ["the", "a", "has", "with", "and", "is", "very"]


def topic_corpus(seed: int, sentences: int = 1500) -> list[str]:
    """Sentences of one topic each: a topic noun, some of its context words and filler words."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    out = []
    for _ in range(sentences):
        nouns, context = TOPICS[names[rng.integers(len(names))]]
        sentence = [nouns[rng.integers(4)]] + list(rng.choice(context, 3)) + list(rng.choice(FILLER, 3))
        out += list(rng.permutation(sentence))
    return out


@pytest.mark.parametrize("mode", ["skipgram", "cbow"])
def test_training_puts_words_of_one_topic_together(mode):
    tokens = topic_corpus(0)
    vocab = w2v.Vocabulary.build(tokens, min_count=1)
    ids = vocab.encode(tokens)
    model, report = w2v.train_word2vec(ids, vocab, mode=mode, dim=16, window=3, negatives=4, epochs=4,
                                       batch_size=256, sample=1e-2, seed=1,
                                       lr=0.025 if mode == "skipgram" else 0.05)
    assert report.losses[-1] < report.losses[0]
    vectors = model.vectors()
    nouns = {w: topic for topic, (ns, _) in TOPICS.items() for w in ns}
    for word, topic in nouns.items():
        same = [w2v.rank_of(vectors, vocab, word, other) for other, t in nouns.items() if t == topic and other != word]
        different = [w2v.rank_of(vectors, vocab, word, other) for other, t in nouns.items() if t != topic]
        assert max(same) < min(different), (word, same, different)     # every same-topic noun ranks higher


def test_training_rejects_bad_settings():
    vocab = w2v.Vocabulary(["a", "b"], np.array([3, 3]))
    with pytest.raises(ValueError, match="mode must be 'skipgram' or 'cbow'"):
        w2v.train_word2vec(np.array([0, 1, 0]), vocab, mode="glove")
    with pytest.raises(ValueError, match="window must be at least 1"):
        w2v.train_word2vec(np.array([0, 1, 0]), vocab, window=0)
    with pytest.raises(ValueError, match="too short"):
        w2v.train_word2vec(np.array([0]), vocab, sample=0)
