"""The pre-split: the fast ``re`` translation must split exactly like the ``regex`` pattern."""

import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from gpt.tokenizer import GPT2_PATTERN
from gpt.tokenizer.pretokenize import Splitter, translate_for_re

TIKTOKEN_GPT2 = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# GPT-4's pattern without its case-insensitive group (which is left to the regex engine).
CL100K_LIKE = r"""'(?:s|t|re|ve|m|ll|d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

bmp_text = st.text(st.characters(max_codepoint=0xFFFF), max_size=60)
mixed = st.lists(
    st.one_of(bmp_text, st.sampled_from(["'s", "'ve", " 12", "\r\n", "  x", "\x1c", "\x85", "\u2028", "\U0001f600"])),
    max_size=10,
).map("".join)


@pytest.mark.parametrize("pattern", [GPT2_PATTERN, TIKTOKEN_GPT2, CL100K_LIKE, r"\S+|\s+", r"\w+|\W", r"\d+|\D+"])
@given(text=mixed)
def test_fast_split_equals_regex_split(pattern, text):
    splitter = Splitter(pattern)
    assert splitter.fast is not None, "this pattern should have a fast form"
    expected = regex.findall(pattern, text)
    assert splitter.fast.findall(text.replace("\U0001f600", "")) == regex.findall(pattern, text.replace("\U0001f600", ""))
    assert splitter.split(text) == expected


@given(mixed)
def test_gpt2_pieces_cover_the_text(text):
    pieces = Splitter(GPT2_PATTERN).split(text)
    assert "".join(pieces) == text
    assert all(pieces)


def test_the_split_of_a_sentence():
    s = Splitter(GPT2_PATTERN)
    assert s.split("Hello, world! It's 2024.\n\n  Done") == [
        "Hello", ",", " world", "!", " It", "'s", " 2024", ".", "\n\n ", " Done"
    ]  # the whitespace run leaves its last space to the next word


@pytest.mark.parametrize(
    "pattern",
    [r"(?i:'s)|\w+", r"\bword\b", r"(?<=a)b", r"[[:alpha:]]+", r"\X", r"(?P<name>a)"],
)
def test_unsupported_constructs_fall_back_to_regex(pattern):
    assert translate_for_re(pattern) is None


def test_errors():
    with pytest.raises(ValueError, match="capturing groups"):
        Splitter(r"(a)|b")
    with pytest.raises(ValueError, match="invalid"):
        Splitter(r"[a-")
