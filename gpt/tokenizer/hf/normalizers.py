"""Normalizers: the first stage of a ``tokenizer.json`` pipeline, text -> text.

Each class is one ``"type"`` of the file's ``normalizer`` entry, built by :func:`build` from its JSON
object, and maps a string to a string (``tokenizers`` also tracks where each character came from,
for offsets; ids do not need that). Character classes follow the ``tokenizers`` library (Rust):
"whitespace" is Unicode White_Space, lowercasing is per character (no final-sigma rule).
"""
from __future__ import annotations

import unicodedata

import regex

from gpt.tokenizer.hf.patterns import compile_pattern


def lowercase(text: str) -> str:
    """Per-character lowercase, as Rust's ``char::to_lowercase`` (``str.lower`` differs only on
    capital sigma, which it turns into a final sigma at the end of a word)."""
    if "\u03a3" not in text:
        return text.lower()
    return "".join(c.lower() for c in text)


def is_mark(c: str) -> bool:
    return unicodedata.category(c)[0] == "M"


class Normalizer:
    def __call__(self, text: str) -> str:
        raise NotImplementedError


class UnicodeForm(Normalizer):
    """NFC, NFD, NFKC or NFKD."""

    def __init__(self, form: str) -> None:
        self.form = form

    def __call__(self, text: str) -> str:
        return unicodedata.normalize(self.form, text)


class Lowercase(Normalizer):
    def __call__(self, text: str) -> str:
        return lowercase(text)


class StripAccents(Normalizer):
    """Drops every combining mark (categories Mn, Mc, Me); used after NFD/NFKD."""

    def __call__(self, text: str) -> str:
        return "".join(c for c in text if not is_mark(c)) if not text.isascii() else text


class Strip(Normalizer):
    """Removes Unicode whitespace at the left and/or right end."""

    def __init__(self, left: bool = True, right: bool = True) -> None:
        self.left, self.right = left, right

    def __call__(self, text: str) -> str:
        if self.left:
            text = _LEADING_SPACE.sub("", text)
        if self.right:
            text = _TRAILING_SPACE.sub("", text)
        return text


_LEADING_SPACE = regex.compile(r"^\s+")
_TRAILING_SPACE = regex.compile(r"\s+$")


class Replace(Normalizer):
    """Replaces every match of a ``{"String": s}`` or ``{"Regex": r}`` pattern by ``content``."""

    def __init__(self, pattern: dict, content: str) -> None:
        self.pattern, self.content = compile_pattern(pattern, "Replace normalizer"), content
        self._literal = pattern.get("String")

    def __call__(self, text: str) -> str:
        if self._literal is not None:
            return text.replace(self._literal, self.content) if self._literal else text
        return self.pattern.sub(lambda m: self.content, text)


class Prepend(Normalizer):
    """Puts ``prepend`` in front of a non-empty text (SentencePiece's dummy prefix "▁")."""

    def __init__(self, prepend: str) -> None:
        self.prepend = prepend

    def __call__(self, text: str) -> str:
        return self.prepend + text if text else text


def _is_control(c: str) -> bool:
    """BERT's "control" characters: categories Cc, Cf, Co, Cs but not tab/newline/return (and not
    unassigned code points, which the tokenizers library keeps)."""
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs")


def _is_chinese(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


_BERT_SPACE = regex.compile(r"\s")


class BertNormalizer(Normalizer):
    """BERT's cleanup, in this order: ``clean_text`` (drop NUL, U+FFFD and control characters; any
    whitespace becomes a space), ``handle_chinese_chars`` (spaces around each CJK ideograph),
    ``strip_accents`` (NFD, then drop non-spacing marks; its default null means "as lowercase"),
    ``lowercase``."""

    def __init__(self, clean_text: bool = True, handle_chinese_chars: bool = True, strip_accents: bool | None = None,
                 lowercase: bool = True) -> None:
        self.clean_text, self.handle_chinese_chars = clean_text, handle_chinese_chars
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.lowercase = lowercase

    def __call__(self, text: str) -> str:
        if self.clean_text:
            if not (text.isascii() and text.isprintable()):
                text = "".join(c for c in text if c not in "\x00\ufffd" and not _is_control(c))
            text = _BERT_SPACE.sub(" ", text)
        if self.handle_chinese_chars and not text.isascii():
            text = "".join(f" {c} " if _is_chinese(ord(c)) else c for c in text)
        if self.strip_accents and not text.isascii():
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        if self.lowercase:
            text = lowercase(text)
        return text


class Sequence(Normalizer):
    def __init__(self, normalizers: list[Normalizer]) -> None:
        self.normalizers = normalizers

    def __call__(self, text: str) -> str:
        for n in self.normalizers:
            text = n(text)
        return text


def build(spec: dict | None, where: str) -> Normalizer | None:
    """The normalizer described by a ``tokenizer.json`` entry (None for null); ValueError naming the
    component and ``where`` (the file) if this reader does not support it."""
    if spec is None:
        return None
    kind = spec.get("type")
    if kind in ("NFC", "NFD", "NFKC", "NFKD"):
        return UnicodeForm(kind)
    if kind == "Lowercase":
        return Lowercase()
    if kind == "StripAccents":
        return StripAccents()
    if kind == "Strip":
        return Strip(spec.get("strip_left", True), spec.get("strip_right", True))
    if kind == "Replace":
        return Replace(spec["pattern"], spec["content"])
    if kind == "Prepend":
        return Prepend(spec["prepend"])
    if kind == "BertNormalizer":
        return BertNormalizer(spec.get("clean_text", True), spec.get("handle_chinese_chars", True),
                              spec.get("strip_accents"), spec.get("lowercase", True))
    if kind == "Sequence":
        return Sequence([build(s, where) for s in spec["normalizers"]])
    raise ValueError(f"{where}: the normalizer {kind!r} is not supported by this reader")
