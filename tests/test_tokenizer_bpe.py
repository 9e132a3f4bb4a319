"""BPETokenizer on a vocabulary trained here (no reference files needed): round trips, special
tokens, the long-piece merge, files, and bounded time on pathological inputs."""
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt.tokenizer import GPT2_PATTERN, BPETokenizer
from gpt.tokenizer import merge as merge_module
from gpt.tokenizer.bench import default_text
from gpt.tokenizer.bpe import readable

SPECIALS = ("<|endoftext|>", "<|pad|>", "<|end|>")


@pytest.fixture(scope="module")
def tok():
    """A 1,000-id vocabulary learned from 60 KB of Python's documentation, plus a few emoji and accents."""
    text = default_text()[:60_000] + " café naïve 😀😀 👍🏽 日本語の文章 \r\n\r\n xxxxxxxx ٣٣٣٣" * 20
    return BPETokenizer.train(text, 1000, special_tokens=SPECIALS, verbose=False)


# Text with the awkward parts mixed in: emoji (astral), combining marks, CRLF, whitespace runs.
fragments = st.sampled_from(
    ["\r\n", "  ", "\t\t", "\n\n\n", " " * 17, "e\u0301", "😀", "👍🏽", "🇫🇷", "'s", "'LL", "日本", "ǅ", "\u00a0", "\x00", "٣"]
)
valid_text = st.lists(
    st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=20), fragments), max_size=12
).map("".join)


@given(valid_text)
def test_decode_inverts_encode(tok, s):
    ids = tok.encode_ordinary(s)
    assert tok.decode(ids) == s
    assert tok.encode(s, disallowed_special=()) == ids
    assert all(0 <= i < 256 + len(tok.merges) for i in ids)


@given(st.binary(max_size=200))
def test_decode_bytes_inverts_encode_bytes(tok, data):
    assert tok.decode_bytes(tok.encode_bytes(data)) == data


@given(valid_text)
def test_encode_bytes_of_valid_utf8_is_encode_ordinary(tok, s):
    assert tok.encode_bytes(s.encode("utf-8")) == tok.encode_ordinary(s)


@given(st.text(st.characters(exclude_categories=("Cs",)), max_size=10), st.text(max_size=10))
def test_lone_surrogates_encode_as_replacement_character(tok, a, b):
    for sur in ("\ud800", "\udfff", "\udc80"):
        assert tok.encode_ordinary(a + sur + b) == tok.encode_ordinary(a + "\ufffd" + b)


@given(st.lists(st.sampled_from(["x", "ab", " the", "\n", "😀", "é", "aaaa"]), max_size=400).map("".join))
def test_heap_merge_equals_list_merge(tok, s):
    start = tok._start(s)
    assert tok._rules._merge_long(list(start)) == tok._rules._merge_short(list(start))


def test_each_merge_rule_reproduces_its_token(tok):
    for i in range(256, 256 + len(tok.merges)):
        # Whole-piece lookup aside, BPE of a token's own bytes gives the token back.
        assert tok.bpe(tok.decode_single_token_bytes(i)) == [i]


# ----------------------------------------------------------------------------- special tokens


def test_special_token_matrix(tok):
    eot, pad = tok.special_tokens["<|endoftext|>"], tok.special_tokens["<|pad|>"]
    text = "Hi<|endoftext|>there<|pad|>!"
    plain = tok.encode_ordinary("Hi") + [eot] + tok.encode_ordinary("there<|pad|>!")
    # default: every special token is disallowed
    with pytest.raises(ValueError, match=r"'<\|endoftext\|>'.*allowed_special"):
        tok.encode(text)
    # allowed: becomes its id; the other one is still disallowed by "all"
    with pytest.raises(ValueError, match=r"'<\|pad\|>'"):
        tok.encode(text, allowed_special={"<|endoftext|>"})
    # allowed + the other one not checked: the other one is ordinary text
    assert tok.encode(text, allowed_special={"<|endoftext|>"}, disallowed_special=()) == plain
    # all allowed
    both = tok.encode_ordinary("Hi") + [eot] + tok.encode_ordinary("there") + [pad] + tok.encode_ordinary("!")
    assert tok.encode(text, allowed_special="all") == both
    assert tok.encode(text, allowed_special=set(SPECIALS)) == both
    # nothing checked: all ordinary text, same as encode_ordinary
    assert tok.encode(text, disallowed_special=()) == tok.encode_ordinary(text)
    # only one checked
    with pytest.raises(ValueError, match=r"'<\|pad\|>'"):
        tok.encode(text, disallowed_special={"<|pad|>"})
    assert tok.encode("just text", disallowed_special="all") == tok.encode_ordinary("just text")
    assert tok.decode(both) == text


def test_an_overlapping_special_token_prefers_the_longer_one(tok):
    # "<|end|>" is not a prefix of "<|endoftext|>", but the rule matters when one is inside another.
    t = BPETokenizer(tok.merges, {"<|a|>": 1000, "<|a|><|b|>": 1001})
    assert t.encode("x<|a|><|b|>y<|a|>", allowed_special="all") == (
        t.encode_ordinary("x") + [1001] + t.encode_ordinary("y") + [1000]
    )


def test_special_tokens_never_appear_in_ordinary_encoding(tok):
    ids = tok.encode_ordinary("<|endoftext|><|pad|>")
    assert not set(ids) & set(tok.special_tokens.values())
    assert tok.decode(ids) == "<|endoftext|><|pad|>"


def test_unknown_special_token_names_are_an_error(tok):
    with pytest.raises(ValueError, match="does not have"):
        tok.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(ValueError, match='"all"'):
        tok.encode("x", allowed_special="<|endoftext|>")


def test_properties(tok):
    assert tok.n_vocab == 1000
    assert tok.eot_token == 256 + len(tok.merges)
    assert tok.special_tokens == {s: tok.eot_token + k for k, s in enumerate(SPECIALS)}
    assert tok.decode_single_token_bytes(tok.eot_token) == b"<|endoftext|>"
    assert tok.decode_single_token_bytes(ord("a")) == b"a"
    no_eot = BPETokenizer(tok.merges, {})
    with pytest.raises(ValueError, match="no <\\|endoftext\\|>"):
        _ = no_eot.eot_token


@pytest.mark.parametrize("bad", [-1, 1000, 10**9, "7", None])
def test_unknown_ids_are_an_error_naming_them(tok, bad):
    with pytest.raises(KeyError, match=repr(bad).replace("'", ".")):
        tok.decode([1, 2, bad])
    with pytest.raises(ValueError):
        tok.decode_single_token_bytes(bad)


def test_decode_accepts_numpy_arrays_and_replaces_broken_utf8(tok):
    import numpy as np

    ids = tok.encode("naïve café")
    assert tok.decode(np.array(ids, dtype=np.int64)) == "naïve café"
    e_acute = "é".encode()
    assert tok.decode([e_acute[0]]) == "\ufffd"
    assert tok.decode_bytes([e_acute[0], e_acute[1]]) == e_acute


# ----------------------------------------------------------------------------- files


def test_save_load_round_trip(tok, tmp_path):
    path = tmp_path / "tok.bpe"
    tok.save(path)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("gpt-bpe v1\npattern ")
    assert json.dumps(GPT2_PATTERN) in text
    assert '"<|pad|>"' in text
    back = BPETokenizer.load(path)
    assert back.merges == tok.merges
    assert back.special_tokens == tok.special_tokens
    assert back.pattern == tok.pattern
    sample = "Round trip: café 😀 <|endoftext|>\n\n  x"
    assert back.encode(sample, allowed_special="all") == tok.encode(sample, allowed_special="all")
    back.save(tmp_path / "again.bpe")
    assert (tmp_path / "again.bpe").read_text(encoding="utf-8") == text


def test_save_load_keeps_a_custom_pattern_and_byte_order(tmp_path):
    order = list(range(255, -1, -1))
    t = BPETokenizer([(order[ord("a")], order[ord("b")])], {"<s>": 300}, pattern=r"\S+|\s+", byte_ids=order)
    t.save(tmp_path / "t.bpe")
    back = BPETokenizer.load(tmp_path / "t.bpe")
    assert back.pattern == r"\S+|\s+"
    assert back.encode("ab a") == t.encode("ab a") == [256, order[ord(" ")], order[ord("a")]]


def test_load_reports_damaged_files(tok, tmp_path):
    with pytest.raises(FileNotFoundError):
        BPETokenizer.load(tmp_path / "missing.bpe")
    (tmp_path / "other.txt").write_text("hello\n")
    with pytest.raises(ValueError, match="not a tokenizer file"):
        BPETokenizer.load(tmp_path / "other.txt")
    tok.save(tmp_path / "tok.bpe")
    lines = (tmp_path / "tok.bpe").read_text(encoding="utf-8").split("\n")
    (tmp_path / "cut.bpe").write_text("\n".join(lines[:-50]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="truncated"):
        BPETokenizer.load(tmp_path / "cut.bpe")
    lines[10] = "12 x"
    (tmp_path / "bad.bpe").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ValueError, match="line 11"):
        BPETokenizer.load(tmp_path / "bad.bpe")


def test_gpt2_format_export_import(tok, tmp_path):
    tok.save_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    encoder = json.loads((tmp_path / "encoder.json").read_text(encoding="utf-8"))
    assert len(encoder) == tok.n_vocab
    assert encoder["Ġ"] == ord(" ") and encoder["<|endoftext|>"] == tok.eot_token
    back = BPETokenizer.from_gpt2_files(tmp_path / "encoder.json", tmp_path / "vocab.bpe")
    assert back.merges == tok.merges
    assert back.special_tokens == tok.special_tokens
    sample = "Exported: naïve 😀\r\n"
    assert back.encode(sample) == tok.encode(sample)


def test_damaged_gpt2_files_are_reported(tok, tmp_path):
    enc, bpe = tmp_path / "encoder.json", tmp_path / "vocab.bpe"
    tok.save_gpt2_files(enc, bpe)
    good_encoder, good_merges = enc.read_text(encoding="utf-8"), bpe.read_text(encoding="utf-8")
    lines = good_merges.split("\n")

    bpe.write_text("\n".join(lines[:3] + ["a b c"] + lines[3:]), encoding="utf-8")
    with pytest.raises(ValueError, match="should be 'left right'"):
        BPETokenizer.from_gpt2_files(enc, bpe)
    bpe.write_text("\n".join([lines[0], lines[2], lines[1]] + lines[3:]), encoding="utf-8")
    with pytest.raises(ValueError, match="rank order"):
        BPETokenizer.from_gpt2_files(enc, bpe)
    bpe.write_text(good_merges, encoding="utf-8")
    encoder = json.loads(good_encoder)
    del encoder["Ġ"]
    enc.write_text(json.dumps(encoder), encoding="utf-8")
    with pytest.raises(ValueError, match="no entry for byte 32"):
        BPETokenizer.from_gpt2_files(enc, bpe)
    enc.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="should map"):
        BPETokenizer.from_gpt2_files(enc, bpe)
    with pytest.raises(FileNotFoundError):
        BPETokenizer.from_gpt2_files(tmp_path / "nope.json", bpe)


def test_bad_constructor_arguments(tok):
    with pytest.raises(ValueError, match="not defined before"):
        BPETokenizer([(1, 256)])
    with pytest.raises(ValueError, match="same bytes"):
        BPETokenizer([(97, 98), (97, 98)])
    with pytest.raises(ValueError, match="special ids"):
        BPETokenizer([(97, 98)], {"<s>": 256})
    with pytest.raises(ValueError, match="byte_ids"):
        BPETokenizer([], byte_ids=[0] * 256)
    with pytest.raises(ValueError, match="capturing groups"):
        BPETokenizer([], pattern=r"(\w+)|\s+")
    with pytest.raises(ValueError, match="invalid pre-split pattern"):
        BPETokenizer([], pattern=r"(unclosed")


# ----------------------------------------------------------------------------- inspection


def test_readable_escapes_control_bytes():
    assert readable(b" the") == " the"
    assert readable(b"\n\t\r") == "\\n\\t\\r"
    assert readable(b"\x00\x1b") == "\\x00\\x1b"
    assert readable("\u200b\u00a0é".encode()) == "\\u200b\\xa0é"
    assert readable(b"\xe2\x82") == "\\xe2\\x82"  # half a character


def test_describe_merges(tok):
    lines = tok.describe_merges(3)
    assert len(lines) == 3
    a, b = tok.merges[0]
    assert lines[0] == (
        f"256: {json.dumps(readable(bytes([a])))} + {json.dumps(readable(bytes([b])))} -> "
        f"{json.dumps(readable(bytes([a, b])))}"
    )
    assert tok.token_str(ord("\n")) == "\\n"


# ----------------------------------------------------------------------------- cache and long inputs


def test_cache_stays_bounded(tok, monkeypatch):
    monkeypatch.setattr(merge_module, "CACHE_LIMIT", 50)
    tok.clear_cache()
    base = len(tok._cache)
    words = " ".join(f"zq{i}xv" for i in range(500))
    ids = tok.encode(words)
    assert tok.decode(ids) == words
    assert len(tok._cache) <= base + 50
    assert tok.encode(words) == ids  # same answer from a cold cache
    tok.clear_cache()


@pytest.mark.slow
@pytest.mark.parametrize("unit,count", [("x", 1_000_000), ("\n", 100_000), ("ab", 100_000), (" ", 100_000), ("٣", 100_000)])
def test_pathological_inputs_finish(tok, unit, count):
    """One huge piece must take O(n log n) time, not O(n^2) (which would take hours here)."""
    text = unit * count
    ids = tok.encode_ordinary(text)
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode())  # the repeats were merged


def test_long_piece_merge_matches_short_merge_on_a_medium_piece(tok):
    start = tok._start("abracadabra" * 300)  # over 256 tokens: the NumPy set-up of the heap merge
    assert tok._rules._merge_long(list(start)) == tok._rules._merge_short(list(start))
