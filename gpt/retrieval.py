"""Retrieval: split documents into overlapping chunks, embed them, find the chunks nearest a question.

The first half of retrieval-augmented generation (beyond the book). A sentence encoder
(:class:`gpt.embeddings.SentenceEncoder`) maps each chunk to a unit vector once; a question is
embedded the same way, and its nearest chunks by cosine are one matrix-vector product away:

    chunk_text(text, count_tokens, 128, 32)     -> [(start, end) character spans], 128 tokens each,
                                                   consecutive chunks sharing 32 tokens
    build_index(encoder, {source: text}, ...)   -> VectorIndex: vectors (n, dim) float32 + chunk records
    index.save(folder) / VectorIndex.load(folder)  (vectors.npy memory-mapped, chunks.json)
    index.search(query_vector, k)               -> the k best (score, chunk), exact: every chunk is scored

Chunks are cut at word boundaries: a word's token count comes from the encoder's tokenizer (each
distinct word encoded once), and a chunk takes whole words while they fit. For BERT's WordPiece,
which splits on whitespace and punctuation before anything else, the counts are exact.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import regex

from gpt.atomic import atomic_write, write_text_atomic

VECTORS_FILE, CHUNKS_FILE = "vectors.npy", "chunks.json"
FORMAT = "gpt-vector-index-1"
_WORD = regex.compile(r"\S+")


@dataclass
class Chunk:
    """A piece of a document: ``text[start:end]`` of the file ``source``."""

    source: str
    start: int
    end: int
    text: str


def chunk_text(text: str, count_tokens: Callable[[str], int], chunk_tokens: int = 128,
               overlap: int = 32) -> list[tuple[int, int]]:
    """Character spans (start, end) of overlapping chunks of at most ``chunk_tokens`` tokens (a single
    word longer than that is a chunk of its own); the next chunk starts where the last ``overlap``
    tokens of the previous one begin. An empty or blank text has no chunks."""
    if chunk_tokens < 1 or not 0 <= overlap < chunk_tokens:
        raise ValueError(f"need chunk_tokens >= 1 and 0 <= overlap < chunk_tokens, got {chunk_tokens} and {overlap}")
    spans = [m.span() for m in _WORD.finditer(text)]
    if not spans:
        return []
    cache: dict[str, int] = {}
    sizes = []
    for s, e in spans:
        word = text[s:e]
        if word not in cache:
            cache[word] = max(1, count_tokens(word))
        sizes.append(cache[word])
    ends = np.cumsum(sizes)                                   # tokens up to and including word i
    starts = ends - np.asarray(sizes)
    chunks, first = [], 0
    while True:
        # the last word that still fits: tokens of words first..last <= chunk_tokens (at least one word)
        last = max(first, int(np.searchsorted(ends, starts[first] + chunk_tokens, side="right")) - 1)
        chunks.append((spans[first][0], spans[last][1]))
        if last == len(spans) - 1:
            return chunks
        # the next chunk begins at the first word of the last `overlap` tokens, and always moves on
        first = max(first + 1, int(np.searchsorted(starts, ends[last] - overlap, side="left")))


class VectorIndex:
    """Chunk vectors (n, dim) float32 (unit length when the encoder normalises) and their chunks."""

    def __init__(self, vectors: np.ndarray, chunks: list[Chunk], meta: dict | None = None):
        if len(vectors) != len(chunks):
            raise ValueError(f"{len(vectors)} vectors but {len(chunks)} chunks")
        self.vectors, self.chunks, self.meta = vectors, chunks, dict(meta or {})

    def __len__(self) -> int:
        return len(self.chunks)

    def search(self, query: np.ndarray, k: int = 5) -> list[tuple[float, Chunk]]:
        """The ``k`` chunks with the highest dot product with ``query`` (dim,) -- the cosine, for unit
        vectors -- best first. Exact: one matrix-vector product scores every chunk."""
        if len(self) == 0:
            return []
        scores = self.vectors @ np.asarray(query, dtype=self.vectors.dtype)       # (n,)
        k = min(k, len(scores))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(float(scores[i]), self.chunks[i]) for i in best]

    def save(self, folder: str | os.PathLike) -> Path:
        """Write ``vectors.npy`` and ``chunks.json`` into ``folder`` (made if needed), each atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / VECTORS_FILE) as f:
            np.save(f, np.ascontiguousarray(self.vectors, dtype=np.float32))
        record = {"format": FORMAT, **self.meta, "count": len(self), "chunks": [asdict(c) for c in self.chunks]}
        write_text_atomic(folder / CHUNKS_FILE, json.dumps(record, ensure_ascii=False))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> "VectorIndex":
        """Read an index folder; the vectors are memory-mapped (read from disk as they are used)."""
        folder = Path(folder)
        for name in (VECTORS_FILE, CHUNKS_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing: give a folder made by `python -m gpt index`")
        record = json.loads((folder / CHUNKS_FILE).read_text(encoding="utf-8"))
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        if found != FORMAT:
            raise ValueError(f"{folder / CHUNKS_FILE} is not a vector index of this project (format "
                             f"{found!r}, expected {FORMAT!r})")
        vectors = np.load(folder / VECTORS_FILE, mmap_mode="r")
        chunks = [Chunk(**c) for c in record.pop("chunks")]
        if vectors.ndim != 2 or len(vectors) != len(chunks):
            raise ValueError(f"{folder} is damaged: {VECTORS_FILE} has shape {vectors.shape} for {len(chunks)} chunks")
        record.pop("count", None)
        return cls(vectors, chunks, record)


def build_index(encoder, documents: Mapping[str, str], chunk_tokens: int = 128, overlap: int = 32,
                batch_size: int = 32, progress: Callable[[int, int], None] | None = None,
                meta: dict | None = None) -> VectorIndex:
    """Chunk every document (source name -> text) and embed the chunks with ``encoder`` (a
    SentenceEncoder). ``chunk_tokens`` is capped at what the encoder reads (its max_seq_length minus
    the [CLS] and [SEP] it adds), so no chunk is truncated when embedded."""
    limit = encoder.max_seq_length - 2
    chunk_tokens = min(chunk_tokens, limit)
    overlap = min(overlap, chunk_tokens - 1)
    chunks = []
    for source, text in documents.items():
        spans = chunk_text(text, encoder.count_tokens, chunk_tokens, overlap)
        chunks += [Chunk(source, s, e, text[s:e]) for s, e in spans]
    vectors = encoder.encode([c.text for c in chunks], batch_size=batch_size, progress=progress) if chunks else \
        np.zeros((0, encoder.dim), dtype=np.float32)
    info = {"dim": int(encoder.dim), "normalized": bool(encoder.normalize), "chunk_tokens": chunk_tokens,
            "overlap": overlap, **(meta or {})}
    return VectorIndex(vectors, chunks, info)
