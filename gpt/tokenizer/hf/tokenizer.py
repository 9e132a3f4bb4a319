"""``HFTokenizer``: a ``tokenizer.json`` (the Hugging Face ``tokenizers`` format) read in pure Python.

The file describes a pipeline of five stages, one component each, and encoding runs them in the
format's order:

1. added tokens are cut out of the raw text (:mod:`.added_tokens`);
2. each remaining stretch is normalized (:mod:`.normalizers`), and added tokens marked
   ``normalized`` are cut out of the result;
3. the pre-tokenizer splits each stretch into pieces (:mod:`.pre_tokenizers`);
4. the model turns each piece into ids (:mod:`.models`: BPE, WordPiece);
5. the post-processor adds the special tokens around the text (:mod:`.post_processors`).

Decoding maps ids to token strings and hands them to the decoder (:mod:`.decoders`). Every part the
file names must be one this reader knows, with options it supports; anything else is a ValueError
naming the component and the file, so a tokenizer that loads encodes exactly as ``tokenizers`` does.

The file's ``truncation`` and ``padding`` settings are run-time options of the ``tokenizers``
library, not part of tokenization: :meth:`HFTokenizer.encode` neither cuts nor pads (cut to the
model's context length yourself).

Where the ids can still differ: character classes come from Python's and ``regex``'s Unicode
tables, which are newer than those compiled into ``tokenizers`` (its BERT punctuation and control
classes are about Unicode 9). Measured on every code point below U+30000 with all-MiniLM-L6-v2's
file: 540 characters assigned or re-classified since then (none in the scripts such a vocabulary
covers) are treated differently; byte-level files agreed on all of 20,000 random strings over the
whole code space. Metaspace's ``prepend_scheme: "first"`` asks whether a piece starts at offset 0
of the original text; here that is the text's first stretch, unless the normalizer removed its
first character (as ``Strip`` does), which covers the pipelines models ship.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Collection, Iterable, Literal

from gpt.atomic import write_text_atomic
from gpt.tokenizer.hf import decoders, models, normalizers, post_processors, pre_tokenizers
from gpt.tokenizer.hf.added_tokens import AddedToken, AddedVocabulary
from gpt.tokenizer.pretokenize import replace_lone_surrogates

FILE_NAME = "tokenizer.json"


class HFTokenizer:
    """A tokenizer read from a ``tokenizer.json``; encodes and decodes as the ``tokenizers`` library.

    Make one with :meth:`from_file`. Special tokens (added tokens marked ``special``) follow
    tiktoken's rules, as :class:`~gpt.tokenizer.BPETokenizer` does: see :meth:`encode`.
    """

    def __init__(self, spec: dict, where: str = FILE_NAME) -> None:
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
            raise ValueError(f"{where}: not a tokenizer.json (no 'model' object)")
        self.where = where
        self._spec = spec
        self.normalizer = normalizers.build(spec.get("normalizer"), where)
        self.pre_tokenizer = pre_tokenizers.build(spec.get("pre_tokenizer"), where)
        byte_level = self.pre_tokenizer is not None and self.pre_tokenizer.byte_level
        self.model = models.build(spec["model"], where, byte_level)
        self.post_processor = post_processors.build(spec.get("post_processor"), where)
        self.decoder = decoders.build(spec.get("decoder"), where)
        try:
            tokens = [AddedToken.from_json(t) for t in spec.get("added_tokens") or []]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: an entry of added_tokens is malformed ({e})") from None
        self._set_added(tokens)

    def _set_added(self, tokens: list[AddedToken]) -> None:
        self.added = AddedVocabulary(tokens, self.normalizer)
        self._id_to_token = {i: t for t, i in self.model.vocab.items()}
        # (as in the tokenizers library, a normalized added token reads back in its normalized form)
        norm = self.normalizer
        self._id_to_token.update((t.id, norm(t.content) if t.normalized and norm is not None else t.content)
                                 for t in tokens)
        self._token_to_id = dict(self.model.vocab)
        self._token_to_id.update((t.content, t.id) for t in tokens)

    # ------------------------------------------------------------------ files
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "HFTokenizer":
        """Read ``path``: a ``tokenizer.json``, or a folder (a Hugging Face model folder) holding one."""
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        if not path.is_file():
            raise FileNotFoundError(2, "No such file (a tokenizer.json or a folder holding one)", str(path))
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not a JSON file ({e})") from None
        return cls(spec, str(path))

    @classmethod
    def from_str(cls, text: str) -> "HFTokenizer":
        return cls(json.loads(text), "<string>")

    def to_json(self) -> dict:
        """The ``tokenizer.json`` object (with the added tokens as they are now)."""
        spec = dict(self._spec)
        spec["added_tokens"] = [t.to_json() for t in sorted(self.added.tokens, key=lambda t: t.id)]
        return spec

    def save(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` (to ``path``, or into ``path`` if it is a folder), atomically."""
        path = Path(path)
        if path.is_dir():
            path = path / FILE_NAME
        write_text_atomic(path, json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n")

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        """Number of ids (largest id + 1), added tokens included: the rows a model's embedding needs."""
        return max(self._id_to_token, default=-1) + 1

    n_vocab = vocab_size  # BPETokenizer's (tiktoken's) name

    def token_to_id(self, token: str) -> int | None:
        return self._token_to_id.get(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._id_to_token.get(token_id)

    def get_vocab(self) -> dict[str, int]:
        return dict(self._token_to_id)

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token string -> id (added tokens marked special)."""
        return dict(self.added.special)

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self.added.special)

    @property
    def eot_token(self) -> int:
        for name in ("<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "[SEP]"):
            if name in self.added.special:
                return self.added.special[name]
        raise ValueError(f"{self.where}: no end-of-text special token found")

    def add_tokens(self, tokens: Iterable[str], special: bool = False) -> list[int]:
        """Add tokens (strings) after the current ids; returns their ids (existing ones keep theirs).

        New tokens are matched in the raw text before anything else (``normalized`` false), like the
        ``tokenizers`` library's ``add_special_tokens``; non-special ones are always matched,
        special ones under the ``allowed_special`` rules of :meth:`encode`.
        """
        current = {t.content: t for t in self.added.tokens}
        ids = []
        next_id = self.vocab_size
        for s in tokens:
            if not isinstance(s, str) or not s:
                raise ValueError(f"added tokens must be non-empty strings, got {s!r}")
            if s in current:
                ids.append(current[s].id)
                continue
            token_id = self._token_to_id.get(s)  # a token of the model's vocabulary keeps its id
            if token_id is None:
                token_id, next_id = next_id, next_id + 1
            current[s] = AddedToken(token_id, s, special=special, normalized=False)
            ids.append(token_id)
        self._set_added(list(current.values()))
        return ids

    # ------------------------------------------------------------------ encoding
    def _special_set(self, value, name: str) -> frozenset[str]:
        if value == "all":
            return frozenset(self.added.special)
        if isinstance(value, str):
            raise ValueError(f'{name} must be "all" or a set of special token strings, not the string {value!r}')
        chosen = frozenset(value)
        unknown = chosen - self.added.special.keys()
        if unknown:
            raise ValueError(f"{name} names {sorted(unknown)!r}, which this tokenizer does not have; "
                             f"its special tokens are {sorted(self.added.special)!r}")
        return chosen

    def encode(
        self,
        text: str,
        add_special_tokens: bool = True,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
        pair: str | None = None,
    ) -> list[int]:
        """Encode ``text`` (and ``pair``, a second text, for models that take two) to token ids.

        ``add_special_tokens`` runs the post-processor (``[CLS] ... [SEP]``, a ``<s>`` in front).
        Special tokens written in the text follow tiktoken's rules, as in ``BPETokenizer``: those in
        ``allowed_special`` (or all, with ``"all"``) become their ids; one in ``disallowed_special``
        (by default every special token not allowed) raises ValueError; with
        ``disallowed_special=()`` the others are encoded as ordinary text. (The ``tokenizers``
        library always matches them: that is ``allowed_special="all"``.)
        Non-special added tokens are always matched.
        """
        allowed = self._special_set(allowed_special, "allowed_special")
        if disallowed_special == "all":
            disallowed = frozenset(self.added.special) - allowed
        else:
            disallowed = self._special_set(disallowed_special, "disallowed_special")
        # Lone surrogates (not encodable as UTF-8; the library refuses them) become U+FFFD, as in BPETokenizer.
        texts = [replace_lone_surrogates(t) for t in ([text] if pair is None else [text, pair])]
        if disallowed:
            for t in texts:
                found = [(t.find(s), s) for s in disallowed if s in t]
                if found:
                    token = min(found)[1]
                    raise ValueError(
                        f"the text contains the special token {token!r}, which is disallowed; pass "
                        f"allowed_special={{{token!r}}} to encode it as a special token, or "
                        f"disallowed_special=() to encode it as ordinary text")
        skip = frozenset(self.added.special) - allowed
        encoded = [self._encode_one(t, skip) for t in texts]
        if add_special_tokens and self.post_processor is not None:
            return self.post_processor(*encoded)
        return [i for ids in encoded for i in ids]

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode with no special tokens at all: none matched, none added around (tiktoken's name)."""
        return self.encode(text, add_special_tokens=False, disallowed_special=())

    def _encode_one(self, text: str, skip: frozenset[str]) -> list[int]:
        ids: list[int] = []
        for stretch, token, start in self.added.raw.split(text, skip):
            if token is not None:
                ids.append(token.id)
                continue
            at_start = start == 0
            if self.normalizer is not None:
                normalized = self.normalizer(stretch)
                if at_start and stretch and not self.normalizer(stretch[0]):
                    at_start = False  # the first character was removed (Strip, control characters)
            else:
                normalized = stretch
            for piece, token2, start2 in self.added.normalized.split(normalized, skip):
                if token2 is not None:
                    ids.append(token2.id)
                elif piece:
                    if self.pre_tokenizer is None:
                        pieces = [piece]
                    else:
                        pieces, _ = self.pre_tokenizer.run([piece], at_start and start2 == 0)
                    if pieces:
                        ids += self.model.encode(pieces)
        return ids

    def clear_cache(self) -> None:
        """Forget the model's remembered piece encodings."""
        self.model.clear_cache()

    # ------------------------------------------------------------------ decoding
    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """Token ids -> text, through the file's decoder (token strings joined by spaces without one).

        ``skip_special_tokens`` leaves special tokens out. An id that is not in the vocabulary is a
        ValueError (the ``tokenizers`` library silently drops it).
        """
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        tokens = []
        special = self.added.special
        for i in ids:
            t = self._id_to_token.get(i)
            if t is None:
                from gpt.tokenizer.bpe import UnknownTokenError

                raise UnknownTokenError(f"token id {i!r} is not in the vocabulary (ids 0..{self.vocab_size - 1})")
            if skip_special_tokens and t in special and special[t] == i:
                continue
            tokens.append(t)
        if self.decoder is None:
            return " ".join(tokens)
        return "".join(self.decoder.decode_chain(tokens))

    def __repr__(self) -> str:
        return (f"HFTokenizer({self.where!r}, model={type(self.model).__name__}, vocab_size={self.vocab_size}, "
                f"special_tokens={len(self.added.special)})")
