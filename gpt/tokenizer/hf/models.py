"""Models: the third stage, each pre-tokenized piece -> token ids (``tokenizer.json``'s ``model``).

``BPE`` runs the merge loop of :mod:`gpt.tokenizer.merge` (the one ``BPETokenizer`` uses, with its
piece cache and NumPy batch merge) under the ``tokenizers`` rule: a pair merges only if it is in the
file's merge list, and the earlier its line, the sooner. A piece starts as one token per character
(per byte for byte-level files: the model then reads the piece's UTF-8 bytes, see
:mod:`gpt.tokenizer.hf.pre_tokenizers`). A character that is not in the vocabulary becomes its
``<0xNN>`` byte tokens (``byte_fallback``), else the unknown token (consecutive ones fused into one
with ``fuse_unk``), else it is dropped, as the ``tokenizers`` library does.

``WordPiece`` (BERT) takes the longest vocabulary entry at the start of the word, then the longest
``##``-prefixed entry at the start of the rest, and so on; a word with a part that matches nothing
(or longer than ``max_input_chars_per_word``) is one unknown token.
"""
from __future__ import annotations

import numpy as np
import regex

from gpt.tokenizer.gpt2 import bytes_to_unicode
from gpt.tokenizer.merge import MergeRules, PieceCache, pack_ids


class Model:
    vocab: dict[str, int]

    def encode(self, pieces: list[str]) -> list[int]:
        raise NotImplementedError

    def clear_cache(self) -> None:
        pass


class BPE(Model):
    def __init__(self, spec: dict, where: str, byte_level: bool = False) -> None:
        if spec.get("dropout") not in (None,):
            raise ValueError(f"{where}: BPE with dropout={spec['dropout']} is random; only dropout null is supported")
        self.vocab: dict[str, int] = dict(spec.get("vocab") or {})
        self.unk_token = spec.get("unk_token")
        self.prefix = spec.get("continuing_subword_prefix") or ""
        self.suffix = spec.get("end_of_word_suffix") or ""
        self.fuse_unk = bool(spec.get("fuse_unk", False))
        self.byte_fallback = bool(spec.get("byte_fallback", False))
        self.ignore_merges = bool(spec.get("ignore_merges", False))
        self.byte_level = byte_level
        n_ids = max(self.vocab.values(), default=-1) + 1
        merges = []
        for k, m in enumerate(spec.get("merges") or []):
            if isinstance(m, str):
                parts = m.split(" ")
                if len(parts) != 2:
                    raise ValueError(f"{where}: BPE merge {k} {m!r} is not two tokens separated by one space")
            else:
                parts = list(m)
                if len(parts) != 2:
                    raise ValueError(f"{where}: BPE merge {k} {m!r} is not a pair of tokens")
            a, b = parts
            joined = a + b[len(self.prefix):] if self.prefix else a + b
            try:
                merges.append((self.vocab[a], self.vocab[b], self.vocab[joined]))
            except KeyError as e:
                raise ValueError(f"{where}: BPE merge {k} {m!r} uses the token {e.args[0]!r}, which is not in the vocabulary") from None
        self.rules = MergeRules.from_merges(merges, n_ids)
        self.unk_id = self.vocab.get(self.unk_token) if self.unk_token is not None else None
        self._byte_tokens = [self.vocab.get(f"<0x{b:02X}>") for b in range(256)]
        # The starting symbol of each byte (byte-level files): its printable character's id.
        chars = bytes_to_unicode()
        self._byte_char = [chars[b] for b in range(256)]
        byte_ids = [self.vocab.get(chars[b]) for b in range(256)]
        self._simple_bytes = byte_level and not self.prefix and not self.suffix and None not in byte_ids
        self._byte_id_array = np.array([-1 if i is None else i for i in byte_ids], dtype=np.int64)
        self._byte_ids = byte_ids
        self._subsplit = self._sentencepiece_subsplit(merges)
        self.clear_cache()

    def _sentencepiece_subsplit(self, merges) -> "regex.Pattern | None":
        """A split of SentencePiece-style words that changes no id, or None.

        Without a pre-tokenizer (Llama 2, Gemma) a whole text is one word, merged as one long
        sequence. If no merge ever makes a token with "▁" right after another character, no merge
        can join the end of a word part to a following "▁...": the parts ``▁*[^▁]+`` merge
        independently, and the piece cache and the NumPy batch merge apply to them.
        """
        if self.byte_level or self.prefix or self.suffix or "\u2581" not in self.vocab:
            return None
        names = {i: t for t, i in self.vocab.items()}
        crossing = regex.compile("[^\u2581]\u2581")
        if any(crossing.search(names[c]) for _, _, c in merges):
            return None
        return regex.compile("\u2581*[^\u2581]+|\u2581+")

    # A piece's starting symbols: the tokenizers library's BPE "merge_word", character by character.
    def _symbols(self, piece: str) -> list[str]:
        if self.byte_level:
            return [self._byte_char[b] for b in piece.encode("utf-8")]
        return list(piece)

    def _start(self, piece: str) -> list[int]:
        if self._simple_bytes:
            return list(map(self._byte_ids.__getitem__, piece.encode("utf-8")))
        symbols = self._symbols(piece)
        if not self.prefix and not self.suffix:
            ids = list(map(self.vocab.get, symbols))
            if None not in ids:
                return ids
        return self._start_slow(symbols)

    def _start_slow(self, symbols: list[str]) -> list[int]:
        vocab, out = self.vocab, []
        unk = None  # a pending unknown token (its id), waiting in case the next one fuses with it
        last = len(symbols) - 1
        for k, s in enumerate(symbols):
            if k > 0 and self.prefix:
                s = self.prefix + s
            if k == last and self.suffix:
                s = s + self.suffix
            i = vocab.get(s)
            if i is not None:
                if unk is not None:
                    out.append(unk)
                    unk = None
                out.append(i)
                continue
            if self.byte_fallback:
                fallback = [self._byte_tokens[b] for b in s.encode("utf-8")]
                if None not in fallback:
                    out += fallback  # (a pending unknown token stays pending, as in tokenizers)
                    continue
            if self.unk_token is not None:
                if self.unk_id is None:
                    raise ValueError(f"the unknown token {self.unk_token!r} is not in the BPE vocabulary")
                if unk is not None and not self.fuse_unk:
                    out.append(unk)
                unk = self.unk_id
        if unk is not None:
            out.append(unk)
        return out

    def _start_many(self, pieces: list[str]) -> tuple[np.ndarray, np.ndarray]:
        data = [p.encode("utf-8") for p in pieces]
        lengths = np.fromiter(map(len, data), dtype=np.int64, count=len(data))
        tokens = self._byte_id_array[np.frombuffer(b"".join(data), dtype=np.uint8)]
        return tokens, lengths

    def clear_cache(self) -> None:
        known = {}
        if self.ignore_merges:  # a piece that is a whole token is that token, merges or not
            if self.byte_level:
                from gpt.tokenizer.gpt2 import unicode_to_bytes

                table = unicode_to_bytes()
                for token, i in self.vocab.items():
                    if all(c in table for c in token):
                        try:
                            known[bytes(table[c] for c in token).decode("utf-8")] = pack_ids([i])
                        except UnicodeDecodeError:
                            pass
            else:
                known = {t: pack_ids([i]) for t, i in self.vocab.items()}
        self._cache = PieceCache(known, self.rules, self._start, self._start_many if self._simple_bytes else None)

    def encode(self, pieces: list[str]) -> list[int]:
        if self._subsplit is not None:
            pieces = [part for p in pieces for part in self._subsplit.findall(p)]
        cache = self._cache
        ids = cache.encode(pieces)
        if cache.full():
            self.clear_cache()
        return ids


class WordPiece(Model):
    def __init__(self, spec: dict, where: str, byte_level: bool = False) -> None:
        if byte_level:
            raise ValueError(f"{where}: a WordPiece model after a ByteLevel pre-tokenizer is not supported by this reader")
        self.vocab = dict(spec["vocab"])
        self.unk_token = spec.get("unk_token", "[UNK]")
        self.prefix = spec.get("continuing_subword_prefix", "##")
        self.max_chars = spec.get("max_input_chars_per_word", 100)
        self.clear_cache()

    def clear_cache(self) -> None:
        self._cache: dict[str, list[int]] = {}

    def _unk(self) -> list[int]:
        try:
            return [self.vocab[self.unk_token]]
        except KeyError:
            raise ValueError(f"the WordPiece unknown token {self.unk_token!r} is not in the vocabulary") from None

    def word(self, word: str) -> list[int]:
        if len(word) > self.max_chars:
            return self._unk()
        vocab, out, start, n = self.vocab, [], 0, len(word)
        while start < n:
            end, found = n, None
            while start < end:
                sub = word[start:end] if start == 0 else self.prefix + word[start:end]
                found = vocab.get(sub)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return self._unk()
            out.append(found)
            start = end
        return out

    def encode(self, pieces: list[str]) -> list[int]:
        cache, out = self._cache, []
        for p in pieces:
            ids = cache.get(p)
            if ids is None:
                ids = cache[p] = self.word(p)
            out += ids
        if len(cache) > 1 << 16:
            self.clear_cache()
        return out


class WordLevel(Model):
    def __init__(self, spec: dict, where: str, byte_level: bool = False) -> None:
        if byte_level:
            raise ValueError(f"{where}: a WordLevel model after a ByteLevel pre-tokenizer is not supported by this reader")
        self.vocab = dict(spec["vocab"])
        self.unk_token = spec.get("unk_token")

    def encode(self, pieces: list[str]) -> list[int]:
        get, out = self.vocab.get, []
        for p in pieces:
            i = get(p)
            if i is None:
                i = get(self.unk_token) if self.unk_token is not None else None
                if i is None:
                    raise ValueError(f"the word {p!r} is not in the WordLevel vocabulary and there is no unknown token")
            out.append(i)
        return out


def build(spec: dict, where: str, byte_level: bool) -> Model:
    kind = spec.get("type")
    if kind is None:  # files from old tokenizers versions omit the type of a BPE model
        kind = "BPE" if "merges" in spec else "WordPiece" if "continuing_subword_prefix" in spec else None
    models = {"BPE": BPE, "WordPiece": WordPiece, "WordLevel": WordLevel}
    if kind not in models:
        raise ValueError(f"{where}: the model {kind!r} is not supported by this reader (BPE, WordPiece, WordLevel are)")
    return models[kind](spec, where, byte_level)
