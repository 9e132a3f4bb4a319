"""Sentence embeddings: one vector per text from a BERT encoder (beyond the book).

Chapter 2 embeds tokens; retrieval embeds whole sentences or paragraphs, so that texts with similar
meanings get vectors with a high cosine. A sentence-transformers model such as all-MiniLM-L6-v2
is a folder of three stages, listed in its ``modules.json``:

    0  Transformer  the encoder (config.json, model.safetensors) and its tokenizer (tokenizer.json);
                    texts are cut to ``max_seq_length`` tokens (sentence_bert_config.json)
    1  Pooling      token vectors (b, T, d) -> one vector (b, d): the mean over the real tokens, or
                    the [CLS] token's vector, ... (1_Pooling/config.json; see gpt.architectures.bert.pool)
    2  Normalize    (optional) scale each vector to length 1, so a dot product is the cosine

:class:`SentenceEncoder` reads such a folder and runs the three stages with NumPy::

    enc = SentenceEncoder.from_pretrained("all-MiniLM-L6-v2")
    vectors = enc.encode(["A cat sits outside.", "A man plays the guitar."])   # (2, 384) float32

Texts are encoded in batches sorted by length (less padding), then put back in the caller's order;
the padding mask makes a text's vector independent of what it was batched with.
"""
from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

import minigrad as mg
from gpt.architectures.bert import POOLING_MODES, BertModel, load_hf_bert, pool

# sentence-transformers' legacy pooling keys, in the order it concatenates the modes
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_MODULE_KINDS = {"Transformer": "transformer", "Pooling": "pooling", "Normalize": "normalize"}


def pooling_modes(config: dict) -> tuple[str, ...]:
    """The pooling modes of a sentence-transformers ``1_Pooling/config.json``: the new ``pooling_mode``
    key (a name or a list), or the legacy ``pooling_mode_*_tokens`` booleans (mean when none is set)."""
    if "pooling_mode" in config:
        modes = config["pooling_mode"]
        modes = (modes,) if isinstance(modes, str) else tuple(modes)
    else:
        modes = tuple(mode for key, mode in _LEGACY_POOLING_KEYS.items() if config.get(key)) or ("mean",)
    for mode in modes:
        if mode not in POOLING_MODES:
            raise ValueError(f"pooling mode {mode!r} is not supported; one of {', '.join(POOLING_MODES)}")
    if config.get("include_prompt") is False:
        raise ValueError("pooling with include_prompt=false is not supported")
    return modes


def read_modules(folder: Path) -> list[tuple[str, Path]]:
    """(kind, folder) for each stage in ``modules.json``: kind is "transformer", "pooling" or "normalize".
    A folder without modules.json is a plain Hugging Face encoder: mean pooling, no normalisation."""
    path = folder / "modules.json"
    if not path.is_file():
        return [("transformer", folder), ("pooling", folder / "1_Pooling")]
    stages = []
    for entry in sorted(json.loads(path.read_text(encoding="utf-8")), key=lambda e: e.get("idx", 0)):
        kind = _MODULE_KINDS.get(str(entry.get("type", "")).rsplit(".", 1)[-1])
        if kind is None:
            raise ValueError(f"{path}: module {entry.get('type')!r} is not supported (only Transformer, Pooling "
                             "and Normalize)")
        stages.append((kind, folder / entry.get("path", "")))
    if [k for k, _ in stages][:1] != ["transformer"]:
        raise ValueError(f"{path}: the first module must be the Transformer")
    return stages


def _load_tokenizer(folder: Path):
    from gpt.tokenizer import HFTokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the encoder's folder needs its tokenizer.json "
                                "(or pass tokenizer= to SentenceEncoder.from_pretrained)")
    return HFTokenizer.from_file(path)


class SentenceEncoder:
    """Texts -> unit (or raw) vectors through a BERT encoder, a pooling and an optional normalisation.

    ``tokenizer`` needs ``encode(text) -> list of ids`` with the special tokens added ([CLS] ... [SEP])
    and ``token_to_id(token)``: ``gpt.tokenizer.HFTokenizer`` (what :meth:`from_pretrained` reads from
    the folder's tokenizer.json) has both.
    """

    def __init__(self, model: BertModel, tokenizer, pooling: Sequence[str] = ("mean",), normalize: bool = True,
                 max_seq_length: int | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.pooling = tuple(pooling)
        self.normalize = normalize
        self.max_seq_length = min(max_seq_length or model.cfg.context_length, model.cfg.context_length)
        pad = tokenizer.token_to_id("[PAD]") if hasattr(tokenizer, "token_to_id") else None
        self.pad_id = model.cfg.pad_token_id if pad is None else pad
        # special tokens written in a text ("[SEP]") act as special tokens, as in sentence-transformers
        takes = inspect.signature(tokenizer.encode).parameters
        self._encode_options = {"allowed_special": "all"} if "allowed_special" in takes else {}

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, tokenizer=None) -> "SentenceEncoder":
        """Read a sentence-transformers folder (modules.json, config.json, model.safetensors,
        tokenizer.json, 1_Pooling/config.json, sentence_bert_config.json)."""
        folder = Path(directory)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; give the folder of a sentence-transformers model "
                                    "(it holds modules.json and model.safetensors)")
        stages = read_modules(folder)
        model = load_hf_bert(stages[0][1])
        if not isinstance(model, BertModel):
            model = model.bert                     # a BertForMaskedLM checkpoint: its encoder
        settings_path = stages[0][1] / "sentence_bert_config.json"
        settings = json.loads(settings_path.read_text(encoding="utf-8")) if settings_path.is_file() else {}
        pooling = ("mean",)
        for kind, path in stages[1:]:
            if kind == "pooling" and (path / "config.json").is_file():
                pooling = pooling_modes(json.loads((path / "config.json").read_text(encoding="utf-8")))
        normalize = any(kind == "normalize" for kind, _ in stages)
        if tokenizer is None:
            tokenizer = _load_tokenizer(stages[0][1])
        return cls(model, tokenizer, pooling, normalize, settings.get("max_seq_length"))

    @property
    def dim(self) -> int:
        return self.model.cfg.emb_dim * len(self.pooling)

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Texts -> (ids (b, T), attention_mask (b, T)), padded on the right to the longest; a text
        longer than ``max_seq_length`` tokens keeps its first ones and its final [SEP]."""
        return self._pad([self._ids(t) for t in texts])

    def _pad(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        longest = max((len(r) for r in rows), default=0)
        ids = np.full((len(rows), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), longest), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        return ids, mask

    def _ids(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode takes a list of strings, got a {type(text).__name__}")
        ids = list(self.tokenizer.encode(text, **self._encode_options))
        if len(ids) > self.max_seq_length:
            ids = ids[:self.max_seq_length - 1] + ids[-1:]
        return ids

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes, without the special tokens the encoder adds."""
        return len(self.tokenizer.encode(text, add_special_tokens=False, **self._encode_options))

    def embed_batch(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(b, T) ids and mask -> (b, dim) float32 vectors (pooled, normalised if the model says so)."""
        with mg.no_grad():
            vectors = pool(self.model(ids, mask), mask, self.pooling).data
        if self.normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.astype(np.float32, copy=False)

    def encode(self, texts: str | Sequence[str], batch_size: int = 32,
               progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Texts -> (n, dim) float32, one row per text in the given order (a single string -> (dim,)).

        progress(done, total) is called after each batch."""
        if isinstance(texts, str):
            return self.encode([texts], batch_size)[0]
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        rows = [self._ids(t) for t in texts]
        order = np.argsort([-len(r) for r in rows], kind="stable")   # longest first, as sentence-transformers
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        for start in range(0, len(rows), batch_size):
            chosen = order[start:start + batch_size]
            out[chosen] = self.embed_batch(*self._pad([rows[k] for k in chosen]))
            if progress is not None:
                progress(min(start + batch_size, len(rows)), len(rows))
        return out


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, d) and (m, d) -> (n, m) cosines, one matrix product after scaling the rows to length 1."""
    a = np.atleast_2d(a) / np.maximum(np.linalg.norm(np.atleast_2d(a), axis=1, keepdims=True), 1e-12)
    b = np.atleast_2d(b) / np.maximum(np.linalg.norm(np.atleast_2d(b), axis=1, keepdims=True), 1e-12)
    return a @ b.T
