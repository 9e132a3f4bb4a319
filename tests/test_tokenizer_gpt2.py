"""GPT-2 parity: OpenAI's vocabulary files must give exactly tiktoken's "gpt2" ids.

Needs the reference files (GPT_REFERENCE_DATA); the comparison with tiktoken itself also needs
tiktoken installed (it is built offline from the same files) and skips otherwise.
"""
import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt.tokenizer import GPT2_PATTERN, BPETokenizer
from gpt.tokenizer.bench import default_text
from gpt.tokenizer.gpt2 import bytes_to_unicode, gpt2_str_to_token, token_to_gpt2_str


@pytest.fixture(scope="module")
def gpt2_dir(reference_data):
    return reference_data / "gpt2"


@pytest.fixture(scope="module")
def gpt2(gpt2_dir):
    return BPETokenizer.from_gpt2_files(gpt2_dir / "encoder.json", gpt2_dir / "vocab.bpe")


@pytest.fixture(scope="module")
def tiktoken_gpt2(gpt2_dir):
    pytest.importorskip("tiktoken")
    import tiktoken.load

    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(str(gpt2_dir / "vocab.bpe"), str(gpt2_dir / "encoder.json"))
    pat = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""  # tiktoken's spelling
    return tiktoken.Encoding("gpt2-local", pat_str=pat, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})


REFERENCE_VECTORS = [
    (
        "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.",
        [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114, 286, 617, 34680, 27271, 13],
    ),
    ("Akwirw ier", [33901, 86, 343, 86, 220, 959]),
    ("hello   world", [31373, 220, 220, 995]),
    ("a\n\n\nb", [64, 628, 198, 65]),
]


@pytest.mark.parametrize("text,ids", REFERENCE_VECTORS)
def test_reference_vectors(gpt2, text, ids):
    assert gpt2.encode(text, allowed_special={"<|endoftext|>"}) == ids
    assert gpt2.decode(ids) == text


def test_special_token_as_ordinary_text(gpt2):
    assert gpt2.encode_ordinary("<|endoftext|>") == [27, 91, 437, 1659, 5239, 91, 29]
    assert gpt2.encode("<|endoftext|>", disallowed_special=()) == [27, 91, 437, 1659, 5239, 91, 29]
    with pytest.raises(ValueError, match="endoftext"):
        gpt2.encode("<|endoftext|>")


def test_vocabulary_shape(gpt2):
    assert gpt2.n_vocab == 50257
    assert gpt2.eot_token == 50256
    assert gpt2.special_tokens == {"<|endoftext|>": 50256}
    assert len(gpt2.merges) == 50000
    assert gpt2.decode_single_token_bytes(220) == b" "
    assert gpt2.decode_single_token_bytes(198) == b"\n"


def test_the_verdict_has_5145_tokens(gpt2, reference_data):
    text = (reference_data / "the-verdict.txt").read_text(encoding="utf-8")
    ids = gpt2.encode(text)
    assert len(ids) == 5145
    assert gpt2.decode(ids) == text


def test_cold_and_warm_cache_agree(gpt2, reference_data):
    text = (reference_data / "the-verdict.txt").read_text(encoding="utf-8")
    gpt2.clear_cache()
    cold = gpt2.encode(text)
    assert gpt2.encode(text) == cold


def test_bytes_to_unicode_is_gpt2s_table():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert all(ch.isprintable() and not ch.isspace() for ch in table.values())
    assert gpt2_str_to_token(token_to_gpt2_str(bytes(range(256)))) == bytes(range(256))


def test_export_reproduces_the_published_files(gpt2, gpt2_dir, tmp_path):
    gpt2.save_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    ours = json.loads((tmp_path / "encoder.json").read_text(encoding="utf-8"))
    theirs = json.loads((gpt2_dir / "encoder.json").read_text(encoding="utf-8"))
    assert ours == theirs
    ours_merges = (tmp_path / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
    theirs_merges = (gpt2_dir / "vocab.bpe").read_text(encoding="utf-8").split("\n")[1:]
    assert [m for m in ours_merges if m] == [m for m in theirs_merges if m]


def test_native_save_load_round_trip_keeps_gpt2s_byte_order(gpt2, tmp_path):
    gpt2.save(tmp_path / "gpt2.bpe")
    back = BPETokenizer.load(tmp_path / "gpt2.bpe")
    text = "GPT-2 orders its byte tokens: ! is 0, space is 220. \x00\x7f é"
    assert back.encode(text) == gpt2.encode(text)
    assert back.merges == gpt2.merges


@pytest.mark.parametrize("text", ["hello \U0001f600 world", "ok\u00a0\u2003\u3000x", "1234567 89,5 ٣٤"])
def test_fast_and_regex_splits_agree_on_gpt2(gpt2, text):
    assert gpt2._splitter.split(text) == gpt2._splitter.slow.findall(text)


# ----------------------------------------------------------------------------- against tiktoken


def test_the_benchmark_text_matches_tiktoken(gpt2, tiktoken_gpt2):
    text = default_text()
    gpt2.clear_cache()
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


def test_many_new_pieces_at_once_match_tiktoken(gpt2, tiktoken_gpt2):
    """Thousands of distinct made-up words: the cold cache merges them in NumPy batches."""
    import random

    rnd = random.Random(0)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGH0123456789éüß--..,;!?'\"()[]{}<>=+*/\\|_ \n\t中"
    words = ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(1, 60))) for _ in range(3000)]
    text = " ".join(words)
    gpt2.clear_cache()
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)
    gpt2.clear_cache()


def _assigned(ch: str) -> bool:
    # Unassigned code points (in Python's Unicode tables) may be classified differently by tiktoken's
    # newer tables; surrogates cannot be passed to tiktoken as text.
    return unicodedata.category(ch) not in ("Cn", "Cs")


any_assigned = st.characters(exclude_categories=("Cn", "Cs"))
english_like = st.sampled_from(
    [" the", "The", " don't", "'s", "'ll", " 1999", "3.14", ",", "!!", "  ", "\n", "\n\n", "\t", " \n ", "é", "naïve",
     "😀", "👍🏽", "中文", "ß", "İ", " -", "--", "...", "  hello", "\r\n", " 's", "'S", "x" * 40, "\u00a0", "ǅ"]
)
parity_text = st.lists(st.one_of(english_like, st.text(any_assigned, max_size=8)), max_size=25).map("".join)


@given(parity_text)
def test_matches_tiktoken_on_generated_text(gpt2, tiktoken_gpt2, text):
    assert all(_assigned(ch) for ch in text)
    assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.encode(text, allowed_special="all") == tiktoken_gpt2.encode(text, allowed_special="all")


@given(st.binary(max_size=60))
def test_decode_bytes_matches_tiktoken(gpt2, tiktoken_gpt2, data):
    ids = gpt2.encode_bytes(data)
    assert gpt2.decode_bytes(ids) == data == tiktoken_gpt2.decode_bytes(ids)


@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=40))
def test_gpt2_round_trips_any_text(gpt2, text):
    assert gpt2.decode(gpt2.encode_ordinary(text)) == text


def test_lone_surrogate_like_tiktoken(gpt2, tiktoken_gpt2):
    assert gpt2.encode_ordinary("a\ud83db") == tiktoken_gpt2.encode_ordinary("a\ud83db")
    assert gpt2.decode(gpt2.encode_ordinary("a\ud83db")) == "a\ufffdb"


def test_a_long_repeated_piece_matches_tiktoken(gpt2, tiktoken_gpt2):
    for text in ("x" * 20_000, "\n" * 5_000, " " * 5_000 + "a", "ab" * 5_000):
        assert gpt2.encode_ordinary(text) == tiktoken_gpt2.encode_ordinary(text)


def test_pattern_is_gpt2s(gpt2):
    assert gpt2.pattern == GPT2_PATTERN
