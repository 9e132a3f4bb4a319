"""Pre-tokenizers: the second stage, one normalized text -> pieces that the model encodes separately.

Each class is one ``"type"`` of the file's ``pre_tokenizer`` entry. A pre-tokenizer maps a list of
pieces to a finer list; :meth:`PreTokenizer.run` also carries one fact the Metaspace pre-tokenizer
needs: whether the first piece starts at the very beginning of the input text.

``ByteLevel`` is special: besides its optional GPT-2 split, it rewrites every byte as a printable
character (GPT-2's table, :func:`gpt.tokenizer.gpt2.bytes_to_unicode`). Here that rewriting is left
to the model, which reads a piece's UTF-8 bytes directly (same ids, no detour through the
printable alphabet), so ``ByteLevel`` must come last in the pipeline.
"""
from __future__ import annotations

import regex

from gpt.tokenizer.hf.patterns import PatternSplit, compile_pattern
from gpt.tokenizer.pretokenize import GPT2_PATTERN

# ASCII punctuation plus Unicode's P* categories: BERT's notion of punctuation
PUNCTUATION = r"[\p{P}!-/:-@\[-`{-~]"


class PreTokenizer:
    byte_level = False  # True for ByteLevel: the model then encodes pieces byte by byte

    def split(self, text: str) -> list[str]:
        """One piece -> its sub-pieces (empty ones dropped)."""
        raise NotImplementedError

    def run(self, pieces: list[str], at_start: bool) -> tuple[list[str], bool]:
        """Split every piece; ``at_start``: pieces[0] begins at offset 0 of the input (kept true
        only if the first sub-piece still does)."""
        out: list[str] = []
        for k, piece in enumerate(pieces):
            parts = self.split(piece)
            if k == 0 and at_start:
                at_start = bool(parts) and piece.startswith(parts[0])
            out += parts
        return out, at_start


class Split(PreTokenizer):
    def __init__(self, pattern: dict, behavior: str, invert: bool = False) -> None:
        self.split = PatternSplit(compile_pattern(pattern, "Split pre-tokenizer"), behavior, invert)


class Whitespace(PreTokenizer):
    """Runs of word characters, and runs of other non-space characters (``\\w+|[^\\w\\s]+``)."""

    _re = regex.compile(r"\w+|[^\w\s]+")

    def split(self, text: str) -> list[str]:
        return self._re.findall(text)


class WhitespaceSplit(PreTokenizer):
    _re = regex.compile(r"\S+")

    def split(self, text: str) -> list[str]:
        return self._re.findall(text)


class BertPreTokenizer(PreTokenizer):
    """Split on whitespace (dropped) and around every punctuation character (kept, one each)."""

    _re = regex.compile(rf"[^\s\p{{P}}!-/:-@\[-`{{-~]+|{PUNCTUATION}")

    def split(self, text: str) -> list[str]:
        return self._re.findall(text)


class Punctuation(PreTokenizer):
    def __init__(self, behavior: str = "Isolated") -> None:
        self.split = PatternSplit(regex.compile(PUNCTUATION), behavior, what="Punctuation pre-tokenizer")


class Digits(PreTokenizer):
    """Separates numbers (Unicode category N): each digit alone, or runs of them."""

    def __init__(self, individual_digits: bool = False) -> None:
        self._re = regex.compile(r"\p{N}|\P{N}+" if individual_digits else r"\p{N}+|\P{N}+")

    def split(self, text: str) -> list[str]:
        return self._re.findall(text)


class CharDelimiterSplit(PreTokenizer):
    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter

    def split(self, text: str) -> list[str]:
        return [p for p in text.split(self.delimiter) if p]


class Metaspace(PreTokenizer):
    """SentencePiece's view of spaces: every space becomes ``replacement`` ("▁"), one is put in
    front (``prepend_scheme`` "always"; "first": only before the text's first piece; "never"), and
    with ``split`` each "▁" starts a new piece."""

    def __init__(self, replacement: str = "\u2581", prepend_scheme: str = "always", split: bool = True) -> None:
        if prepend_scheme not in ("always", "first", "never"):
            raise ValueError(f"Metaspace: unknown prepend_scheme {prepend_scheme!r}")
        self.replacement, self.prepend_scheme, self.do_split = replacement, prepend_scheme, split
        r = regex.escape(replacement)
        self._re = regex.compile(f"{r}?(?:(?!{r}).)+|{r}", regex.DOTALL)

    def run(self, pieces: list[str], at_start: bool) -> tuple[list[str], bool]:
        out: list[str] = []
        rep = self.replacement
        for k, piece in enumerate(pieces):
            piece = piece.replace(" ", rep)
            if not piece.startswith(rep) and (
                self.prepend_scheme == "always" or (self.prepend_scheme == "first" and k == 0 and at_start)
            ):
                piece = rep + piece
            out += self._re.findall(piece) if self.do_split else [piece]
        return out, at_start


class ByteLevel(PreTokenizer):
    """GPT-2's pre-split (``use_regex``) after an optional space in front of each piece
    (``add_prefix_space``); the byte-to-character rewriting is done by the model."""

    byte_level = True

    def __init__(self, add_prefix_space: bool = True, use_regex: bool = True) -> None:
        self.add_prefix_space = add_prefix_space
        self._split = PatternSplit(regex.compile(GPT2_PATTERN), "Isolated") if use_regex else None

    def run(self, pieces: list[str], at_start: bool) -> tuple[list[str], bool]:
        if self.add_prefix_space:
            pieces = [p if p.startswith(" ") else " " + p for p in pieces]
        if self._split is None:
            return pieces, at_start
        if len(pieces) == 1:
            return self._split(pieces[0]), at_start
        out: list[str] = []
        for p in pieces:
            out += self._split(p)
        return out, at_start


class Sequence(PreTokenizer):
    def __init__(self, pre_tokenizers: list[PreTokenizer], where: str) -> None:
        for p in pre_tokenizers[:-1]:
            if p.byte_level:
                raise ValueError(f"{where}: a ByteLevel pre-tokenizer followed by others is not supported by this reader")
        self.pre_tokenizers = pre_tokenizers
        self.byte_level = bool(pre_tokenizers) and pre_tokenizers[-1].byte_level

    def run(self, pieces: list[str], at_start: bool) -> tuple[list[str], bool]:
        for p in self.pre_tokenizers:
            pieces, at_start = p.run(pieces, at_start)
        return pieces, at_start


def build(spec: dict | None, where: str) -> PreTokenizer | None:
    """The pre-tokenizer described by a ``tokenizer.json`` entry (None for null); ValueError naming
    the component and ``where`` (the file) if this reader does not support it."""
    if spec is None:
        return None
    kind = spec.get("type")
    if kind == "ByteLevel":
        return ByteLevel(spec.get("add_prefix_space", True), spec.get("use_regex", True))
    if kind == "Split":
        return Split(spec["pattern"], spec.get("behavior", "Isolated"), spec.get("invert", False))
    if kind == "Metaspace":
        scheme = spec.get("prepend_scheme")
        if scheme is None:  # files from tokenizers < 0.15 say add_prefix_space instead
            scheme = "always" if spec.get("add_prefix_space", True) else "never"
        return Metaspace(spec.get("replacement", "\u2581"), scheme, spec.get("split", True))
    if kind == "BertPreTokenizer":
        return BertPreTokenizer()
    if kind == "Whitespace":
        return Whitespace()
    if kind == "WhitespaceSplit":
        return WhitespaceSplit()
    if kind == "Digits":
        return Digits(spec.get("individual_digits", False))
    if kind == "Punctuation":
        return Punctuation(spec.get("behavior", "Isolated"))
    if kind == "CharDelimiterSplit":
        return CharDelimiterSplit(spec["delimiter"])
    if kind == "Sequence":
        return Sequence([build(p, where) for p in spec["pretokenizers"]], where)
    raise ValueError(f"{where}: the pre-tokenizer {kind!r} is not supported by this reader")
