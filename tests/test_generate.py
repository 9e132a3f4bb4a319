"""Chapters 4-5: turning logits into text.

The book's greedy loop against a scripted model whose next token is a known function of the window
it sees (so cropping is observable); batched ``generate`` against each prompt alone; the KV cache
against no cache, also past the context length, for the three position kinds; temperature, top-k and
top-p semantics as properties of ``sample_next``; end-of-text stopping; reproducibility; no graph.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import minigrad as mg
from gpt.generate import (
    _top_p_filter,
    generate,
    generate_text_simple,
    sample_next,
    text_to_token_ids,
    token_ids_to_text,
)
from gpt.model import GPTConfig, GPTModel
from minigrad import nn

KINDS = ("learned", "rope", "alibi", "t5", "none")
VOCAB, CTX = 11, 6


def tiny_model(kind="learned", seed=0, **overrides):
    mg.manual_seed(seed)
    cfg = dict(vocab_size=VOCAB, context_length=CTX, emb_dim=8, n_heads=2, n_layers=2, drop_rate=0.0,
               pos_emb=kind)
    model = GPTModel(GPTConfig(**{**cfg, **overrides}))
    model.eval()
    return model


class ScriptedModel(nn.Module):
    """A stand-in model: the logits at position t are one-hot at ``rule(ids[:, :t + 1])`` (one id
    per row). It records every input it is given."""

    def __init__(self, rule, vocab=VOCAB):
        super().__init__()
        self.rule, self.vocab, self.seen = rule, vocab, []

    def forward(self, ids, last_only=False):
        ids = np.asarray(ids)
        self.seen.append(ids.copy())
        b, t = ids.shape
        logits = np.zeros((b, t, self.vocab), dtype=np.float32)
        for i in range(t):
            logits[np.arange(b), i, self.rule(ids[:, :i + 1])] = 5.0
        return mg.Tensor(logits[:, -1:] if last_only else logits)


class Spy(nn.Module):
    """Wraps a GPTModel and records each forward's output and the model's mode at the time."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.cfg, self.outputs, self.modes = model, model.cfg, [], []

    def new_kv_cache(self, batch_size):
        return self.inner.new_kv_cache(batch_size)

    def forward(self, *args, **kwargs):
        self.modes.append(self.inner.training)
        out = self.inner(*args, **kwargs)
        self.outputs.append(out)
        return out


def window_sum(window):
    return window.sum(axis=1) % VOCAB


# ---------------------------------------------------------------------- generate_text_simple
@given(prompt=st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=8), new=st.integers(0, 8),
       context_size=st.integers(1, 5))
def test_generate_text_simple_is_greedy_and_crops(prompt, new, context_size):
    model = ScriptedModel(window_sum)
    out = generate_text_simple(model, np.array([prompt]), max_new_tokens=new, context_size=context_size)
    expected = list(prompt)
    for _ in range(new):
        expected.append(sum(expected[-context_size:]) % VOCAB)
    assert out.tolist() == [expected]
    assert len(model.seen) == new and all(s.shape[1] <= context_size for s in model.seen)


def test_generate_text_simple_on_a_gpt_like_the_book():
    """Section 4.7: 4 prompt tokens + 6 new ones; each new token is the argmax of the last logits."""
    model = tiny_model()
    idx = np.array([[1, 2, 3, 4]])
    out = generate_text_simple(model, idx, max_new_tokens=6, context_size=CTX)
    assert out.shape == (1, 10) and out.dtype.kind == "i"
    np.testing.assert_array_equal(out[:, :4], idx)
    for t in range(4, 10):
        window = out[:, max(0, t - CTX):t]
        assert out[0, t] == np.argmax(model(window).data[0, -1])


def test_generate_text_simple_accepts_a_tensor_and_rejects_bad_ids():
    model = tiny_model()
    a = generate_text_simple(model, mg.tensor(np.array([[1, 2]])), 2, CTX)
    np.testing.assert_array_equal(a, generate_text_simple(model, np.array([[1, 2]]), 2, CTX))
    with pytest.raises(ValueError, match=r"\(batch, tokens\)"):
        generate_text_simple(model, np.array([1, 2]), 2, CTX)
    with pytest.raises(TypeError, match="integers"):
        generate_text_simple(model, np.array([[1.0, 2.0]]), 2, CTX)


# ---------------------------------------------------------------------- generate: batching and the cache
@settings(max_examples=10)
@given(kind=st.sampled_from(KINDS), prompt_len=st.integers(1, 8), new=st.integers(1, 9),
       context_size=st.sampled_from([None, 3, CTX]), seed=st.integers(0, 2**16))
def test_kv_cache_gives_the_same_greedy_ids(kind, prompt_len, new, context_size, seed):
    """Also past the context length, where the window slides and every position shifts."""
    model = tiny_model(kind, seed)
    idx = np.random.default_rng(seed).integers(0, VOCAB, (2, prompt_len))
    cached = generate(model, idx, new, context_size=context_size, use_cache=True)
    plain = generate(model, idx, new, context_size=context_size, use_cache=False)
    np.testing.assert_array_equal(cached, plain)
    simple = generate_text_simple(model, idx, new, context_size or CTX)
    np.testing.assert_array_equal(plain, simple)


@settings(max_examples=6)
@given(kind=st.sampled_from(KINDS), prompt_len=st.integers(1, 8), new=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_kv_cache_gives_the_same_samples(kind, prompt_len, new, seed):
    model = tiny_model(kind, seed)
    idx = np.random.default_rng(seed).integers(0, VOCAB, (2, prompt_len))
    opts = dict(temperature=1.0, top_k=6, top_p=0.95)
    np.testing.assert_array_equal(generate(model, idx, new, rng=seed, use_cache=True, **opts),
                                  generate(model, idx, new, rng=seed, use_cache=False, **opts))


@pytest.mark.parametrize("kind", KINDS)
def test_kv_cache_past_the_context_length(kind):
    model = tiny_model(kind, seed=3)
    idx = np.array([[1, 2, 3], [4, 5, 6]])
    cached = generate(model, idx, 3 * CTX, use_cache=True)
    assert cached.shape == (2, 3 + 3 * CTX)
    np.testing.assert_array_equal(cached, generate(model, idx, 3 * CTX, use_cache=False))
    np.testing.assert_array_equal(cached, generate_text_simple(model, idx, 3 * CTX, CTX))


@settings(max_examples=10)
@given(kind=st.sampled_from(KINDS), prompt_len=st.integers(1, 4), new=st.integers(1, 8),
       temperature=st.sampled_from([0.0, 0.7, 1.5]), top_k=st.sampled_from([None, 1, 3]),
       top_p=st.sampled_from([None, 0.5, 0.9]), eos=st.sampled_from([None, 0, 3]), seed=st.integers(0, 2**16))
def test_batched_generate_equals_each_prompt_alone(kind, prompt_len, new, temperature, top_k, top_p, eos, seed):
    """One Generator per row: a row samples exactly what it samples alone. A row that ends at eos while
    others go on is padded with eos; alone, it stops (the eos itself is not appended)."""
    model = tiny_model(kind, seed)
    idx = np.random.default_rng(seed).integers(0, VOCAB, (3, prompt_len))
    opts = dict(temperature=temperature, top_k=top_k, top_p=top_p, eos_id=eos)
    batched = generate(model, idx, new, rng=[np.random.default_rng(seed + r) for r in range(3)], **opts)
    for r in range(3):
        alone = generate(model, idx[r:r + 1], new, rng=np.random.default_rng(seed + r), **opts)[0]
        assert len(alone) <= batched.shape[1]
        np.testing.assert_array_equal(batched[r, :len(alone)], alone)
        np.testing.assert_array_equal(batched[r, len(alone):], eos)  # empty unless this row stopped early


@given(stops=st.lists(st.integers(2, 7), min_size=1, max_size=4), new=st.integers(1, 8))
def test_each_row_stops_at_its_own_eos(stops, new):
    """Row r emits token 1 until its sequence is stops[r] long, then eos (9)."""
    eos = 9

    def rule(window):
        return np.where(window.shape[1] >= window[:, 0], eos, 1)

    idx = np.array([[s, 0] for s in stops])
    out = generate(ScriptedModel(rule), idx, new, context_size=16, eos_id=eos)
    runs = [min(max(s - 2, 0), new) for s in stops]       # tokens generated before eos, per row
    all_stop = all(max(s - 2, 0) < new for s in stops)     # every row meets eos within the budget
    width = 2 + (max(runs) if all_stop else new)
    assert out.shape == (len(stops), width)
    for r, s in enumerate(stops):
        row = out[r, 2:].tolist()
        assert row[:runs[r]] == [1] * runs[r]
        assert row[runs[r]:] == [eos] * (width - 2 - runs[r])


def test_generate_stops_when_every_row_is_done():
    out = generate(ScriptedModel(lambda w: np.full(len(w), 9)), np.array([[1], [2]]), 10, context_size=4, eos_id=9)
    np.testing.assert_array_equal(out, [[1], [2]])   # as in the book: the eos is not appended


def test_generate_is_reproducible_from_a_seed():
    model = tiny_model(seed=5)
    idx = np.array([[1, 2], [3, 4]])
    a = generate(model, idx, 8, temperature=1.5, rng=42)
    np.testing.assert_array_equal(a, generate(model, idx, 8, temperature=1.5, rng=42))
    np.testing.assert_array_equal(a, generate(model, idx, 8, temperature=1.5, rng=np.random.default_rng(42)))
    others = [generate(model, idx, 8, temperature=1.5, rng=s) for s in range(5)]
    assert any(not np.array_equal(a, o) for o in others)


@pytest.mark.parametrize("use_cache", [True, False])
def test_generation_builds_no_graph_and_restores_the_mode(use_cache):
    spy = Spy(tiny_model())
    spy.train()
    streamed = []
    out = generate(spy, np.array([[1, 2, 3]]), 5, temperature=1.0, rng=0, use_cache=use_cache,
                   on_token=streamed.append)
    assert isinstance(out, np.ndarray) and out.shape == (1, 8)
    assert len(spy.outputs) == 5
    assert all(o.grad_fn is None and not o.requires_grad for o in spy.outputs)
    assert all(o.shape == (1, 1, VOCAB) for o in spy.outputs)   # only the last position reaches the head
    assert spy.modes == [False] * 5 and spy.inner.training       # eval while generating, then restored
    assert mg.is_grad_enabled()
    np.testing.assert_array_equal(np.concatenate(streamed), out[0, 3:])
    spy.outputs.clear()
    generate_text_simple(spy, np.array([[1]]), 2, CTX)
    assert all(o.grad_fn is None for o in spy.outputs)
    assert all(p.grad is None for p in spy.parameters())


def test_generate_argument_errors():
    model = tiny_model()
    idx = np.array([[1, 2]])
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        generate(model, idx, 1, top_k=0)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        generate(model, idx, 1, top_p=0.0)
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        generate(model, idx, 1, temperature=-1)
    with pytest.raises(ValueError, match="got 2 generators for a batch of 1"):
        generate(model, idx, 1, temperature=1.0, rng=[np.random.default_rng(), np.random.default_rng()])
    with pytest.raises(ValueError, match=r"\(batch, tokens\)"):
        generate(model, np.array([1, 2]), 1)


# ---------------------------------------------------------------------- sample_next
class FixedDraw:
    """A generator stand-in whose ``random()`` returns a chosen number."""

    def __init__(self, u):
        self.u = u

    def random(self):
        return self.u


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


logit_rows = st.lists(st.floats(-8, 8, allow_nan=False, allow_subnormal=False), min_size=1, max_size=9)


@given(rows=st.integers(1, 3), vocab=st.integers(1, 9), data=st.data(), temperature=st.floats(0.05, 3.0),
       u=st.floats(0, 1, exclude_max=True))
def test_top_k_1_is_greedy(rows, vocab, data, temperature, u):
    values = data.draw(st.lists(st.floats(-8, 8, width=32), min_size=rows * vocab, max_size=rows * vocab))
    logits = np.array(values, dtype=np.float32).reshape(rows, vocab)
    assume(all(len(np.unique(r)) == vocab for r in logits))   # no tie for the maximum
    picked = sample_next(logits, temperature, top_k=1, rngs=[FixedDraw(u)] * rows)
    np.testing.assert_array_equal(picked, np.argmax(logits, axis=-1))
    np.testing.assert_array_equal(sample_next(logits, 0.0), np.argmax(logits, axis=-1))


@given(row=logit_rows, top_p=st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_nucleus(row, top_p):
    probs = softmax(np.array([row], dtype=np.float64))
    kept_probs = _top_p_filter(probs, top_p)
    kept = kept_probs[0] > 0
    p = probs[0]
    assert kept.any()
    assert p[kept].min() >= p[~kept].max(initial=0)          # the most likely tokens
    mass = p[kept].sum()
    assert mass >= top_p - 1e-9                                # enough of them ...
    assert mass - p[kept].min() < top_p + 1e-9                 # ... and no more than needed
    np.testing.assert_allclose(kept_probs[0][kept], p[kept] / mass, rtol=1e-9)   # renormalised


@given(row=logit_rows, temperature=st.floats(0.05, 3.0), top_k=st.one_of(st.none(), st.integers(1, 9)),
       top_p=st.one_of(st.none(), st.floats(0.01, 1.0)), u=st.floats(0, 1, exclude_max=True))
def test_sampling_only_picks_allowed_tokens(row, temperature, top_k, top_p, u):
    logits = np.array([row], dtype=np.float32)
    picked = int(sample_next(logits, temperature, top_k=top_k, top_p=top_p, rngs=[FixedDraw(u)])[0])
    z = logits[0].astype(np.float64)
    allowed = np.ones(len(row), dtype=bool)
    if top_k is not None:
        allowed &= z >= np.sort(z)[::-1][min(top_k, len(row)) - 1]
    if top_p is not None:
        p = softmax(np.where(allowed, z / temperature, -np.inf))
        order = np.sort(p)[::-1]
        i = np.searchsorted(np.cumsum(order), top_p + 1e-12)   # at or past the last token the nucleus needs
        smallest_needed = order[min(i, len(order) - 1)] if top_p < 1 else 0
        allowed &= p >= smallest_needed - 1e-12
    assert allowed[picked], (picked, allowed)


def test_temperature_and_top_k_set_the_sampling_distribution():
    logits = np.array([2.0, 1.0, 0.5, 0.0, -1.0], dtype=np.float32)
    n = 20_000
    rng = np.random.default_rng(0)
    for temperature, top_k in [(1.0, None), (0.5, None), (2.0, None), (1.0, 3)]:
        z = logits / temperature
        if top_k is not None:
            z = np.where(logits >= np.sort(logits)[-top_k], z, -np.inf)
        expected = softmax(z.astype(np.float64))
        picks = sample_next(np.tile(logits, (n, 1)), temperature, top_k=top_k, rngs=[rng] * n)
        freq = np.bincount(picks, minlength=5) / n
        np.testing.assert_allclose(freq, expected, atol=0.015)   # > 4 standard deviations
        if top_k is not None:
            assert freq[top_k:].sum() == 0


def test_sample_next_without_generators():
    picks = sample_next(np.zeros((4, 3), dtype=np.float32), temperature=1.0)
    assert picks.shape == (4,) and set(picks.tolist()) <= {0, 1, 2}


# ---------------------------------------------------------------------- text helpers
def test_text_helpers_with_the_books_simple_tokenizer():
    from gpt.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer.from_text("Every effort moves you forward, step by step.")
    ids = text_to_token_ids("Every effort moves you", tok)
    assert ids.shape == (1, 4) and ids.dtype == np.int64
    assert token_ids_to_text(ids, tok) == "Every effort moves you"
    ids = text_to_token_ids("you moves <|endoftext|> Every", tok)
    assert ids[0, 2] == tok.str_to_int["<|endoftext|>"]


@pytest.mark.filterwarnings("ignore:training stopped")
def test_text_helpers_with_a_bpe_tokenizer():
    from gpt.tokenizer import BPETokenizer

    tok = BPETokenizer.train("Every effort moves you forward. " * 10, 300, verbose=False)
    text = "Every effort moves you<|endoftext|>forward"
    ids = text_to_token_ids(text, tok)
    assert ids.ndim == 2 and ids.shape[0] == 1
    assert tok.special_tokens["<|endoftext|>"] in ids[0]
    assert token_ids_to_text(ids, tok) == text
    assert token_ids_to_text(mg.tensor(ids), tok) == text
    assert token_ids_to_text(ids[0], tok) == text


def test_text_helpers_match_the_book_with_gpt2_vocabulary(reference_data):
    """Section 5.1: "Every effort moves you" is tensor([[6109, 3626, 6100, 345]])."""
    from gpt.tokenizer import BPETokenizer

    tok = BPETokenizer.from_gpt2_files(reference_data / "gpt2" / "encoder.json", reference_data / "gpt2" / "vocab.bpe")
    ids = text_to_token_ids("Every effort moves you", tok)
    assert ids.tolist() == [[6109, 3626, 6100, 345]]
    assert token_ids_to_text(ids, tok) == "Every effort moves you"
    assert text_to_token_ids("<|endoftext|>", tok).tolist() == [[50256]]
