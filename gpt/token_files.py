"""A tokenized corpus on disk: flat binary token files read through ``np.memmap`` (beyond the book).

The book tokenizes its 20 KB story in memory. For a corpus larger than memory, ``python -m gpt
prepare`` tokenizes it once, streaming, into a folder that training then reads window by window
without ever loading it (nanoGPT's format)::

    DIR/train.bin      training token ids, raw little-endian integers        [n_train]
    DIR/val.bin        validation token ids, the same way                    [n_val]
    DIR/tokenizer.txt  the tokenizer that made them (BPETokenizer.save format)
    DIR/meta.json      what the files hold (see below); written last, so its presence means complete

The ids are ``uint16`` when the vocabulary has at most 65,536 ids (GPT-2's 50,257 fit), else
``uint32``. ``meta.json`` has: ``format``, ``dtype``, ``n_vocab``, ``tokens`` and ``chunks`` (per
split), ``val_fraction``, ``chunk_chars``, ``sources`` (each file's absolute path and size in bytes),
``tokenizer`` (the file name), ``sha256`` of each .bin file, and ``fingerprint``: a hash of the
tokenizer and of both files' contents, which a resumed training run compares with its own.

How the text is split (:func:`is_validation_chunk`): the text is cut into chunks of about
``chunk_chars`` characters at points where tokenization does not change (:mod:`gpt.text_chunks`), and
chunk ``i`` (counting from 0) goes to validation when ``round(val_fraction * (i + 1)) > round(val_fraction
* i)`` (rounding halves up): every ``1 / val_fraction``-th chunk, the first one halfway through the first
period (chunk 4, 14, 24, ... for 0.1), so that after ``n`` chunks ``round(val_fraction * n)`` are
validation. Reading the chunks of both files back in that order gives exactly
``tokenizer.encode(load_texts(files), allowed_special="all")``: special tokens written in the text
(``<|endoftext|>``) become their ids, as ``pretrain --text`` encodes them.

Speed: chunks are encoded by a pool of worker processes (``workers``), each given the tokenizer
once, with a bounded number of chunks in flight and the results written in order.
"""
from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from gpt.atomic import atomic_write, write_text_atomic
from gpt.text_chunks import MAX_CHARS, READ_BYTES, check_files, check_pattern, file_chunks

__all__ = ["FORMAT", "SPLITS", "TokenFilesError", "TokenFiles", "token_dtype", "is_validation_chunk",
           "default_chunk_chars", "holds_token_files", "prepare_token_files", "open_token_files"]

FORMAT = "gpt-token-files v1"
SPLITS = ("train", "val")
# Chunks of at most about 256 KB for large corpora: encoding one takes about 30 bytes of Python
# objects per character for a moment (the pre-split pieces, the id list), so a worker stays near
# 8 MB above its baseline; larger chunks bring no speed. ...
MAX_CHUNK_CHARS = 1 << 18
MIN_CHUNK_CHARS = 256  # ... and at least this long for small ones (see default_chunk_chars)


class TokenFilesError(ValueError):
    """Prepared token files that are missing, incomplete or do not fit together."""


def token_dtype(n_vocab: int) -> np.dtype:
    """Little-endian ``uint16`` if every id (0..n_vocab-1) fits in 16 bits, else ``uint32``."""
    return np.dtype("<u2") if n_vocab <= 1 << 16 else np.dtype("<u4")


def is_validation_chunk(i: int, val_fraction: float) -> bool:
    """Whether chunk ``i`` (from 0) goes to validation: ``round(f * (i + 1)) > round(f * i)``, halves up."""
    return math.floor(val_fraction * (i + 1) + 0.5) > math.floor(val_fraction * i + 0.5)


def default_chunk_chars(total_bytes: int) -> int:
    """About a hundredth of the corpus, between 256 characters and 256 KiB: small corpora still get
    enough chunks for a validation split, large ones are tokenized a quarter megabyte at a time."""
    return int(min(MAX_CHUNK_CHARS, max(MIN_CHUNK_CHARS, total_bytes // 100)))


def holds_token_files(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` already has prepared data (a meta.json or a .bin file)."""
    d = Path(directory)
    return any((d / name).exists() for name in ("meta.json", "train.bin", "val.bin"))


# ---------------------------------------------------------------------- writing
_worker_tokenizer = None
_worker_dtype = None


def _init_worker(tokenizer, dtype) -> None:
    """Pool initializer: each worker process receives the tokenizer once."""
    global _worker_tokenizer, _worker_dtype
    _worker_tokenizer, _worker_dtype = tokenizer, dtype


def _init_pool_worker(tokenizer, dtype) -> None:
    """Pool initializer: Ctrl-C reaches the whole process group, but only the parent should act on
    it (``with Pool`` then terminates the workers); a worker ignores it instead of printing a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # forked with SIGINT blocked (see _sigint_blocked_in_children)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _init_worker(tokenizer, dtype)


def _sigint_blocked_in_children():
    """Block SIGINT while the pool forks its workers and return the mask to restore (None where
    signal masks do not exist). A worker starts with Python's Ctrl-C handler until its initializer
    runs: a Ctrl-C in that moment printed a KeyboardInterrupt traceback from the worker. Blocked,
    the signal waits: a worker ignores it and then unblocks, and the parent receives it as soon as
    it restores its mask."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _restore_mask(mask) -> None:
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _encode_chunk(text: str) -> bytes:
    """One chunk's ids as raw bytes in the files' dtype (what a worker sends back)."""
    return np.asarray(_worker_tokenizer.encode(text, allowed_special="all"), dtype=_worker_dtype).tobytes()


def prepare_token_files(
    paths: Iterable[str | os.PathLike],
    tokenizer,
    out: str | os.PathLike,
    *,
    val_fraction: float = 0.1,
    workers: int = 2,
    chunk_chars: int | None = None,
    read_bytes: int = READ_BYTES,
    max_chars: int = MAX_CHARS,
    force: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Tokenize the text files ``paths`` (joined as ``load_texts`` joins them) into folder ``out``.

    Streams: the files are read ``read_bytes`` at a time and cut into chunks of about
    ``chunk_chars`` characters (default: :func:`default_chunk_chars`), which ``workers`` processes
    encode (1: in this process) while the ids are appended to temporary files, renamed to
    ``train.bin`` / ``val.bin`` at the end; ``meta.json`` is written last. Memory stays bounded
    whatever the corpus size: a stretch of more than ``max_chars`` characters without a cut point
    (:mod:`gpt.text_chunks`) is an error. ``on_progress(bytes_read, total_bytes)`` is called after each chunk.

    Returns the meta dict (see the module docstring). Raises FileExistsError if ``out`` already holds
    prepared data (unless ``force``), ValueError for a fraction outside [0, 1), a tokenizer whose
    pre-split is not GPT-2's, empty input or text that cannot be cut, and the reading errors of
    :func:`gpt.text_chunks.read_texts`.
    """
    paths = check_files(paths)
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be at least 0 and below 1, got {val_fraction}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    check_pattern(tokenizer.pattern)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; --out must be a folder")
    if holds_token_files(out) and not force:
        raise FileExistsError(f"{out} already holds prepared data; pass --force to replace it, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    sizes = [p.stat().st_size for p in paths]
    total = sum(sizes)
    chunk_chars = chunk_chars or default_chunk_chars(total)
    dtype = token_dtype(tokenizer.n_vocab)

    (out / "meta.json").unlink(missing_ok=True)  # from here on the folder is incomplete until meta is back
    tokenizer.save(out / "tokenizer.txt")
    counts = {s: 0 for s in SPLITS}
    chunks = {s: 0 for s in SPLITS}
    hashes = {s: hashlib.sha256() for s in SPLITS}
    stream = file_chunks(paths, chunk_chars, tokenizer.special_tokens, read_bytes, max_chars)
    with atomic_write(out / "train.bin") as train_file, atomic_write(out / "val.bin") as val_file:
        files = {"train": train_file, "val": val_file}

        def write(i: int, data: bytes, position: int) -> None:
            split = "val" if is_validation_chunk(i, val_fraction) else "train"
            files[split].write(data)
            hashes[split].update(data)
            counts[split] += len(data) // dtype.itemsize
            chunks[split] += 1
            if on_progress is not None:
                on_progress(position, total)

        if workers == 1:
            _init_worker(tokenizer, dtype)
            try:
                for i, (text, position) in enumerate(stream):
                    write(i, _encode_chunk(text), position)
            finally:
                _init_worker(None, None)
        else:
            import multiprocessing

            in_flight: collections.deque = collections.deque()
            limit = 2 * workers  # chunks sent but not yet written: bounds the memory
            written = 0
            mask = _sigint_blocked_in_children()
            try:
                pool = multiprocessing.Pool(workers, initializer=_init_pool_worker, initargs=(tokenizer, dtype))
            except BaseException:
                _restore_mask(mask)
                raise
            with pool:
                _restore_mask(mask)  # a Ctrl-C pressed meanwhile arrives here, and `with` ends the workers
                for text, position in stream:
                    in_flight.append((pool.apply_async(_encode_chunk, (text,)), position))
                    if len(in_flight) >= limit:
                        result, pos = in_flight.popleft()
                        write(written, result.get(), pos)
                        written += 1
                while in_flight:
                    result, pos = in_flight.popleft()
                    write(written, result.get(), pos)
                    written += 1
        if counts["train"] + counts["val"] == 0:
            raise ValueError("the text makes no tokens; pass files with some text in them")

    tokenizer_sha = hashlib.sha256((out / "tokenizer.txt").read_bytes()).hexdigest()
    sha = {s: hashes[s].hexdigest() for s in SPLITS}
    fingerprint = hashlib.sha256(f"{FORMAT}\n{dtype.name}\n{tokenizer_sha}\n{sha['train']}\n{sha['val']}".encode())
    meta = {
        "format": FORMAT,
        "dtype": dtype.name,
        "n_vocab": tokenizer.n_vocab,
        "tokens": counts,
        "chunks": chunks,
        "val_fraction": val_fraction,
        "chunk_chars": chunk_chars,
        "special_tokens": "all",  # special tokens in the text were encoded as their ids
        "sources": [{"path": str(p.resolve()), "bytes": n} for p, n in zip(paths, sizes)],
        "tokenizer": "tokenizer.txt",
        "sha256": sha,
        "fingerprint": fingerprint.hexdigest()[:16],
    }
    write_text_atomic(out / "meta.json", json.dumps(meta, indent=1) + "\n")
    return meta


# ---------------------------------------------------------------------- reading
@dataclass
class TokenFiles:
    """A prepared folder: its meta dict and tokenizer; :meth:`tokens` maps a split's ids."""

    directory: Path
    meta: dict
    tokenizer: object

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"]).newbyteorder("<")

    def tokens(self, split: str) -> np.ndarray:
        """The ids of ``split`` ("train" or "val"), memory-mapped read-only [n_tokens]; nothing is read
        until indexed (an empty split is an empty array: a file of 0 bytes cannot be mapped)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        n = self.meta["tokens"][split]
        if n == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.directory / f"{split}.bin", dtype=self.dtype, mode="r", shape=(n,))

    def sample_text(self, n_tokens: int = 64) -> str:
        """The text of the first ``n_tokens`` training tokens (e.g. to start a sample from)."""
        return self.tokenizer.decode(self.tokens("train")[:n_tokens])


def open_token_files(directory: str | os.PathLike) -> TokenFiles:
    """Open a folder written by :func:`prepare_token_files`, checking (without reading the .bin
    files) that meta.json, the tokenizer and the files' sizes fit together.

    Raises TokenFilesError (a ValueError) with a one-line message otherwise.
    """
    from gpt.tokenizer import BPETokenizer

    d = Path(directory)
    if not d.is_dir():
        raise TokenFilesError(f"{d}: no such folder of prepared data (make one with 'python -m gpt prepare')")
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        raise TokenFilesError(f"{d}: no meta.json, so no complete prepared data; make it with "
                              f"'python -m gpt prepare --text FILES --out {d}'")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        dtype = np.dtype(meta["dtype"])
        if dtype not in (np.uint16, np.uint32):
            raise ValueError(f"dtype {meta['dtype']!r} is neither uint16 nor uint32")
        counts = {s: int(meta["tokens"][s]) for s in SPLITS}
        n_vocab, fingerprint = int(meta["n_vocab"]), str(meta["fingerprint"])
        tokenizer_name = str(meta["tokenizer"])
    except (ValueError, KeyError, TypeError) as e:
        raise TokenFilesError(f"{meta_path}: not a meta.json written by 'python -m gpt prepare' ({e})") from None
    try:
        tokenizer = BPETokenizer.load(d / tokenizer_name)
    except (OSError, ValueError) as e:
        raise TokenFilesError(f"{d / tokenizer_name}: cannot load the tokenizer ({e})") from None
    if tokenizer.n_vocab != n_vocab:
        raise TokenFilesError(f"{d}: meta.json says {n_vocab} ids but the tokenizer has {tokenizer.n_vocab}")
    if token_dtype(n_vocab) != dtype:
        raise TokenFilesError(f"{d}: {n_vocab} ids should be stored as {token_dtype(n_vocab).name}, not {dtype.name}")
    for split, n in counts.items():
        path = d / f"{split}.bin"
        size = path.stat().st_size if path.is_file() else None
        if size != n * dtype.itemsize:
            found = "is missing" if size is None else f"has {size:,} bytes"
            raise TokenFilesError(f"{path} {found} but meta.json promises {n:,} {dtype.name} tokens "
                                  f"({n * dtype.itemsize:,} bytes); prepare the data again")
    meta["fingerprint"] = fingerprint
    return TokenFiles(d, meta, tokenizer)
