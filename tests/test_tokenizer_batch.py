"""The NumPy batch merge must give exactly the one-piece loop's tokens."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt.tokenizer import BPETokenizer
from gpt.tokenizer import merge as merge_module
from gpt.tokenizer.batch import merge_many
from gpt.tokenizer.bench import default_text


@pytest.fixture(scope="module")
def tok():
    text = default_text()[:40_000] + " aaaa xxxxxxxx ٣٣٣٣ 😀😀 café" * 30
    return BPETokenizer.train(text, 800, verbose=False)


fragment = st.sampled_from(["a", "aa", "x", " the", "in", "e", "\n", "😀", "é", "٣", "--", " ", "ing", "Z", "\x00"])
piece = st.lists(fragment, min_size=1, max_size=60).map("".join)


def finish(tok, done, unfinished):
    for k, ids in unfinished.items():
        assert done[k] is None
        done[k] = tok._rules._merge_short(ids)
    return done


@given(st.lists(piece, min_size=1, max_size=40), st.sampled_from([1, 3, 16, 128]))
def test_batch_merge_equals_one_piece_merge(tok, pieces, finish_below):
    starts = [tok._start(p) for p in pieces]
    tokens = np.array([i for s in starts for i in s], dtype=np.int64)
    lengths = np.array([len(s) for s in starts], dtype=np.int64)
    done, unfinished = merge_many(tokens, lengths, tok._rules, finish_below=finish_below)
    assert finish(tok, done, unfinished) == [tok.bpe(p.encode("utf-8")) for p in pieces]


def test_pair_table_holds_every_split_of_every_token(tok):
    table = tok._rules
    lefts, rights, expected = [], [], []
    for token_id in range(256, 256 + len(tok.merges)):
        token = tok.decode_single_token_bytes(token_id)
        for k in range(1, len(token)):
            a, b = tok._ranks.get(token[:k]), tok._ranks.get(token[k:])
            if a is not None and b is not None:
                lefts.append(a)
                rights.append(b)
                expected.append(token_id)
    assert table.lookup(np.array(lefts), np.array(rights)).tolist() == expected  # rank = id here
    assert len(expected) >= len(tok.merges)  # at least each merge's own split
    # a pair whose bytes are not a token: "no merge"
    assert table.lookup(np.array([ord("\x00")]), np.array([ord("\x01")]))[0] == table.none


@settings(max_examples=20)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60))
def test_encode_through_the_batch_path_is_unchanged(tok, words):
    text = " ".join(words).encode("utf-8", "replace").decode("utf-8")
    old = merge_module.BATCH_MIN
    try:
        merge_module.BATCH_MIN = 1
        tok.clear_cache()
        batched = tok.encode_ordinary(text)
        merge_module.BATCH_MIN = 10**9
        tok.clear_cache()
        one_by_one = tok.encode_ordinary(text)
    finally:
        merge_module.BATCH_MIN = old
        tok.clear_cache()
    assert batched == one_by_one
    assert tok.decode(batched) == text


def test_a_tokenizer_without_merges_batches_too():
    t = BPETokenizer([], {"<|endoftext|>": 256})
    text = " ".join(f"w{i}" for i in range(400))
    assert t.encode(text) == list(text.encode())
