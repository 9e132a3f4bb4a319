"""Text files as a stream of chunks that tokenize exactly as the whole text does (beyond the book).

``gpt.corpus.load_texts`` reads every file into one string; for a corpus larger than memory,
:func:`read_texts` yields the same text in pieces (about a megabyte of bytes at a time) and
:func:`cut_chunks` regroups those pieces into chunks of about ``chunk_chars`` characters, cut only
where GPT-2's pre-split would cut anyway, so that encoding chunk by chunk and concatenating the ids
gives exactly ``tokenizer.encode(load_texts(files), allowed_special="all")``.

Where may the text be cut? BPE never merges across the pieces of the pre-split regex
(:data:`gpt.tokenizer.pretokenize.GPT2_PATTERN`), so a cut must be a piece boundary of the whole
text *and* leave the pieces on both sides as they were. The regex has no lookbehind, so the pieces
after a cut at position ``p`` are those of the whole text from ``p`` on, provided ``p`` is a piece
boundary. Before ``p``, only the whitespace run that ends at ``p`` can come out differently: at the
end of a string ``\\s+(?!\\S)`` takes the whole run, while in the whole text a run followed by a
non-space leaves its last character for a piece of its own (or, when that character is a space,
for ``" ?\\p{L}+"`` and its kin). Hence the rule (:data:`CUT`): cut at ``p`` when

    text[p] is whitespace but not " ", and text[p + 1] is not whitespace

i.e. just *before* the last character of a whitespace run, when that character is not a space:
``"x\\n" | "y"`` becomes ``"x" | "\\ny"`` and ``"x\\n\\n" | "y"`` becomes ``"x\\n" | "\\ny"``. In the whole
text that character is a piece of its own (``\\s+(?!\\S)`` backs off from the non-space, and no
alternative but ``\\s+`` can start with a whitespace character other than a space), and what precedes it
in the run, ``text[q:p]``, is one ``\\s+(?!\\S)`` piece (it is followed by whitespace). Cut at ``p``,
the left chunk ends with that same run ``text[q:p]``, taken whole as one piece at the end of the
string, and the pieces before ``q`` do not look past ``q``; the right chunk starts with the lone
character. So both sides pre-split exactly as in the whole text. This holds for every character
the pre-split's ``\\s`` matches (``"\\n"``, ``"\\t"``, ``"\\r"``, ``"\\u3000"``, ``"\\u00a0"``, ...); lines
that wrap at a line break cut there, and so do paragraphs separated by blank lines.

Special tokens are split out before the pre-split, so two more cases are refused: a cut where an
occurrence of a special token would straddle it (only possible for a special token holding such
whitespace), and a cut after whitespace (``text[p - 1]``) just before an occurrence of a special
token starting at ``p + 1``: the whole text's segment then ends with the run ``text[q:p + 1]``, which
at the end of a segment is one piece. When a long stretch has no cut point (one endless line of
words), the chunk grows until one comes, never a wrong cut, up to ``max_chars``; beyond that
:class:`NoCutError` is raised rather than holding an unbounded chunk.

The rule is proved for GPT-2's pattern (and its reordered equivalents); :func:`check_pattern`
refuses tokenizers with any other pre-split pattern.
"""
from __future__ import annotations

import codecs
import os
from pathlib import Path
from typing import Iterable, Iterator

import regex

from gpt.corpus import DOCUMENT_SEPARATOR
from gpt.tokenizer.pretokenize import _FASTER_EQUIVALENT, GPT2_PATTERN

__all__ = ["READ_BYTES", "MAX_CHARS", "CUT", "NotUTF8Error", "NoCutError", "check_files", "check_pattern", "read_texts",
           "cut_chunks", "file_chunks"]

READ_BYTES = 1 << 20  # bytes read from a file at a time
MAX_CHARS = 1 << 26  # characters a chunk may grow beyond chunk_chars while no cut point comes (64 Mi)
# A safe cut: before a whitespace character other than " " that a non-space follows (see the module
# docstring); the same \s as the pre-split's.
CUT = regex.compile(r"(?=[^\S ]\S)")
_WHITESPACE = regex.compile(r"\s")
SUPPORTED_PATTERNS = frozenset({GPT2_PATTERN, *_FASTER_EQUIVALENT, *_FASTER_EQUIVALENT.values()})


class NotUTF8Error(ValueError):
    """A file holds a byte sequence that is not UTF-8; ``offset`` is the byte's position in the file."""

    def __init__(self, path: Path, offset: int, byte: int):
        self.path, self.offset, self.byte = path, offset, byte
        super().__init__(f"{path} is not UTF-8 text: byte 0x{byte:02x} at byte offset {offset:,} cannot be "
                         f"decoded; convert the file to UTF-8 first")


class NoCutError(ValueError):
    """No cut point came for ``max_chars`` characters; ``position`` is the progress position (bytes
    read) of the last piece read, for the caller to name the file (:func:`file_at`)."""

    def __init__(self, position: int, max_chars: int):
        self.position, self.max_chars = position, max_chars
        super().__init__(f"no line break followed by text in {max_chars:,} characters (before byte {position:,} of "
                         "the input); wrap the text into lines first")


def check_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The paths as ``Path``s, after checking each names an existing file (not a folder).

    Raises FileNotFoundError / IsADirectoryError (messages naming the path), ValueError for no paths.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no text files given; pass at least one UTF-8 text file")
    for path in paths:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory, not a text file; pass the files inside it")
        if not path.is_file():
            raise FileNotFoundError(f"text file not found: {path}; check the path")
    return paths


def check_pattern(pattern: str) -> None:
    """ValueError unless ``pattern`` is GPT-2's pre-split, the only one :data:`CUT` is proved for."""
    if pattern not in SUPPORTED_PATTERNS:
        raise ValueError("the tokenizer's pre-split pattern is not GPT-2's, and chunked encoding is only "
                         f"proved for GPT-2's; its pattern is {pattern!r}")


def _decode_file(path: Path, read_bytes: int) -> Iterator[tuple[str, int]]:
    """The text of one file as ``path.read_text(encoding="utf-8-sig")`` gives it, in pieces.

    Yields ``(text, n)``: decoded text (a leading byte-order mark dropped, ``"\\r\\n"`` and ``"\\r"``
    turned into ``"\\n"``, universal newlines) and ``n``, the bytes of the file read so far.
    Raises NotUTF8Error with the absolute byte offset of the first bad byte.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    done = 0  # bytes fed to the decoder so far
    at_start, held_cr = True, False
    with open(path, "rb") as f:
        while True:
            data = f.read(read_bytes)
            final = not data
            pending = len(decoder.getstate()[0])  # bytes of an unfinished character held back
            try:
                text = decoder.decode(data, final)
            except UnicodeDecodeError as e:  # e.start indexes the held-back bytes + data
                bad = e.object[e.start]
                raise NotUTF8Error(path, done - pending + e.start, bad) from None
            done += len(data)
            if at_start and text:
                at_start = False
                if text[0] == "\ufeff":
                    text = text[1:]
            if held_cr:
                text = "\r" + text
            held_cr = text.endswith("\r") and not final  # it may be the first half of "\r\n"
            if held_cr:
                text = text[:-1]
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text or final:
                yield text, done
            if final:
                return


def read_texts(paths: Iterable[str | os.PathLike], read_bytes: int = READ_BYTES) -> Iterator[tuple[str, int]]:
    """The text of ``gpt.corpus.load_texts(paths)``, in pieces, never holding a whole file.

    Yields ``(text, n)`` where ``n`` counts the bytes read from all files so far (for progress);
    joining the texts gives ``load_texts(paths)``: each file decoded as UTF-8 (BOM dropped, universal
    newlines), files separated by ``DOCUMENT_SEPARATOR``.

    Raises the errors of :func:`check_files`, NotUTF8Error (naming the file and the byte offset) and
    ValueError for a file that holds nothing but whitespace, as ``load_texts`` does.
    """
    paths = check_files(paths)
    before = 0  # bytes of the files already read
    for k, path in enumerate(paths):
        if k:
            yield DOCUMENT_SEPARATOR, before
        has_text = False
        n = 0
        for text, n in _decode_file(path, read_bytes):
            if not has_text and text.strip():
                has_text = True
            if text:
                yield text, before + n
        if not has_text:
            raise ValueError(f"text file {path} is empty; pass a file with some text in it")
        before += n


def _refused(text: str, at: int, straddling: list[str], specials: list[str]) -> bool:
    """Whether special tokens forbid the cut at ``text[at]`` (a :data:`CUT` point): an occurrence of one
    of ``straddling`` covers both ``text[at - 1]`` and ``text[at]``, or whitespace ``text[at - 1]`` is
    followed by the lone ``text[at]`` and then an occurrence of one of ``specials``."""
    for s in straddling:
        if text.find(s, max(0, at - len(s) + 1), at + len(s) - 1) != -1:
            return True
    if at and _WHITESPACE.match(text, at - 1):
        return any(text.startswith(s, at + 1) for s in specials)
    return False


def cut_chunks(pieces: Iterable[tuple[str, int]], chunk_chars: int, special_tokens: Iterable[str] = (),
               max_chars: int = MAX_CHARS) -> Iterator[tuple[str, int]]:
    """Regroup ``(text, position)`` pieces (from :func:`read_texts`) into chunks cut at :data:`CUT`.

    Each chunk but the last has at least ``chunk_chars`` characters and ends at the first safe cut
    from there on (so it is longer when a stretch has no cut point). Yields ``(chunk, position)``
    where ``position`` is that of the last piece the chunk drew from. The chunks join back to the
    text, and encoding them one by one (``allowed_special="all"``) gives the ids of the whole text.
    Each piece is searched once (plus a few characters of context), so the work is linear in the
    text even when no cut comes for a long while. Raises :class:`NoCutError` when more than
    ``chunk_chars + max_chars`` characters are held without a cut point: memory stays bounded.
    """
    if chunk_chars < 1:
        raise ValueError(f"chunk_chars must be at least 1, got {chunk_chars}")
    specials = [s for s in special_tokens if s]
    straddling = [s for s in specials if len(s) > 1 and _WHITESPACE.search(s, 1)]  # only these can straddle a cut
    # A cut at window[p] is taken only once window[p + margin] is known: CUT looks one character
    # ahead, the special-token checks up to len(s). Cuts closer to the end are looked at again with
    # the next piece, so the window keeps ``context`` characters of what came before.
    margin = max([1] + [len(s) for s in specials])
    context = 2 * margin + 2
    held: list[str] = []  # text read but not yet part of a chunk
    held_len = 0
    held_at: list[int] = []  # the position of each piece in ``held``
    tail = ""  # the last ``context`` characters of the text before ``piece``
    position = 0
    for piece, position in pieces:
        while piece:
            window = tail + piece  # window[w] is piece[w - len(tail)]
            w = max(0, len(tail) - margin, len(tail) + chunk_chars - held_len)
            cut = None
            end = len(window) - margin + 1  # (never negative: regex reads that as counted from the end)
            while w < end:
                m = CUT.search(window, w, end)
                if m is None:
                    break
                if not specials or not _refused(window, m.start(), straddling, specials):
                    cut = m.start() - len(tail)
                    break
                w = m.start() + 1
            if cut is None:
                held.append(piece)
                held_at.append(position)
                held_len += len(piece)
                if held_len > chunk_chars + max_chars:
                    raise NoCutError(position, max_chars)
                tail = window[-context:]
                break
            if cut <= 0:  # a cut deferred from the previous piece: the chunk ends before this one
                chunk = "".join(held)
                end = len(chunk) + cut
                chunk, rest = chunk[:end], chunk[end:]
                k, start = len(held) - 1, held_len - len(held[-1])  # held[k] begins at start
                while start >= end:  # the chunk's last character is in an earlier piece
                    k -= 1
                    start -= len(held[k])
                yield chunk, held_at[k]
                piece = rest + piece
            else:
                held.append(piece[:cut])
                chunk = "".join(held)
                yield chunk, position
                piece = piece[cut:]
            held, held_at, held_len, tail = [], [], 0, chunk[-context:]
    if held_len:
        yield "".join(held), position


def file_chunks(paths: Iterable[str | os.PathLike], chunk_chars: int, special_tokens: Iterable[str] = (),
                read_bytes: int = READ_BYTES, max_chars: int = MAX_CHARS) -> Iterator[tuple[str, int]]:
    """``cut_chunks(read_texts(paths, read_bytes), chunk_chars, special_tokens, max_chars)``, with a
    stretch that has no cut point reported as a ValueError naming the file it is in."""
    paths = check_files(paths)
    try:
        yield from cut_chunks(read_texts(paths, read_bytes), chunk_chars, special_tokens, max_chars)
    except NoCutError as e:
        position = e.position   # bytes read from all files; find the file
        for path in paths:
            size = path.stat().st_size
            if position <= size:
                break
            position -= size
        raise ValueError(f"{path} has no line break followed by text in {max_chars:,} characters (before byte "
                         f"{position:,}); wrap it into lines first") from None
