"""The NumPy batch merge must give exactly the one-piece loop's tokens."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpt.tokenizer import BPETokenizer
from gpt.tokenizer import bpe as bpe_module
from gpt.tokenizer.batch import PairTable, merge_many
from gpt.tokenizer.bench import default_text
from gpt.tokenizer.bpe import _merge_parts, _merge_short


@pytest.fixture(scope="module")
def tok():
    text = default_text()[:40_000] + " aaaa xxxxxxxx ٣٣٣٣ 😀😀 café" * 30
    t = BPETokenizer.train(text, 800, verbose=False)
    t._batch_table = PairTable(t._vocab, t._ranks)
    return t


fragment = st.sampled_from(["a", "aa", "x", " the", "in", "e", "\n", "😀", "é", "٣", "--", " ", "ing", "Z", "\x00"])
piece = st.lists(fragment, min_size=1, max_size=60).map(lambda parts: "".join(parts).encode("utf-8"))


def finish(tok, done, unfinished):
    for k, ids in unfinished.items():
        assert done[k] is None
        done[k] = _merge_parts([tok.decode_single_token_bytes(i) for i in ids], tok._ranks)
    return done


@given(st.lists(piece, min_size=1, max_size=40), st.sampled_from([1, 3, 16, 128]))
def test_batch_merge_equals_one_piece_merge(tok, pieces, finish_below):
    done, unfinished = merge_many(pieces, tok._batch_table, tok._byte_id_array, finish_below=finish_below)
    assert finish(tok, done, unfinished) == [_merge_short(p, tok._ranks) for p in pieces]


def test_pair_table_holds_every_split_of_every_token(tok):
    table = tok._batch_table
    lefts, rights, expected = [], [], []
    for token_id in range(256, 256 + len(tok.merges)):
        token = tok.decode_single_token_bytes(token_id)
        for k in range(1, len(token)):
            a, b = tok._ranks.get(token[:k]), tok._ranks.get(token[k:])
            if a is not None and b is not None:
                lefts.append(a)
                rights.append(b)
                expected.append(token_id)
    assert table.lookup(np.array(lefts), np.array(rights)).tolist() == expected
    assert len(expected) >= len(tok.merges)  # at least each merge's own split
    # a pair whose bytes are not a token: "no merge"
    assert table.lookup(np.array([ord("\x00")]), np.array([ord("\x01")]))[0] == table.n


@settings(max_examples=20)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60))
def test_encode_through_the_batch_path_is_unchanged(tok, words):
    text = " ".join(words).encode("utf-8", "replace").decode("utf-8")
    old = bpe_module._BATCH_MIN
    try:
        bpe_module._BATCH_MIN = 1
        tok.clear_cache()
        batched = tok.encode_ordinary(text)
        bpe_module._BATCH_MIN = 10**9
        tok.clear_cache()
        one_by_one = tok.encode_ordinary(text)
    finally:
        bpe_module._BATCH_MIN = old
        tok.clear_cache()
    assert batched == one_by_one
    assert tok.decode(batched) == text


def test_a_tokenizer_without_merges_batches_too():
    t = BPETokenizer([], {"<|endoftext|>": 256})
    text = " ".join(f"w{i}" for i in range(400))
    assert t.encode(text) == list(text.encode())
