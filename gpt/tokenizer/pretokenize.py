"""Pre-splitting text into pieces with a regular expression, before byte-pair encoding.

GPT-2 never merges bytes across the boundaries of this split: ``"Hello, world"`` becomes the pieces
``["Hello", ",", " world"]`` and BPE then works inside each piece. The pattern is written for the
third-party ``regex`` module, because it needs Unicode properties (``\\p{L}`` letters, ``\\p{N}``
numbers) that Python's built-in ``re`` does not know.

Speed (beyond the book): the ``regex`` engine spends about as long on this split as tiktoken spends on
the whole encoding. Python's ``re`` runs the same pattern roughly twice as fast once the Unicode
classes are spelled out as explicit character ranges, but ``re`` matches ranges outside the Basic
Multilingual Plane (BMP, U+0000..U+FFFF) slowly. So :class:`Splitter` compiles two equivalent
engines: ``re`` with BMP-only ranges (taken from ``regex`` itself, so the two agree character by
character), used when the text has no character above U+FFFF, and ``regex`` for all other texts.
A pattern the translation does not understand simply always uses ``regex``. GPT-2's pattern is
also reordered into an equivalent, faster form (see ``_FASTER_EQUIVALENT``).
"""
from __future__ import annotations

import functools
import re

import regex

# GPT-2's pre-split, from OpenAI's encoder.py: English contractions, an optional space followed by
# letters / by digits / by other symbols, and whitespace. ``\s+(?!\S)`` leaves the last space of a
# run for the next word, so " world" keeps its leading space.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Lone surrogates (half of a UTF-16 pair) can be in a Python str but not in UTF-8
SURROGATE = regex.compile("[\ud800-\udfff]")


def replace_lone_surrogates(text: str) -> str:
    """``text`` with every lone surrogate replaced by U+FFFD, as tiktoken does before encoding."""
    if SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


# Spellings of GPT-2's pattern (ours and tiktoken's) -> an equivalent one that runs faster. The
# alternatives starting with a letter or space + letter, a digit or space + digit, and an apostrophe
# can never match at the same position (their first characters differ), so trying letters first
# changes no result; it only skips seven failed contraction tests at most positions. The symbol
# alternative still comes after the contractions and whitespace still comes last.
_FASTER_EQUIVALENT = {
    GPT2_PATTERN: r""" ?\p{L}+| ?\p{N}+|'(?:[sdmt]|ll|ve|re)| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""": (
        r""" ?\p{L}+| ?\p{N}+|'(?:[sdmt]|ll|ve|re)| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    ),
}

_ASTRAL = regex.compile("[\U00010000-\U0010ffff]")
_PLAIN_ESCAPES = set("rntfv\\")  # escapes that mean one literal character in both engines
_CLASS_ESCAPES = set("sSdDwW")  # shorthand classes, translated to explicit BMP ranges
_GROUP_OPENERS = ("(?:", "(?=", "(?!")  # the only "(?" constructs translated


@functools.lru_cache(maxsize=None)
def _bmp_class(escape: str) -> str:
    """The BMP characters ``regex`` matches with ``escape`` (e.g. ``\\p{L}``), as ``re`` class ranges."""
    bmp = "".join(map(chr, range(0x10000)))
    parts = []
    for m in regex.finditer(f"(?:{escape})+", bmp):
        lo, hi = m.start(), m.end() - 1
        parts.append(f"\\u{lo:04x}" if lo == hi else f"\\u{lo:04x}-\\u{hi:04x}")
    return "".join(parts)


def translate_for_re(pattern: str) -> str | None:
    """Rewrite a ``regex`` pattern for Python's ``re``, valid for text without astral characters.

    Returns None when the pattern uses anything beyond literals, ``[...]`` classes, alternation,
    quantifiers, ``(?:``, lookaheads and the class escapes ``\\p{..}``, ``\\P{..}``, ``\\s``, ``\\S``,
    ``\\d``, ``\\D``, ``\\w``, ``\\W`` (each replaced by the explicit BMP ranges ``regex`` matches).
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                return None
            esc = pattern[i + 1]
            if esc in "pP":
                if i + 2 < n and pattern[i + 2] == "{":
                    end = pattern.find("}", i + 3)
                    if end < 0:
                        return None
                    token, i = pattern[i : end + 1], end + 1
                else:
                    token, i = pattern[i : i + 3], i + 3
                ranges = _bmp_class(token)
            elif esc in _CLASS_ESCAPES:
                ranges, i = _bmp_class("\\" + esc), i + 2
            elif esc in _PLAIN_ESCAPES or not esc.isalnum():
                out.append(pattern[i : i + 2])
                i += 2
                continue
            else:
                return None  # \b, \A, \X, \uXXXX, ...: leave those patterns to regex
            if not ranges:
                return None  # a class with no BMP member cannot be written as "[]"
            out.append(ranges if in_class else f"[{ranges}]")
            continue
        if in_class:
            if ch == "[":
                return None  # nested sets or POSIX classes
            if ch == "]":
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a leading "]" is a literal
                out.append("\\]")
                i += 1
            continue
        if ch == "(" and pattern.startswith("(?", i):
            if not pattern.startswith(_GROUP_OPENERS, i):
                return None  # flags, named groups, atomic groups, lookbehinds
            out.append(pattern[i : i + 3])
            i += 3
            continue
        out.append(ch)
        i += 1
    return None if in_class else "".join(out)


# A sample of the characters the two engines must agree on before the fast path is trusted.
_CHECK_TEXT = (
    "Hello, world! It's 2024 -- we're  here.\n\n\tTabs\r\nand  \u00a0spaces\u2003\u3000x  \n"
    "caf\u00e9 na\u0308ive \u0661\u0662 \u00bd \u2167 \u4e00\u4e8c \uff01 \u2019quoted\u2019 "
    "\x1c\x1d\x1e\x1f\x85 \ud800 \udcff ___ a1b2 '''s 'S 'll'VE   "
)


class Splitter:
    """Splits text into pre-tokenization pieces with ``pattern`` (a ``regex`` pattern).

    >>> Splitter(GPT2_PATTERN).split("Hello, world")
    ['Hello', ',', ' world']
    """

    def __init__(self, pattern: str) -> None:
        try:
            self.slow = regex.compile(pattern)
        except regex.error as e:
            raise ValueError(f"invalid pre-split pattern {pattern!r}: {e}") from None
        if self.slow.groups:
            raise ValueError(
                f"the pre-split pattern {pattern!r} has capturing groups; write them as (?:...)"
            )
        self.pattern = pattern
        self.fast = None
        translated = translate_for_re(_FASTER_EQUIVALENT.get(pattern, pattern))
        if translated is not None:
            try:
                fast = re.compile(translated)
            except (re.error, OverflowError, RecursionError):
                fast = None
            if fast is not None and fast.findall(_CHECK_TEXT) == self.slow.findall(_CHECK_TEXT):
                self.fast = fast

    def split(self, text: str) -> list[str]:
        """``text`` -> its pieces, in order; they join back to ``text`` if the pattern covers everything."""
        if self.fast is not None and _ASTRAL.search(text) is None:
            return self.fast.findall(text)
        return self.slow.findall(text)

    def __repr__(self) -> str:
        return f"Splitter({self.pattern!r})"
