"""The book's first tokenizer (chapter 2.2-2.4): words and punctuation, looked up in a fixed vocabulary.

Text is split on punctuation, ``--`` and whitespace; the vocabulary is every distinct piece of a
training text, sorted, followed by the special tokens ``<|endoftext|>`` and ``<|unk|>``. This is the
book's ``SimpleTokenizerV2`` (``strict=True`` behaves like ``SimpleTokenizerV1``, which fails on a word
it has not seen). It exists to show the idea; GPT-2 uses :class:`gpt.tokenizer.BPETokenizer`.
"""
from __future__ import annotations

import re
from typing import Iterable

SPLIT_PATTERN = r'([,.:;?_!"()\']|--|\s)'  # the book's split; the group keeps the punctuation
_SPACE_BEFORE_PUNCT = re.compile(r'\s+([,.:;?!"()\'])')
ENDOFTEXT, UNKNOWN = "<|endoftext|>", "<|unk|>"


def split_words(text: str) -> list[str]:
    """The book's pre-processing: split, then drop empty and whitespace-only pieces.

    >>> split_words("Hello, world. Is this-- a test?")
    ['Hello', ',', 'world', '.', 'Is', 'this', '--', 'a', 'test', '?']
    """
    return [piece.strip() for piece in re.split(SPLIT_PATTERN, text) if piece.strip()]


class SimpleTokenizer:
    """Maps words and punctuation to ids with a vocabulary ``{token: id}``.

    Args:
        vocab: token string -> id.
        strict: if True, a word missing from the vocabulary raises KeyError (the book's V1);
            otherwise it becomes ``<|unk|>`` (V2), which the vocabulary must then contain.
    """

    def __init__(self, vocab: dict[str, int], strict: bool = False) -> None:
        self.str_to_int = dict(vocab)
        self.int_to_str = {i: s for s, i in self.str_to_int.items()}
        if len(self.int_to_str) != len(self.str_to_int):
            raise ValueError("the vocabulary gives the same id to two tokens")
        self.strict = strict

    @classmethod
    def from_text(cls, text: str, strict: bool = False) -> "SimpleTokenizer":
        """Build the book's vocabulary from ``text``: its sorted distinct tokens, then ``<|endoftext|>`` and ``<|unk|>``."""
        tokens = sorted(set(split_words(text)) - {ENDOFTEXT, UNKNOWN})
        tokens += [ENDOFTEXT, UNKNOWN]
        return cls({token: i for i, token in enumerate(tokens)}, strict=strict)

    @property
    def n_vocab(self) -> int:
        return len(self.str_to_int)

    def encode(self, text: str) -> list[int]:
        """Text -> ids; unknown words become ``<|unk|>`` (or raise KeyError when ``strict``)."""
        ids = []
        for token in split_words(text):
            i = self.str_to_int.get(token)
            if i is None:
                if self.strict or UNKNOWN not in self.str_to_int:
                    raise KeyError(
                        f"{token!r} is not in the vocabulary"
                        + ("" if self.strict else f" and the vocabulary has no {UNKNOWN} token")
                    )
                i = self.str_to_int[UNKNOWN]
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text: tokens joined by spaces, minus the space before punctuation."""
        words = []
        for i in ids:
            try:
                words.append(self.int_to_str[i])
            except (KeyError, TypeError):
                raise KeyError(f"token id {i!r} is not in the vocabulary (ids 0..{len(self.int_to_str) - 1})") from None
        return _SPACE_BEFORE_PUNCT.sub(r"\1", " ".join(words))


class SimpleTokenizerV1(SimpleTokenizer):
    """The book's ``SimpleTokenizerV1(vocab)``: a word outside the vocabulary raises KeyError."""

    def __init__(self, vocab: dict[str, int]) -> None:
        super().__init__(vocab, strict=True)


class SimpleTokenizerV2(SimpleTokenizer):
    """The book's ``SimpleTokenizerV2(vocab)``: a word outside the vocabulary becomes ``<|unk|>``."""

    def __init__(self, vocab: dict[str, int]) -> None:
        super().__init__(vocab, strict=False)
