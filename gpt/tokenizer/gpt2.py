"""OpenAI's GPT-2 vocabulary files: ``encoder.json`` and ``vocab.bpe``.

``vocab.bpe`` lists the 50,000 merges in the order they were learned, one ``left right`` pair per line
after a ``#version`` header. ``encoder.json`` maps every token to its id: the 256 single bytes, then
each merge result (id = 256 + its line in ``vocab.bpe``), then ``<|endoftext|>`` = 50256.

Both files store tokens as text, not bytes: :func:`bytes_to_unicode` gives each of the 256 byte values
a printable character (printable Latin-1 bytes stand for themselves, the others are shifted to
U+0100 and up, so the space byte 0x20 is written ``Ġ`` and a newline ``Ċ``). A token's string is the
concatenation of the characters of its bytes.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from gpt.atomic import write_text_atomic


@functools.lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (256 entries, a bijection)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shift)
            shift += 1
    return table


@functools.lru_cache(maxsize=None)
def unicode_to_bytes() -> dict[str, int]:
    """The inverse of :func:`bytes_to_unicode`."""
    return {c: b for b, c in bytes_to_unicode().items()}


def token_to_gpt2_str(token: bytes) -> str:
    """Bytes -> the printable string used in ``encoder.json`` / ``vocab.bpe`` (b" the" -> "Ġthe")."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def gpt2_str_to_token(text: str) -> bytes:
    """The inverse of :func:`token_to_gpt2_str`; KeyError if ``text`` has a character outside the table."""
    table = unicode_to_bytes()
    return bytes(table[c] for c in text)


def read_gpt2_files(encoder_json: str | os.PathLike, vocab_bpe: str | os.PathLike):
    """Parse GPT-2-style vocabulary files.

    Returns ``(byte_ids, merges, special_tokens)``: ``byte_ids[b]`` is the id of the single byte ``b``
    (256 entries), ``merges`` is the list of ``(left_id, right_id)`` in rank order (merge ``k`` makes
    token id ``256 + k``), and ``special_tokens`` maps the remaining entries of ``encoder.json`` (such
    as ``<|endoftext|>``) to their ids. Raises ValueError if the files do not describe a byte-level BPE
    laid out that way.
    """
    encoder_json, vocab_bpe = Path(encoder_json), Path(vocab_bpe)
    for path in (encoder_json, vocab_bpe):
        if not path.is_file():
            raise FileNotFoundError(2, "No such file", str(path))
    try:
        encoder = json.loads(encoder_json.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{encoder_json} is not a JSON file: {e}") from None
    if not isinstance(encoder, dict) or not all(isinstance(v, int) for v in encoder.values()):
        raise ValueError(f"{encoder_json} should map token strings to integer ids")

    lines = vocab_bpe.read_text(encoding="utf-8").split("\n")
    start = 1 if lines and lines[0].startswith("#version") else 0
    pairs = [line.split() for line in lines[start:]]
    pairs = [p for p in pairs if p]
    for k, p in enumerate(pairs):
        if len(p) != 2:
            raise ValueError(f"{vocab_bpe}: merge {k} should be 'left right', got {' '.join(p)!r}")

    table = bytes_to_unicode()
    missing = [b for b in range(256) if table[b] not in encoder]
    if missing:
        raise ValueError(f"{encoder_json} has no entry for byte {missing[0]}; not a byte-level BPE vocabulary")
    byte_ids = [encoder[table[b]] for b in range(256)]
    if sorted(byte_ids) != list(range(256)):
        raise ValueError(f"{encoder_json}: the 256 single bytes must have the ids 0..255")

    try:
        merges = [(encoder[left], encoder[right]) for left, right in pairs]
        merged_ids = [encoder[left + right] for left, right in pairs]
    except KeyError as e:
        raise ValueError(f"{vocab_bpe} has a merge with {e.args[0]!r}, which {encoder_json} lacks") from None
    n = 256 + len(merges)
    if merged_ids != list(range(256, n)):
        k = next(k for k, i in enumerate(merged_ids) if i != 256 + k)
        raise ValueError(
            f"{vocab_bpe}: merge {k} ({' '.join(pairs[k])}) has id {merged_ids[k]} in {encoder_json}, expected "
            f"{256 + k} (merges must be numbered in rank order after the 256 bytes)"
        )
    special_tokens = {s: i for s, i in encoder.items() if i >= n}
    if len(encoder) != n + len(special_tokens):
        raise ValueError(f"{encoder_json} gives the same id to two entries, or skips ids below {n}")
    return byte_ids, merges, special_tokens


def write_gpt2_files(
    encoder_json: str | os.PathLike,
    vocab_bpe: str | os.PathLike,
    vocab: list[bytes],
    merges: list[tuple[int, int]],
    special_tokens: dict[str, int],
) -> None:
    """Write ``encoder.json`` and ``vocab.bpe`` for a byte-level BPE (the layout :func:`read_gpt2_files` reads).

    ``vocab[i]`` is the bytes of token ``i`` for every non-special id; ``merges`` are id pairs in rank order.
    """
    encoder = {token_to_gpt2_str(tok): i for i, tok in enumerate(vocab)}
    for s, i in special_tokens.items():
        if s in encoder:
            raise ValueError(f"special token {s!r} has the same GPT-2 spelling as token {encoder[s]}; rename it")
        encoder[s] = i
    lines = ["#version: 0.2"]
    lines += [f"{token_to_gpt2_str(vocab[a])} {token_to_gpt2_str(vocab[b])}" for a, b in merges]
    write_text_atomic(encoder_json, json.dumps(encoder, ensure_ascii=False))
    write_text_atomic(vocab_bpe, "\n".join(lines) + "\n")
