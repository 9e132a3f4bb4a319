"""The two pattern forms of ``tokenizer.json`` (``{"String": s}`` and ``{"Regex": r}``), and the
splitting rules the ``tokenizers`` library applies with them (its ``SplitDelimiterBehavior``).

``tokenizers`` compiles its regexes with Oniguruma; the ``regex`` module reads the same syntax for
everything these files use (``\\p{L}``, ``\\p{N}``, ``(?i:...)``, lookaheads, possessive and
counted repeats) and, for the character classes, agrees with it character by character (the
tests compare them on fuzzed text).
"""
from __future__ import annotations

import regex

from gpt.tokenizer.pretokenize import Splitter

BEHAVIORS = ("Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous")


def compile_pattern(spec: dict, what: str) -> regex.Pattern:
    """``{"String": s}`` (a literal) or ``{"Regex": r}`` -> a compiled ``regex`` pattern."""
    if not isinstance(spec, dict) or len(spec) != 1 or not ({"String", "Regex"} & spec.keys()):
        raise ValueError(f"{what}: a pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {spec!r}")
    if "String" in spec:
        return regex.compile(regex.escape(spec["String"]))
    try:
        return regex.compile(spec["Regex"])
    except regex.error as e:
        raise ValueError(f"{what}: cannot compile the regex {spec['Regex']!r} ({e})") from None


class PatternSplit:
    """Splits a string around the matches of a pattern, keeping or dropping them by ``behavior``.

    With ``invert`` the matches and the text between them swap roles. Empty pieces are dropped.
    ``Isolated`` with a pattern that covers the whole text (GPT-2's, Llama 3's) is the hot path of
    byte-level tokenizers: it is a plain ``findall``, through :class:`~gpt.tokenizer.pretokenize.Splitter`
    (which also runs such patterns on Python's faster ``re`` engine when it can).
    """

    def __init__(self, pattern: regex.Pattern, behavior: str, invert: bool = False, what: str = "Split") -> None:
        if behavior not in BEHAVIORS:
            raise ValueError(f"{what}: unknown split behavior {behavior!r} (expected one of {', '.join(BEHAVIORS)})")
        self.pattern, self.behavior, self.invert = pattern, behavior, invert
        self._findall = None
        if behavior == "Isolated" and not invert:
            try:
                self._findall = Splitter(pattern.pattern).split
            except ValueError:  # capturing groups: findall would return the groups
                self._findall = None

    def _parts(self, text: str) -> list[tuple[int, int, bool]]:
        """(start, end, is_match) covering ``text``, in order."""
        parts, prev = [], 0
        for m in self.pattern.finditer(text):
            s, e = m.span()
            if s != prev:
                parts.append((prev, s, False))
            parts.append((s, e, True))
            prev = e
        if prev != len(text):
            parts.append((prev, len(text), False))
        if self.invert:
            parts = [(s, e, not m) for s, e, m in parts]
        return parts

    def __call__(self, text: str) -> list[str]:
        if self._findall is not None:
            pieces = self._findall(text)
            if sum(map(len, pieces)) == len(text):  # the matches cover the text: no gaps to add
                return pieces if "" not in pieces else [p for p in pieces if p]
        parts = self._parts(text)
        behavior = self.behavior
        if behavior == "Removed":
            spans = [(s, e) for s, e, m in parts if not m]
        elif behavior == "Isolated":
            spans = [(s, e) for s, e, _ in parts]
        else:
            spans: list[list[int]] = []
            previous = False
            seq = reversed(parts) if behavior == "MergedWithNext" else parts
            for s, e, m in seq:
                if behavior == "Contiguous":
                    join = m == previous
                else:
                    join = m and not previous
                if join and spans:
                    if behavior == "MergedWithNext":
                        spans[-1][0] = s
                    else:
                        spans[-1][1] = e
                else:
                    spans.append([s, e])
                previous = m
            if behavior == "MergedWithNext":
                spans.reverse()
        return [text[s:e] for s, e in spans if e > s]
