"""Byte-level byte-pair encoding (BPE), the tokenizer of GPT-2 (book chapter 2.5), without tiktoken.

A token is a byte string. Ids 0..255 are the 256 single bytes, so any text (any byte string, in
fact) can be encoded and there is no unknown token. Merge ``k`` joins two existing tokens into a new
one with id ``256 + k``; the lower a merge's id, the earlier it was learned and the sooner it is
applied. Special tokens such as ``<|endoftext|>`` get the ids after the merges.

Encoding a text, as tiktoken does it:

1. split out the allowed special tokens (a disallowed one in the text is an error);
2. pre-split the rest with the regex ``pattern`` (:mod:`gpt.tokenizer.pretokenize`); merges never
   cross these pieces;
3. for each piece's UTF-8 bytes: if the whole piece is a token, that is its id; otherwise start from
   single bytes and repeatedly join the adjacent pair whose joined bytes form the lowest-id token
   (leftmost on ties) until no adjacent pair forms a token.

Speed (beyond the book): step 3 runs once per *distinct* piece of a text and is remembered in a
bounded cache; every token that is valid UTF-8 is in that cache from the start. When a call brings
many new pieces (a long text, cold cache), they are merged together in NumPy rounds
(:mod:`gpt.tokenizer.batch`); otherwise one by one: short pieces with a list-based loop, long
pieces with a heap and a linked list, so even a single piece of a million bytes takes O(n log n)
time. All three give the same tokens; they live in :mod:`gpt.tokenizer.merge`, shared with the
``tokenizer.json`` reader (:mod:`gpt.tokenizer.hf`).
"""
from __future__ import annotations

import json
import os
import sys
import unicodedata
from pathlib import Path
from typing import Collection, Iterable, Literal

import numpy as np
import regex

from gpt.atomic import write_text_atomic
from gpt.tokenizer.merge import MergeRules, PieceCache, pack_ids, unpack_ids
from gpt.tokenizer.pretokenize import GPT2_PATTERN, SURROGATE, Splitter, replace_lone_surrogates

_BYTE = [bytes((b,)) for b in range(256)]  # byte value -> the one-byte bytes object
FORMAT_HEADER = "gpt-bpe v1"


class UnknownTokenError(KeyError, ValueError):
    """A token id that is not in the vocabulary (a KeyError like tiktoken's, and a ValueError)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def readable(token: bytes) -> str:
    """A token's bytes as a one-line string: UTF-8 where valid, ``\\xNN`` for other bytes, and
    control/format/whitespace characters other than the plain space escaped (``\\n``, ``\\t``, ``\\u200b``)."""
    out = []
    for ch in token.decode("utf-8", errors="backslashreplace"):
        if ch == " " or (not ch.isspace() and unicodedata.category(ch)[0] not in "CZ"):
            out.append(ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


class BPETokenizer:
    """A byte-level BPE tokenizer that encodes like tiktoken.

    Make one with :meth:`train`, :meth:`load` or :meth:`from_gpt2_files`, then call :meth:`encode` /
    :meth:`decode` as the book does with ``tiktoken.get_encoding("gpt2")``.

    Args:
        merges: ``(left_id, right_id)`` pairs in rank order; merge ``k`` makes token ``256 + k``.
        special_tokens: special token string -> id (ids after the merges).
        pattern: the pre-split regex (``regex`` syntax).
        byte_ids: ``byte_ids[b]`` is the id of the single byte ``b`` (a permutation of 0..255;
            default: the byte value itself). GPT-2 orders its byte tokens differently.
        added_tokens: ordinary (not special) tokens added after training, string -> id: each is
            always cut out of the text whole, before the pre-split (see :meth:`add_tokens`).
    """

    def __init__(
        self,
        merges: Iterable[tuple[int, int]],
        special_tokens: dict[str, int] | None = None,
        pattern: str = GPT2_PATTERN,
        byte_ids: list[int] | None = None,
        added_tokens: dict[str, int] | None = None,
    ) -> None:
        byte_ids = list(range(256)) if byte_ids is None else [int(i) for i in byte_ids]
        if sorted(byte_ids) != list(range(256)):
            raise ValueError("byte_ids must give each of the 256 bytes a distinct id in 0..255")
        vocab: list[bytes] = [b""] * 256
        for b, i in enumerate(byte_ids):
            vocab[i] = _BYTE[b]
        self._merges: list[tuple[int, int]] = []
        for k, pair in enumerate(merges):
            a, b = int(pair[0]), int(pair[1])
            new = 256 + k
            if not (0 <= a < new and 0 <= b < new):
                raise ValueError(f"merge {k} ({a}, {b}) uses an id that is not defined before token {new}")
            vocab.append(vocab[a] + vocab[b])
            self._merges.append((a, b))
        self._vocab = vocab
        self._ranks: dict[bytes, int] = {tok: i for i, tok in enumerate(vocab)}
        if len(self._ranks) != len(vocab):
            seen: dict[bytes, int] = {}
            for i, tok in enumerate(vocab):
                if tok in seen:
                    raise ValueError(f"tokens {seen[tok]} and {i} have the same bytes {tok!r}; token bytes must be unique")
                seen[tok] = i

        special_tokens = dict(special_tokens or {})
        for s, i in special_tokens.items():
            if not isinstance(s, str) or not s:
                raise ValueError(f"special tokens must be non-empty strings, got {s!r}")
            if not isinstance(i, int) or i < len(vocab):
                raise ValueError(f"special token {s!r} has id {i}; special ids must be integers >= {len(vocab)}")
        if len(set(special_tokens.values())) != len(special_tokens):
            raise ValueError("two special tokens share an id")
        self._special = special_tokens
        self._decoder: dict[int, bytes] = dict(enumerate(vocab))
        self._decoder.update((i, s.encode("utf-8")) for s, i in special_tokens.items())
        self._added: dict[str, int] = {}
        for s, i in (added_tokens or {}).items():
            if not isinstance(s, str) or not s:
                raise ValueError(f"added tokens must be non-empty strings, got {s!r}")
            if s in special_tokens:
                raise ValueError(f"{s!r} is both a special and an added token")
            known = self._ranks.get(s.encode("utf-8"))
            if not isinstance(i, int) or (i != known and (i < len(vocab) or i in self._decoder)):
                raise ValueError(f"added token {s!r} has id {i}; it must be its own token's id or a new id >= {len(vocab)}")
            self._added[s] = i
            self._decoder[i] = s.encode("utf-8")
        self._added_regex = self._alternation(self._added)
        self._byte_ids = byte_ids
        self.pattern = pattern
        self._splitter = Splitter(pattern)
        # Every token that is valid UTF-8 text, as a one-token piece: the whole-piece lookup.
        # Cached ids are stored packed (see merge.pack_ids): joining bytes is faster than joining tuples.
        self._token_pieces: dict[str, bytes] = {}
        for i, tok in enumerate(vocab):
            try:
                self._token_pieces[tok.decode("utf-8")] = i.to_bytes(4, sys.byteorder)  # = pack_ids([i])
            except UnicodeDecodeError:
                pass
        # tiktoken's merge rule on token ids (built on first use: about 0.2 s for GPT-2)
        self._rules = MergeRules.from_token_bytes(vocab, self._ranks)
        self._byte_table = bytes(byte_ids)  # bytes.translate table: byte -> its token id
        self._special_regex_cache: dict[frozenset, regex.Pattern] = {}
        self.clear_cache()

    # ------------------------------------------------------------------ properties
    @property
    def n_vocab(self) -> int:
        """Number of ids (largest id + 1), special and added tokens included."""
        return max([len(self._vocab) - 1, *self._special.values(), *self._added.values()]) + 1

    @property
    def eot_token(self) -> int:
        """The id of ``<|endoftext|>``."""
        try:
            return self._special["<|endoftext|>"]
        except KeyError:
            raise ValueError("this tokenizer has no <|endoftext|> special token (train it with special_tokens=...)") from None

    @property
    def special_tokens(self) -> dict[str, int]:
        """Special token string -> id (a copy)."""
        return dict(self._special)

    @property
    def special_tokens_set(self) -> set[str]:
        return set(self._special)

    @property
    def merges(self) -> list[tuple[int, int]]:
        """``(left_id, right_id)`` pairs in rank order; merge ``k`` made token ``256 + k``."""
        return list(self._merges)

    @property
    def mergeable_ranks(self) -> dict[bytes, int]:
        """Token bytes -> id for all non-special tokens (what ``tiktoken.Encoding`` calls mergeable_ranks)."""
        return dict(self._ranks)

    def __repr__(self) -> str:
        return f"BPETokenizer(n_vocab={self.n_vocab}, merges={len(self._merges)}, special_tokens={list(self._special)})"

    # ------------------------------------------------------------------ encoding
    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ``text`` with no special-token handling: ``"<|endoftext|>"`` is just seven pieces of text.

        Lone surrogates (not encodable as UTF-8) are replaced by U+FFFD first, as tiktoken does.
        Added (non-special) tokens are cut out first: they are ordinary vocabulary.
        """
        text = replace_lone_surrogates(text)
        if self._added_regex is None or not any(s in text for s in self._added):
            return self._encode_pieces(self._splitter.split(text))
        ids: list[int] = []
        start = 0
        for m in self._added_regex.finditer(text):
            ids += self._encode_pieces(self._splitter.split(text[start : m.start()]))
            ids.append(self._added[m.group()])
            start = m.end()
        ids += self._encode_pieces(self._splitter.split(text[start:]))
        return ids

    # ------------------------------------------------------------------ extending (book chapter 5's bonus)
    def add_tokens(self, tokens: Iterable[str], special: bool = False) -> list[int]:
        """Add tokens to the vocabulary (in place) and return their ids.

        A new string gets the next free id (``n_vocab``), so a model needs
        :func:`gpt.tokenizer.extend.resize_token_embeddings` to match. ``special=True`` adds special
        tokens (``<|user|>``), which :meth:`encode` matches only when allowed; ordinary added tokens
        are always cut out of the text whole, before the pre-split (a string that already is one
        token keeps that id and is then always encoded as that one token). A string already added
        keeps its id.
        """
        ids = []
        for s in tokens:
            if not isinstance(s, str) or not s:
                raise ValueError(f"added tokens must be non-empty strings, got {s!r}")
            if s in self._special or s in self._added:
                ids.append(self._special.get(s, self._added.get(s)))
                continue
            known = self._ranks.get(s.encode("utf-8"))
            token_id = known if known is not None and not special else self.n_vocab
            if special:
                self._special[s] = token_id
            else:
                self._added[s] = token_id
            self._decoder[token_id] = s.encode("utf-8")
            ids.append(token_id)
        self._added_regex = self._alternation(self._added)
        self._special_regex_cache.clear()
        return ids

    def add_special_tokens(self, tokens: Iterable[str]) -> list[int]:
        """``add_tokens(tokens, special=True)``."""
        return self.add_tokens(tokens, special=True)

    @property
    def added_tokens(self) -> dict[str, int]:
        """Ordinary tokens added after training, string -> id (a copy)."""
        return dict(self._added)

    @staticmethod
    def _alternation(tokens) -> regex.Pattern | None:
        """A regex that finds the leftmost of ``tokens``, the longest one where several start there."""
        if not tokens:
            return None
        return regex.compile("|".join(regex.escape(s) for s in sorted(tokens, key=lambda s: (-len(s), s))))

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encode ``text`` to token ids, with tiktoken's special-token rules.

        Special tokens in ``allowed_special`` (or all of them, with ``"all"``) that appear in the text
        become their ids. A token in ``disallowed_special`` (by default every special token that is
        not allowed) appearing in the text raises ValueError; pass ``disallowed_special=()`` to encode
        such text as ordinary text instead.
        """
        allowed = self._special_set(allowed_special, "allowed_special")
        if disallowed_special == "all":
            disallowed = self.special_tokens_set - allowed
        else:
            disallowed = self._special_set(disallowed_special, "disallowed_special")
        if disallowed:
            found = [(text.find(s), s) for s in disallowed if s in text]
            if found:
                token = min(found)[1]
                raise ValueError(
                    f"the text contains the special token {token!r}, which is disallowed; pass "
                    f"allowed_special={{{token!r}}} to encode it as a special token, or "
                    f"disallowed_special=() to encode it as ordinary text"
                )
        if not allowed or not any(s in text for s in allowed):
            return self.encode_ordinary(text)
        ids: list[int] = []
        start = 0
        for m in self._special_regex(frozenset(allowed)).finditer(text):
            ids += self.encode_ordinary(text[start : m.start()])
            ids.append(self._special[m.group()])
            start = m.end()
        ids += self.encode_ordinary(text[start:])
        return ids

    def encode_bytes(self, data: bytes) -> list[int]:
        """Encode raw bytes that need not be valid UTF-8; ``decode_bytes`` gives them back exactly.

        Valid UTF-8 encodes exactly as ``encode_ordinary(data.decode())``. For pre-splitting, each
        invalid byte counts as one symbol character (it is decoded with ``surrogateescape``); in
        such data, added tokens (:meth:`add_tokens`) are not looked for.
        """
        data = bytes(data)
        try:
            return self.encode_ordinary(data.decode("utf-8"))
        except UnicodeDecodeError:
            pass
        text = data.decode("utf-8", "surrogateescape")
        pieces = self._splitter.split(text)
        distinct = set(pieces)
        escaped = {p for p in distinct if SURROGATE.search(p)}
        # Pieces holding escaped bytes stay out of the shared cache (encode_ordinary reads the same
        # strings as U+FFFD), so they are encoded into a dictionary local to this call.
        local = {p: pack_ids(self._encode_piece_uncached(p.encode("utf-8", "surrogateescape"))) for p in escaped}
        plain = distinct - escaped
        cache = self._cache
        local.update((p, cache[p]) for p in plain)
        if cache.full():
            self.clear_cache()
        return unpack_ids(b"".join(map(local.__getitem__, pieces)))

    def bpe(self, piece: bytes) -> list[int]:
        """BPE proper of one piece (its bytes), without the whole-piece lookup :meth:`encode` does first."""
        return self._rules.merge(list(piece.translate(self._byte_table)))

    def _encode_piece_uncached(self, piece: bytes) -> list[int]:
        i = self._ranks.get(piece)
        return [i] if i is not None else self.bpe(piece)

    def _start(self, piece: str) -> list[int]:
        """A piece's starting token ids: its UTF-8 bytes, each as its byte token."""
        return list(piece.encode("utf-8").translate(self._byte_table))

    def _start_many(self, pieces: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The starting ids of many pieces end to end, and each piece's length."""
        data = [p.encode("utf-8") for p in pieces]
        lengths = np.fromiter(map(len, data), dtype=np.int64, count=len(data))
        tokens = np.frombuffer(b"".join(data).translate(self._byte_table), dtype=np.uint8).astype(np.int64)
        return tokens, lengths

    def _encode_pieces(self, pieces: list[str]) -> list[int]:
        """Pre-split pieces -> ids; BPE runs once per distinct piece not yet in the cache."""
        cache = self._cache  # a local reference: clear_cache() in another thread swaps in a new one
        ids = cache.encode(pieces)
        if cache.full():
            self.clear_cache()
        return ids

    def clear_cache(self) -> None:
        """Forget the remembered BPE results of multi-token pieces (the token lookup stays)."""
        self._cache = PieceCache(self._token_pieces, self._rules, self._start, self._start_many)

    def _special_set(self, value, name: str) -> set[str]:
        if value == "all":
            return self.special_tokens_set
        if isinstance(value, str):
            raise ValueError(f'{name} must be "all" or a set of special token strings, not the string {value!r}')
        chosen = set(value)
        unknown = chosen - self.special_tokens_set
        if unknown:
            raise ValueError(
                f"{name} names {sorted(unknown)!r}, which this tokenizer does not have; "
                f"its special tokens are {sorted(self._special)!r}"
            )
        return chosen

    def _special_regex(self, tokens: frozenset) -> regex.Pattern:
        pat = self._special_regex_cache.get(tokens)
        if pat is None:
            pat = self._alternation(tokens)  # longest first: a special token containing another one wins
            self._special_regex_cache[tokens] = pat
        return pat

    # ------------------------------------------------------------------ decoding
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Token ids -> the bytes they stand for."""
        if hasattr(ids, "tolist"):  # NumPy arrays: plain ints are faster dictionary keys
            ids = ids.tolist()
        elif not isinstance(ids, (list, tuple)):
            ids = list(ids)
        try:
            return b"".join(map(self._decoder.__getitem__, ids))
        except (KeyError, TypeError):
            for i in ids:
                self.decode_single_token_bytes(i)
            raise

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """Token ids -> text. Bytes that are not valid UTF-8 become U+FFFD (``errors="replace"``)."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        """One token id -> its bytes; UnknownTokenError (a KeyError and ValueError) if it is not an id."""
        try:
            return self._decoder[token]
        except (KeyError, TypeError):
            raise UnknownTokenError(f"token id {token!r} is not in the vocabulary (ids 0..{self.n_vocab - 1})") from None

    # ------------------------------------------------------------------ inspection
    def token_str(self, token: int) -> str:
        """A readable one-line form of a token (see :func:`readable`)."""
        return readable(self.decode_single_token_bytes(token))

    def describe_merges(self, limit: int | None = None) -> list[str]:
        """The learned merges in order, as lines like ``"256: ' ' + 't' -> ' t'"``."""
        lines = []
        for k, (a, b) in enumerate(self._merges[:limit]):
            lines.append(
                f"{256 + k}: {json.dumps(readable(self._vocab[a]), ensure_ascii=False)} + "
                f"{json.dumps(readable(self._vocab[b]), ensure_ascii=False)} -> "
                f"{json.dumps(readable(self._vocab[256 + k]), ensure_ascii=False)}"
            )
        return lines

    # ------------------------------------------------------------------ training
    @classmethod
    def train(
        cls,
        texts: str | Iterable[str],
        vocab_size: int,
        pattern: str = GPT2_PATTERN,
        special_tokens: Iterable[str] = ("<|endoftext|>",),
        verbose: bool | None = None,
    ) -> "BPETokenizer":
        """Learn a vocabulary of at most ``vocab_size`` ids (256 bytes + merges + special tokens) from text.

        See :mod:`gpt.tokenizer.train` for the algorithm and its tie-break rule. If the text runs out of
        pairs to merge first, training stops early with a warning. ``verbose``: True prints progress to
        stderr, False never does, None (default) prints only once training has taken over 2 seconds.
        """
        from gpt.tokenizer.train import count_pieces, learn_merges

        specials = list(special_tokens)
        for s in specials:
            if not isinstance(s, str) or not s:
                raise ValueError(f"special tokens must be non-empty strings, got {s!r}")
        if len(set(specials)) != len(specials):
            raise ValueError(f"special tokens must be distinct, got {specials!r}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise ValueError(f"vocab_size must be an integer, got {vocab_size!r}")
        minimum = 256 + len(specials)
        if vocab_size < minimum:
            raise ValueError(
                f"vocab_size {vocab_size} is too small: the 256 byte tokens and {len(specials)} special "
                f"token(s) already need {minimum}"
            )
        if isinstance(texts, str):
            texts = [texts]
        splitter = Splitter(pattern)
        counts = count_pieces(texts, splitter, specials)
        merges = learn_merges(counts, vocab_size - minimum, verbose=verbose)
        first_special = 256 + len(merges)
        return cls(merges, {s: first_special + k for k, s in enumerate(specials)}, pattern=pattern)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer as a small text file (see :meth:`load` for the format)."""
        lines = [
            FORMAT_HEADER,
            f"pattern {json.dumps(self.pattern)}",
        ]
        lines += [f"special {json.dumps(s)} {i}" for s, i in sorted(self._special.items(), key=lambda kv: kv[1])]
        lines += [f"added {json.dumps(s)} {i}" for s, i in sorted(self._added.items(), key=lambda kv: kv[1])]
        if self._byte_ids != list(range(256)):
            lines.append("bytes " + " ".join(map(str, self._byte_ids)))
        lines.append(f"merges {len(self._merges)}")
        for k, (a, b) in enumerate(self._merges):
            lines.append(f"{a} {b}\t# {256 + k} {json.dumps(readable(self._vocab[256 + k]), ensure_ascii=False)}")
        write_text_atomic(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BPETokenizer":
        """Read a file written by :meth:`save`.

        The format is UTF-8 text, one item per line::

            gpt-bpe v1
            pattern "<the pre-split regex, as a JSON string>"
            special "<|endoftext|>" 4095          (zero or more: a JSON string and its id)
            added "<|tool|>" 4096                  (zero or more: ordinary added tokens, see add_tokens)
            bytes 0 1 2 ...                        (optional: the ids of bytes 0..255; default 0..255)
            merges 3839
            32 116	# 256 " t"                     (one merge per line: left id, right id;
            ...                                    after "#": the new id and its text, for people)
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(2, "No such file", str(path))
        lines = path.read_text(encoding="utf-8").split("\n")
        if not lines or lines[0].strip() != FORMAT_HEADER:
            raise ValueError(f"{path} is not a tokenizer file saved by BPETokenizer.save (first line should be {FORMAT_HEADER!r})")
        pattern, specials, added, byte_ids, merges = GPT2_PATTERN, {}, {}, None, None
        decoder = json.JSONDecoder()
        for lineno, line in enumerate(lines[1:], start=2):
            try:
                if merges is not None:
                    body = line.split("#", 1)[0].split()
                    if not body:
                        continue
                    a, b = body
                    merges.append((int(a), int(b)))
                    continue
                key, _, rest = line.strip().partition(" ")
                if key == "pattern":
                    pattern = json.loads(rest)
                elif key in ("special", "added"):
                    name, end = decoder.raw_decode(rest)
                    (specials if key == "special" else added)[name] = int(rest[end:])
                elif key == "bytes":
                    byte_ids = [int(x) for x in rest.split()]
                elif key == "merges":
                    expected = int(rest)
                    merges = []
                elif key:
                    raise ValueError(f"unknown entry {key!r}")
            except ValueError as e:
                raise ValueError(f"{path} line {lineno}: cannot read {line!r} ({e})") from None
        if merges is None:
            raise ValueError(f"{path} has no 'merges' line; the file is incomplete")
        if len(merges) != expected:
            raise ValueError(f"{path} announces {expected} merges but has {len(merges)}; the file is truncated")
        try:
            return cls(merges, specials, pattern=pattern, byte_ids=byte_ids, added_tokens=added)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None

    @classmethod
    def from_gpt2_files(
        cls, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike, pattern: str = GPT2_PATTERN
    ) -> "BPETokenizer":
        """Load OpenAI's GPT-2 vocabulary (``encoder.json`` + ``vocab.bpe``); encodes exactly like tiktoken's "gpt2"."""
        from gpt.tokenizer.gpt2 import read_gpt2_files

        byte_ids, merges, specials = read_gpt2_files(encoder_json, vocab_bpe)
        return cls(merges, specials, pattern=pattern, byte_ids=byte_ids)

    def save_gpt2_files(self, encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike) -> None:
        """Write ``encoder.json`` + ``vocab.bpe`` in GPT-2's format, for tools that read those (the pattern is not stored)."""
        from gpt.tokenizer.gpt2 import write_gpt2_files

        write_gpt2_files(encoder_json, vocab_bpe, self._vocab, self._merges, self._special)
