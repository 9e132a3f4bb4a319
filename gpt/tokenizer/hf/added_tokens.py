"""Added tokens: strings cut out of the text before anything else runs (``tokenizer.json``'s
``added_tokens``), such as ``<|endoftext|>``, ``[CLS]`` or ``<|im_start|>``.

Tokens with ``normalized: false`` (all special ones, usually) are found in the raw text; the rest
of the text is normalized, and then tokens with ``normalized: true`` are found in it (their own
text normalized the same way). Where several tokens could match, the leftmost wins, and the
longest among those. Flags: ``single_word`` (only where no word character touches it),
``lstrip`` / ``rstrip`` (it swallows the whitespace on its left / right), ``special`` (a control
token: :meth:`HFTokenizer.encode` follows tiktoken's ``allowed_special`` rules for these, and
``decode(..., skip_special_tokens=True)`` leaves them out).
"""
from __future__ import annotations

from dataclasses import dataclass

import regex

_WORD_AT_END = regex.compile(r"\w$")
_WORD_AT_START = regex.compile(r"\w")  # (used with .match at a position: "^" would not match there)
_SPACE_AT_END = regex.compile(r"\s*$")
_SPACE_AT_START = regex.compile(r"\s*")


@dataclass(frozen=True)
class AddedToken:
    id: int
    content: str
    special: bool = False
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool = True

    @classmethod
    def from_json(cls, d: dict) -> "AddedToken":
        return cls(int(d["id"]), d["content"], bool(d.get("special", False)), bool(d.get("single_word", False)),
                   bool(d.get("lstrip", False)), bool(d.get("rstrip", False)),
                   bool(d.get("normalized", not d.get("special", False))))

    def to_json(self) -> dict:
        return {"id": self.id, "content": self.content, "single_word": self.single_word, "lstrip": self.lstrip,
                "rstrip": self.rstrip, "normalized": self.normalized, "special": self.special}


class _Matcher:
    """Finds a set of token strings in a text: leftmost, then longest (an alternation sorted longest first)."""

    def __init__(self, tokens: dict[str, AddedToken]) -> None:
        self.tokens = tokens
        alternatives = sorted(tokens, key=lambda s: (-len(s), s))
        self.regex = regex.compile("|".join(map(regex.escape, alternatives))) if alternatives else None

    def split(self, text: str, skip: frozenset[str]) -> list[tuple[str, AddedToken | None, int]]:
        """``text`` -> ``(piece, token or None, start)`` in order; tokens whose content is in
        ``skip`` are found but left in the text, as ``tokenizers`` does with ``encode_special_tokens``."""
        if self.regex is None or not text:
            return [(text, None, 0)]
        out, offset = [], 0
        for m in self.regex.finditer(text):
            start, stop = m.span()
            token = self.tokens[m.group()]
            if token.content in skip:
                continue
            if token.single_word:
                if (start > 0 and _WORD_AT_END.search(text, 0, start)) or (
                    stop < len(text) and _WORD_AT_START.match(text, stop)
                ):
                    continue
            if token.lstrip:
                start = max(_SPACE_AT_END.search(text, 0, start).start(), offset)
            if token.rstrip:
                stop = _SPACE_AT_START.match(text, stop).end()
            if offset < start:
                out.append((text[offset:start], None, offset))
            out.append((text[start:stop], token, start))
            offset = stop
        if offset != len(text):
            out.append((text[offset:], None, offset))
        return out


class AddedVocabulary:
    def __init__(self, tokens: list[AddedToken], normalize=None) -> None:
        self.tokens = list(tokens)
        self.by_id = {t.id: t for t in self.tokens}
        self.by_content = {t.content: t for t in self.tokens}
        self.special = {t.content: t.id for t in self.tokens if t.special}
        self.raw = _Matcher({t.content: t for t in self.tokens if not t.normalized})
        normalized = {}
        for t in self.tokens:
            if t.normalized:
                normalized[normalize(t.content) if normalize is not None else t.content] = t
        self.normalized = _Matcher(normalized)
