"""BPE training: the fast trainer against a tiny recount-everything reference, and its invariants."""
import hashlib
import subprocess
import sys
import warnings
from collections import Counter

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from gpt.tokenizer import GPT2_PATTERN, BPETokenizer
from tests.cli_helpers import subprocess_env

# ----------------------------------------------------------------------------- reference trainer


def reference_train(texts, vocab_size, pattern=GPT2_PATTERN, specials=("<|endoftext|>",)):
    """The textbook algorithm, written to be obviously right and nothing else.

    Every round recounts all adjacent pairs of all pieces and merges the most frequent pair; ties go
    to the smallest (left id, right id); a pair whose joined bytes are already a token is skipped.
    """
    cut = "|".join(regex.escape(s) for s in sorted(specials, key=len, reverse=True))
    pieces = Counter()
    for text in texts:
        for chunk in regex.split(cut, text) if specials else [text]:
            pieces.update(p.encode("utf-8") for p in regex.findall(pattern, chunk))
    words = [(list(p), n) for p, n in pieces.items()]
    vocab = [bytes([b]) for b in range(256)]
    merges = []
    while len(merges) < vocab_size - 256 - len(specials):
        counts = Counter()
        for w, n in words:
            for pair in zip(w, w[1:]):
                counts[pair] += n
        candidates = [(-c, a, b) for (a, b), c in counts.items() if vocab[a] + vocab[b] not in vocab]
        if not candidates:
            break
        _, a, b = min(candidates)
        new = len(vocab)
        merges.append((a, b))
        vocab.append(vocab[a] + vocab[b])
        merged_words = []
        for w, n in words:
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged_words.append((out, n))
        words = merged_words
    return merges


# Small alphabets make many repeated pairs (and ties, and overlapping runs such as "aaaa").
corpus_text = st.text(alphabet=st.sampled_from("aab  c'\n\té€😀-.1"), max_size=200)
corpora = st.lists(corpus_text, min_size=1, max_size=4).filter(lambda ts: any(ts))


def train_quietly(texts, vocab_size, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BPETokenizer.train(texts, vocab_size, verbose=False, **kw)


@given(corpora, st.integers(0, 80))
def test_fast_trainer_matches_reference(texts, extra):
    vocab_size = 257 + extra
    tok = train_quietly(texts, vocab_size)
    assert tok.merges == reference_train(texts, vocab_size)


@given(corpora, st.integers(0, 120))
def test_training_invariants(texts, extra):
    vocab_size = 257 + extra
    tok = train_quietly(texts, vocab_size)
    merges = tok.merges
    assert len(merges) <= vocab_size - 256 - 1
    assert tok.n_vocab <= vocab_size
    tokens = [tok.decode_single_token_bytes(i) for i in range(256 + len(merges))]
    assert len(set(tokens)) == len(tokens), "token byte strings must be unique"
    for k, (a, b) in enumerate(merges):
        new = 256 + k
        assert a < new and b < new
        assert tokens[new] == tokens[a] + tokens[b]
    # No token crosses a pre-split boundary: each one lies inside some piece of the corpus.
    pieces = {p.encode() for t in texts for p in regex.findall(GPT2_PATTERN, t)}
    for t in tokens[256:]:
        assert any(t in p for p in pieces), t
    assert tok.special_tokens == {"<|endoftext|>": 256 + len(merges)}


def test_merges_follow_frequency_then_the_documented_tie_break():
    # One piece "abcd": three pairs seen once each; the smallest (left, right) wins, then again.
    tok = BPETokenizer.train("abcd", 256 + 3, special_tokens=(), verbose=False)
    assert tok.merges == [(97, 98), (99, 100), (256, 257)]
    tok = BPETokenizer.train("dcba", 256 + 3, special_tokens=(), verbose=False)
    assert tok.merges == [(98, 97), (99, 256), (100, 257)]
    # Frequency comes first: (c, d) occurs twice and wins over the smaller (a, b).
    tok = BPETokenizer.train("abcdcd", 256 + 1, special_tokens=(), verbose=False)
    assert tok.merges == [(99, 100)]


def test_running_out_of_pairs_stops_early_with_a_warning():
    with pytest.warns(UserWarning, match="stopped after 1 of"):
        tok = BPETokenizer.train("ab", 300, special_tokens=(), verbose=False)
    assert tok.merges == [(97, 98)]
    assert tok.n_vocab == 257


def test_special_tokens_in_the_corpus_are_boundaries_not_text():
    text = "end<|endoftext|>start " * 50
    tok = BPETokenizer.train(text, 262, verbose=False)
    assert tok.merges == reference_train([text], 262)
    for i in range(256, 256 + len(tok.merges)):
        token = tok.decode_single_token_bytes(i)
        assert b"<" not in token and b"|" not in token, token
    assert tok.encode(text, allowed_special="all").count(tok.eot_token) == 50


def test_training_input_errors():
    with pytest.raises(ValueError, match="too small"):
        BPETokenizer.train("some text", 256, verbose=False)
    with pytest.raises(ValueError, match="too small"):
        BPETokenizer.train("some text", 258, special_tokens=("<|a|>", "<|b|>", "<|c|>"), verbose=False)
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train("", 300, verbose=False)
    with pytest.raises(ValueError, match="empty"):
        BPETokenizer.train([], 300, verbose=False)
    with pytest.raises(ValueError, match="distinct"):
        BPETokenizer.train("abc", 300, special_tokens=("<|x|>", "<|x|>"), verbose=False)
    with pytest.raises(ValueError, match="integer"):
        BPETokenizer.train("abc", 300.0, verbose=False)


def test_verbose_training_reports_progress(capsys):
    BPETokenizer.train("the cat sat on the mat " * 20, 260, verbose=True)
    assert "training BPE" in capsys.readouterr().err
    BPETokenizer.train("the cat sat on the mat " * 20, 260, verbose=False)
    assert capsys.readouterr().err == ""


def test_a_trained_tokenizer_reencodes_its_corpus_and_round_trips(reference_data):
    text = (reference_data / "the-verdict.txt").read_text(encoding="utf-8")
    tok = BPETokenizer.train(text, 1000, verbose=False)
    assert len(tok.merges) == 1000 - 257
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode()) / 2.5  # it compresses: about 3 bytes per token


_DETERMINISM_SCRIPT = """
import hashlib, sys
from gpt.tokenizer import BPETokenizer
corpus = ["the quick brown fox jumps over the lazy dog; " * 3, "aaaa bbbb abab baba 'tis ça 😀😀", "x" * 40]
tok = BPETokenizer.train(corpus, 310, verbose=False)
print(hashlib.sha256(repr(tok.merges).encode()).hexdigest())
"""


def test_training_is_deterministic_across_hash_seeds():
    digests = set()
    for seed in ("0", "1", "12345"):
        env = subprocess_env(PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", _DETERMINISM_SCRIPT], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    # ... and the subprocesses agree with this process.
    corpus = ["the quick brown fox jumps over the lazy dog; " * 3, "aaaa bbbb abab baba 'tis ça 😀😀", "x" * 40]
    here = BPETokenizer.train(corpus, 310, verbose=False)
    assert digests == {hashlib.sha256(repr(here.merges).encode()).hexdigest()}
