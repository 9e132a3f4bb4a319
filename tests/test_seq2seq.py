"""The seq2seq models (gpt.seq2seq): the task, the three models' gradients and forwards, and decoding.

Gradients of whole models (float64, tiny sizes) against central differences; the teacher-forced
forward agrees with step-by-step decoding; padding changes nothing; beam search of width 1 is
greedy, and a hand-built model where beam search finds the more probable answer that greedy misses.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import gradcheck
from minigrad.testing import assert_gradients_match

from gpt.seq2seq import task
from gpt.seq2seq.decode import beam_search, greedy_decode, select
from gpt.seq2seq.rnn import BahdanauAttention, BahdanauEncoderDecoder, RNNEncoderDecoder
from gpt.seq2seq.transformer import EncoderDecoderTransformer, sinusoidal_positions

seeds = st.integers(0, 2**16)
TOL = dict(atol=1e-7, rtol=1e-6)
V = 7   # a small vocabulary for the gradient checks: <pad> <bos> <eos> and four tokens

BUILDERS = {
    "rnn-fixed-context": lambda v: RNNEncoderDecoder(v, emb_dim=3, hidden_size=2),
    "rnn-bahdanau": lambda v: BahdanauEncoderDecoder(v, emb_dim=3, hidden_size=2, attn_dim=3),
    "transformer-post-ln": lambda v: EncoderDecoderTransformer(v, d_model=4, num_heads=2, n_layers=1, d_ff=6),
    "transformer-pre-ln": lambda v: EncoderDecoderTransformer(v, d_model=4, num_heads=2, n_layers=1, d_ff=6,
                                                              norm_first=True),
}


def random_batch(rng, b, s, t, vocab=V):
    lengths = rng.integers(1, s + 1, size=b)
    lengths[0] = s
    src = rng.integers(3, vocab, size=(b, s))
    src[np.arange(s) >= lengths[:, None]] = task.PAD
    tgt_in = np.concatenate([np.full((b, 1), task.BOS), rng.integers(3, vocab, size=(b, t - 1))], axis=1)
    return src, lengths, tgt_in


# ---------------------------------------------------------------- the task
def test_read_aloud_writes_what_was_said():
    assert task.read_aloud("four one five double five two six seven one") == "415552671"
    assert task.read_aloud(["triple", "zero", "nine"]) == "0009"
    with pytest.raises(ValueError, match="ends with a repeat word"):
        task.read_aloud("one double")
    with pytest.raises(ValueError, match="unknown word 'eleven'"):
        task.read_aloud("eleven")


@given(n=st.integers(1, 30), seed=seeds)
def test_random_readings_have_the_asked_length_and_encode_consistently(n, seed):
    rng = np.random.default_rng(seed)
    reading = task.random_reading(rng, n)
    assert len(reading) == n and reading[-1] in task.DIGIT_WORDS
    b = task.encode_batch([reading, ["one"]])
    answer = task.read_aloud(reading)
    assert b.src_lengths.tolist() == [n, 1] and b.answers == [answer, "1"]
    assert task.decode_digits(b.tgt_out[0]) == answer and b.tgt_in[0, 0] == task.BOS
    assert (b.tgt_in[0, 1:len(answer) + 1] == b.tgt_out[0, :len(answer)]).all()    # shifted by one
    assert b.tgt_out[0, len(answer)] == task.EOS and (b.tgt_out[1, 2:] == task.IGNORE).all()


def test_test_set_is_reproducible_and_in_its_buckets():
    a = task.make_test_set(3, [(1, 2), (5, 9)], 10)
    assert a == task.make_test_set(3, [(1, 2), (5, 9)], 10) != task.make_test_set(4, [(1, 2), (5, 9)], 10)
    assert all(lo <= len(r) <= hi for (lo, hi), rs in a.items() for r in rs)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("seed", [0])
def test_model_gradients_match_central_differences(name, seed):
    """Every parameter of each whole model, through padding, attention and the decoder's time loop
    (one fixed case each: a whole model has a few hundred parameters to perturb)."""
    mg.manual_seed(seed)
    model = BUILDERS[name](V).double()
    rng = np.random.default_rng(seed)
    src, lengths, tgt_in = random_batch(rng, 2, 3, 3)
    assert gradcheck(lambda *ps: model(src, lengths, tgt_in), *model.parameters(), seed=seed, **TOL)


@given(b=st.integers(1, 3), s=st.integers(1, 4), seed=seeds)
def test_bahdanau_attention_forward_and_gradients(b, s, seed):
    mg.manual_seed(seed)
    att = BahdanauAttention(query_dim=2, key_dim=3, attn_dim=2).double()
    rng = np.random.default_rng(seed)
    query = mg.tensor(rng.standard_normal((b, 2)), requires_grad=True)
    values = mg.tensor(rng.standard_normal((b, s, 3)), requires_grad=True)
    pad = np.arange(s) >= rng.integers(1, s + 1, size=b)[:, None]
    # e_ij = v^T tanh(W s_i + U h_j); alpha = softmax over the unpadded j; c_i = sum_j alpha_ij h_j
    W, U, bu, v = att.W.weight.data, att.U.weight.data, att.U.bias.data, att.v.weight.data[0]
    e = np.tanh((query.data @ W.T)[:, None, :] + values.data @ U.T + bu) @ v
    e = np.where(pad, -np.inf, e)
    alpha = np.exp(e - e.max(axis=1, keepdims=True))
    alpha /= alpha.sum(axis=1, keepdims=True)
    context, got = att(query, att.keys(values), values, pad)
    np.testing.assert_allclose(got.data, alpha, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(context.data, np.einsum("bs,bsk->bk", alpha, values.data), rtol=1e-12, atol=1e-14)
    assert_gradients_match(lambda q, h, *ps: att(q, att.keys(h), h, pad)[0], query, values, *att.parameters(),
                           seed=seed, **TOL)


# ---------------------------------------------------------------- forwards
def test_sinusoidal_positions_are_the_papers():
    pe = sinusoidal_positions(50, 6)
    pos, i = 37, 2
    assert pe.dtype == np.float32 and pe.shape == (50, 6)
    assert pe[pos, 2 * i] == pytest.approx(math.sin(pos / 10000 ** (2 * i / 6)), abs=1e-6)
    assert pe[pos, 2 * i + 1] == pytest.approx(math.cos(pos / 10000 ** (2 * i / 6)), abs=1e-6)


@pytest.mark.parametrize("name", BUILDERS)
def test_padding_and_later_targets_change_nothing(name):
    mg.manual_seed(0)
    model = BUILDERS[name](V).double()
    rng = np.random.default_rng(0)
    src, lengths, tgt_in = random_batch(rng, 3, 4, 5)
    logits = model(src, lengths, tgt_in).data
    longer = np.concatenate([src, np.full((3, 2), 5)], axis=1)            # more padding, of a real token
    longer[np.arange(6) >= lengths[:, None]] = 4                          # and the old padding changed
    np.testing.assert_allclose(model(longer, lengths, tgt_in).data, logits, rtol=1e-10, atol=1e-12)
    changed = tgt_in.copy()
    changed[:, 3:] = 6                                                    # later decoder inputs
    np.testing.assert_allclose(model(src, lengths, changed).data[:, :3], logits[:, :3], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", BUILDERS)
def test_step_by_step_decoding_gives_the_teacher_forced_log_probs(name):
    mg.manual_seed(1)
    model = BUILDERS[name](V).double()
    model.eval()
    src, lengths, tgt_in = random_batch(np.random.default_rng(1), 3, 4, 4)
    expected = mg.log_softmax(model(src, lengths, tgt_in), -1).data
    state = model.start(src, lengths)
    for t in range(tgt_in.shape[1]):
        log_probs, state = model.step(state, tgt_in[:, t])
        np.testing.assert_allclose(log_probs, expected[:, t], rtol=1e-10, atol=1e-12)
    assert model.start(src.astype(np.int64), lengths) is not None


def test_bahdanau_returns_its_alignment():
    mg.manual_seed(0)
    model = BUILDERS["rnn-bahdanau"](V)
    src, lengths, tgt_in = random_batch(np.random.default_rng(0), 3, 5, 4)
    logits, alpha = model(src, lengths, tgt_in, return_alignment=True)
    assert logits.shape == (3, 4, V) and alpha.shape == (3, 4, 5) and logits.dtype == np.float32
    np.testing.assert_allclose(alpha.sum(axis=-1), 1.0, rtol=1e-5)
    assert (alpha[np.arange(5) >= lengths[:, None][:, None, :].repeat(4, axis=1)] == 0).all()
    assert BUILDERS["rnn-fixed-context"](V)(src, lengths, tgt_in, return_alignment=True)[1] is None


# ---------------------------------------------------------------- decoding
@pytest.mark.parametrize("name", BUILDERS)
def test_beam_width_one_is_greedy_and_scores_are_the_answers_log_probabilities(name):
    mg.manual_seed(2)
    model = BUILDERS[name](task.VOCAB_SIZE)
    model.eval()
    b = task.sample_batch(np.random.default_rng(2), 6, 1, 6)
    greedy = greedy_decode(model, b.src, b.src_lengths, 8, task.BOS, task.EOS)
    assert beam_search(model, b.src, b.src_lengths, 8, task.BOS, task.EOS, beam_width=1) == greedy
    found, scores = beam_search(model, b.src, b.src_lengths, 8, task.BOS, task.EOS, beam_width=3, return_scores=True)
    for i, ids in enumerate(found):                     # the score is the answer's teacher-forced log-probability
        tgt_in = np.array([[task.BOS, *ids[:-1]]])
        log_probs = mg.log_softmax(model(b.src[i:i + 1], b.src_lengths[i:i + 1], tgt_in), -1).data[0]
        assert scores[i] == pytest.approx(log_probs[np.arange(len(ids)), ids].sum(), abs=1e-4)


class TableModel:
    """A hand-built 'model': next-token probabilities depend only on the previous token.
    Tokens: 0 <pad>, 1 <bos>, 2 <eos>, 3 'a', 4 'b'. After <bos>: a 0.6, b 0.4. After 'a': every
    continuation is unlikely (eos 0.35, a 0.35, b 0.3). After 'b': eos 1.0.
    Greedy writes 'a' then eos (p = 0.6 * 0.35 = 0.21); the best answer is 'b' eos (p = 0.4)."""

    P = {1: {3: 0.6, 4: 0.4}, 3: {2: 0.35, 3: 0.35, 4: 0.3}, 4: {2: 1.0}, 2: {2: 1.0}}

    def start(self, src, lengths):
        return {"rows": np.arange(len(lengths))}

    def step(self, state, prev):
        log_probs = np.full((len(prev), 5), -np.inf)
        for i, p in enumerate(prev):
            for tok, prob in self.P[int(p)].items():
                log_probs[i, tok] = math.log(prob)
        return log_probs, state


def test_beam_search_finds_the_more_probable_answer_that_greedy_misses():
    src, lengths = np.zeros((2, 1), dtype=np.int64), np.array([1, 1])
    assert greedy_decode(TableModel(), src, lengths, 5, bos=1, eos=2) == [[3, 2], [3, 2]]
    answers, scores = beam_search(TableModel(), src, lengths, 5, bos=1, eos=2, beam_width=2, return_scores=True)
    assert answers == [[4, 2], [4, 2]]
    np.testing.assert_allclose(scores, math.log(0.4))
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(TableModel(), src, lengths, 5, bos=1, eos=2, beam_width=0)


class CutOffModel(TableModel):
    """After <bos>: a 0.9, b 0.1. After 'a': a 0.6, eos 0.4. With max_len 2 the open prefix 'a a'
    (0.54, unfinished) outscores the finished 'a' eos (0.36), which must still be the answer."""

    P = {1: {3: 0.9, 4: 0.1}, 3: {3: 0.6, 2: 0.4}, 4: {2: 1.0}, 2: {2: 1.0}}


def test_beam_search_prefers_a_finished_answer_to_a_prefix_cut_off_by_max_len():
    src, lengths = np.zeros((1, 1), dtype=np.int64), np.array([1])
    answers, scores = beam_search(CutOffModel(), src, lengths, 2, bos=1, eos=2, beam_width=2, return_scores=True)
    assert answers == [[3, 2]]
    np.testing.assert_allclose(scores, math.log(0.9 * 0.4))
    # with no finished sequence at all, the best open prefix is still returned
    assert beam_search(CutOffModel(), src, lengths, 1, bos=1, eos=2, beam_width=2) == [[3]]


def test_select_repeats_and_reorders_every_array_of_a_state():
    state = {"h": np.arange(6).reshape(3, 2), "pad": np.array([True, False, True])}
    picked = select(state, np.array([2, 2, 0]))
    assert picked["h"].tolist() == [[4, 5], [4, 5], [0, 1]] and picked["pad"].tolist() == [True, True, True]
