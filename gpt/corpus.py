"""Text to pretrain on: an embedded default corpus, or the user's own files.

The book pretrains on a short story, *The Verdict* (about 20 KB), which has to be downloaded. So that
``python -m gpt pretrain`` works on a fresh machine without any download, the default corpus is the
Python language reference documentation that every CPython installation carries for ``help()``:
``pydoc_data.topics.topics``, a dict of about 80 topics (``"assert"``, ``"class"``, ``"for"``, ...)
to plain English text, about 465 KB in all. It is far larger than *The Verdict*, which gives a
small model enough text to learn from without simply memorizing it.

The exact text depends on the Python version (each release updates its documentation), so a model
trained on the default corpus under Python 3.11 has seen slightly different text than one trained
under 3.12; within one Python version it is always the same.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Union

__all__ = ["default_corpus", "load_texts", "DOCUMENT_SEPARATOR"]

# Between documents: a blank line, not the special token "<|endoftext|>". The corpus stays plain
# text, so any tokenizer can encode it (one trained here need not know any special token, and
# GPT-2's refuses special tokens unless they are allowed), and ``train_val_split`` can cut it
# anywhere by characters. The cost is that the model is not told where one document ends and the
# next begins; for a handful of files this hardly matters.
DOCUMENT_SEPARATOR = "\n\n"

PathLike = Union[str, "os.PathLike[str]"]


def default_corpus() -> str:
    """The Python reference documentation shipped with CPython, as one text (about 465 KB).

    The topics of ``pydoc_data.topics.topics`` in sorted order, each without trailing whitespace,
    separated by a blank line. Deterministic for a given Python version.
    """
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some stripped-down Python builds leave the documentation out
        raise RuntimeError(
            "this Python installation lacks pydoc_data (the embedded default corpus); "
            "pass your own text files instead (e.g. --text FILE)"
        ) from None
    return DOCUMENT_SEPARATOR.join(topics[key].rstrip() for key in sorted(topics))


def load_texts(paths: PathLike | Iterable[PathLike]) -> str:
    """Read one or more UTF-8 text files and join them with a blank line (``DOCUMENT_SEPARATOR``).

    Files are read as UTF-8 (a leading byte-order mark is dropped) with universal newlines, so
    Windows line endings become ``"\\n"``. A single path may be passed instead of a list.

    Raises:
        ValueError: no paths were given, or a file is empty (nothing but whitespace).
        FileNotFoundError: a file does not exist (IsADirectoryError if it is a folder).
        UnicodeDecodeError: a file is not valid UTF-8; the message names the file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no text files given; pass at least one UTF-8 text file")
    texts = []
    for path in paths:
        if path.is_dir():
            raise IsADirectoryError(f"{path} is a directory, not a text file; pass the files inside it")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise FileNotFoundError(f"text file not found: {path}; check the path") from None
        except UnicodeDecodeError as err:
            raise UnicodeDecodeError(
                err.encoding, err.object, err.start, err.end,
                f"{err.reason}: {path} is not UTF-8 text; convert it to UTF-8 first",
            ) from None
        if not text.strip():
            raise ValueError(f"text file {path} is empty; pass a file with some text in it")
        texts.append(text)
    return DOCUMENT_SEPARATOR.join(texts)
