"""Decoders: the way back, token strings -> text (``tokenizer.json``'s ``decoder``).

A decoder maps the list of token strings to a new list (``decode_chain``); the text is that list
joined. A chain (``Sequence``) feeds each decoder's output to the next.
"""
from __future__ import annotations

from gpt.tokenizer.gpt2 import unicode_to_bytes
from gpt.tokenizer.hf.patterns import compile_pattern


class Decoder:
    def decode_chain(self, tokens: list[str]) -> list[str]:
        raise NotImplementedError


class ByteLevel(Decoder):
    """GPT-2's printable characters -> bytes -> UTF-8 text (invalid bytes become U+FFFD). A token
    with a character outside the table (an added token) contributes its own UTF-8 bytes."""

    def decode_chain(self, tokens):
        table = unicode_to_bytes()
        data = bytearray()
        for t in tokens:
            try:
                data += bytes(map(table.__getitem__, t))
            except KeyError:
                data += t.encode("utf-8")
        return [data.decode("utf-8", errors="replace")]


class Metaspace(Decoder):
    """"▁" -> space, except in the first token, where (unless prepend_scheme is "never") every "▁"
    is dropped: it stood for the space put in front of the text."""

    def __init__(self, replacement: str = "\u2581", prepend_scheme: str = "always") -> None:
        self.replacement, self.prepend_scheme = replacement, prepend_scheme

    def decode_chain(self, tokens):
        out = []
        for i, t in enumerate(tokens):
            out.append(t.replace(self.replacement, "" if i == 0 and self.prepend_scheme != "never" else " "))
        return out


def _byte_token(t: str) -> int | None:
    if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
        try:
            return int(t[3:5], 16)
        except ValueError:
            return None
    return None


class ByteFallback(Decoder):
    """Runs of ``<0xNN>`` tokens -> the text their bytes spell; if those bytes are not valid UTF-8,
    one U+FFFD per byte."""

    def decode_chain(self, tokens):
        out, pending = [], bytearray()

        def flush():
            if pending:
                try:
                    out.append(pending.decode("utf-8"))
                except UnicodeDecodeError:
                    out.extend("\ufffd" * len(pending))
                pending.clear()

        for t in tokens:
            b = _byte_token(t)
            if b is not None:
                pending.append(b)
            else:
                flush()
                out.append(t)
        flush()
        return out


class Fuse(Decoder):
    def decode_chain(self, tokens):
        return ["".join(tokens)]


class Strip(Decoder):
    """Removes up to ``start`` leading and ``stop`` trailing ``content`` characters from each token."""

    def __init__(self, content: str, start: int, stop: int) -> None:
        self.content, self.start, self.stop = content, start, stop

    def decode_chain(self, tokens):
        out = []
        for t in tokens:
            lo = 0
            while lo < min(self.start, len(t)) and t[lo] == self.content:
                lo += 1
            hi = len(t)
            while len(t) - hi < self.stop and hi > lo and t[hi - 1] == self.content:
                hi -= 1
            out.append(t[lo:hi])
        return out


class Replace(Decoder):
    def __init__(self, pattern: dict, content: str) -> None:
        self.literal = pattern.get("String")
        self.pattern = compile_pattern(pattern, "Replace decoder")
        self.content = content

    def decode_chain(self, tokens):
        if self.literal is not None:
            return [t.replace(self.literal, self.content) if self.literal else t for t in tokens]
        return [self.pattern.sub(lambda m: self.content, t) for t in tokens]


def _cleanup(text: str) -> str:
    """BERT's clean-up of spaces before punctuation and contractions."""
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                 (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        text = text.replace(a, b)
    return text


class WordPiece(Decoder):
    """Joins ``##`` continuations to the token before, puts a space before every other token."""

    def __init__(self, prefix: str = "##", cleanup: bool = True) -> None:
        self.prefix, self.cleanup = prefix, cleanup

    def decode_chain(self, tokens):
        out = []
        for i, t in enumerate(tokens):
            if i:
                t = t.replace(self.prefix, "", 1) if t.startswith(self.prefix) else " " + t
            out.append(_cleanup(t) if self.cleanup else t)
        return out


class BPEDecoder(Decoder):
    """End-of-word suffix (``</w>``) -> a space (nothing after the last token)."""

    def __init__(self, suffix: str = "</w>") -> None:
        self.suffix = suffix

    def decode_chain(self, tokens):
        n = len(tokens)
        return [t.replace(self.suffix, "" if i == n - 1 else " ") for i, t in enumerate(tokens)]


class Sequence(Decoder):
    def __init__(self, decoders: list[Decoder]) -> None:
        self.decoders = decoders

    def decode_chain(self, tokens):
        for d in self.decoders:
            tokens = d.decode_chain(tokens)
        return tokens


def build(spec: dict | None, where: str) -> Decoder | None:
    if spec is None:
        return None
    kind = spec.get("type")
    if kind == "ByteLevel":
        return ByteLevel()
    if kind == "Metaspace":
        scheme = spec.get("prepend_scheme")
        if scheme is None:
            scheme = "always" if spec.get("add_prefix_space", True) else "never"
        return Metaspace(spec.get("replacement", "\u2581"), scheme)
    if kind == "ByteFallback":
        return ByteFallback()
    if kind == "Fuse":
        return Fuse()
    if kind == "Strip":
        return Strip(spec["content"], int(spec.get("start", 0)), int(spec.get("stop", 0)))
    if kind == "Replace":
        return Replace(spec["pattern"], spec["content"])
    if kind == "WordPiece":
        return WordPiece(spec.get("prefix", "##"), spec.get("cleanup", True))
    if kind == "BPEDecoder":
        return BPEDecoder(spec.get("suffix", "</w>"))
    if kind == "Sequence":
        return Sequence([build(d, where) for d in spec["decoders"]])
    raise ValueError(f"{where}: the decoder {kind!r} is not supported by this reader")
