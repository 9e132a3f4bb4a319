"""Text to pretrain on: corpora that ship with every Python, or the user's own files.

The book pretrains on a short story, *The Verdict* (about 20 KB), which has to be downloaded. So that
``python -m gpt pretrain`` works on a fresh machine without any download, the project's corpora are
text that every CPython installation already carries:

``docs`` (the default, about 1.9 MB of English)
    the Python language reference that ``help()`` shows (``pydoc_data.topics``, about 80 topics,
    465 KB) followed by the docstrings of the standard library's modules, classes and functions
    (read from the source with :mod:`ast`, nothing is imported), one document per topic and one per
    docstring. Tests, IDLE, tkinter, the demos and other packages whose docstrings are not prose are
    left out, and a docstring that appears twice is kept once.
``python-source`` (about 8.4 MB)
    the standard library's own ``.py`` files, one document per file, from the same packages: a model
    trained on it writes Python.

Both are split into training and validation text **by document** (:func:`split_documents`): a
validation document is one the model never saw a line of, so the validation loss measures how well
it handles new prose, not how well it remembers the rest of a topic it trained on. (The book's
``train_val_split`` cuts one text at 90% of its characters; ``--text`` files are still split that
way.)

The exact text depends on the Python version (each release updates its documentation and library),
so a model trained under Python 3.11 has seen slightly different text than one trained under 3.12;
within one Python version it is always the same.
"""
from __future__ import annotations

import ast
import functools
import os
import sysconfig
import zlib
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Union

__all__ = ["CORPORA", "Document", "corpus_documents", "default_corpus", "split_documents", "load_texts",
           "DOCUMENT_SEPARATOR"]

# Between documents: a blank line, not the special token "<|endoftext|>". The corpus stays plain
# text, so any tokenizer can encode it (one trained here need not know any special token, and
# GPT-2's refuses special tokens unless they are allowed), and ``train_val_split`` can cut it
# anywhere by characters. The cost is that the model is not told where one document ends and the
# next begins; for a handful of files this hardly matters.
DOCUMENT_SEPARATOR = "\n\n"

CORPORA = ("docs", "python-source")

PathLike = Union[str, "os.PathLike[str]"]

# Parts of the standard library left out of both corpora: tests and test data, GUI toolkits and
# demos, vendored or generated code, and packages whose docstrings are mostly code or tables.
_SKIPPED_PARTS = frozenset({
    "test", "tests", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "site-packages",
    "dist-packages", "__pycache__", "pydoc_data", "encodings", "msilib", "__phello__", "venv",
})


class Document(NamedTuple):
    """One document of a corpus: a stable ``name`` (a pydoc topic or a module path) and its text."""

    name: str
    text: str


def _stdlib_files() -> list[tuple[str, Path]]:
    """(module path, file) of the standard library's ``.py`` files, sorted, skipped parts left out."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        if any(p in _SKIPPED_PARTS or p.startswith(("test_", "config-")) for p in parts):
            continue
        files.append(("/".join(parts), path))
    return files


def _read_source(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):  # a few files use other encodings: not worth the trouble
        return None


def _pydoc_topics() -> Iterator[Document]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some stripped-down Python builds leave the documentation out
        raise RuntimeError(
            "this Python installation lacks pydoc_data (the embedded default corpus); "
            "pass your own text files instead (e.g. --text FILE)"
        ) from None
    for key in sorted(topics):
        yield Document(f"topic:{key}", topics[key].rstrip())


def _docstrings(seen: set[str]) -> Iterator[Document]:
    """One document per docstring (of a module, class or function) in source order, named by where
    it is (``docstring:json/decoder.py:JSONDecoder.decode``); each text only the first time it
    appears anywhere (``seen``)."""
    for module, path in _stdlib_files():
        source = _read_source(path)
        try:
            tree = ast.parse(source) if source else None
        except SyntaxError:
            tree = None
        if tree is None:
            continue
        pending = [("", tree)]
        while pending:
            qualname, node = pending.pop()
            doc = (ast.get_docstring(node, clean=True) or "").strip()
            if doc and doc not in seen:
                seen.add(doc)
                yield Document(f"docstring:{module}:{qualname}", doc)
            children = [c for c in ast.iter_child_nodes(node)
                        if isinstance(c, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
            pending.extend((f"{qualname}.{c.name}" if qualname else c.name, c) for c in reversed(children))


def _iter_documents(name: str) -> Iterator[Document]:
    if name == "docs":
        seen: set[str] = set()
        for topic in _pydoc_topics():
            if topic.text not in seen:     # a few topics share one text
                seen.add(topic.text)
                yield topic
        yield from _docstrings(seen)
    elif name == "python-source":
        for module, path in _stdlib_files():
            source = _read_source(path)
            if source and source.strip():
                yield Document(f"file:{module}", source.rstrip())
    else:
        raise ValueError(f"unknown corpus {name!r}; choose one of: {', '.join(CORPORA)}")


@functools.lru_cache(maxsize=None)
def corpus_documents(name: str = "docs") -> tuple[Document, ...]:
    """The documents of corpus ``name`` (one of :data:`CORPORA`), in a fixed order; read once per
    process (reading the docstrings of the standard library takes a few seconds)."""
    return tuple(_iter_documents(name))


def default_corpus(max_chars: int | None = None) -> str:
    """The default corpus (``docs``) as one text, documents separated by a blank line.

    ``max_chars`` stops after that many characters, reading only the documents it needs (the first
    few hundred thousand characters are the pydoc topics, which load instantly).
    """
    if max_chars is None:
        return DOCUMENT_SEPARATOR.join(d.text for d in corpus_documents("docs"))
    parts, size = [], 0
    for doc in _iter_documents("docs"):
        parts.append(doc.text)
        size += len(doc.text) + len(DOCUMENT_SEPARATOR)
        if size >= max_chars:
            break
    return DOCUMENT_SEPARATOR.join(parts)[:max_chars]


def is_validation_document(name: str, val_fraction: float = 0.1) -> bool:
    """Whether the document ``name`` belongs to the validation split: decided by a checksum of its
    name (crc32), so it does not depend on the order or number of the other documents."""
    return zlib.crc32(name.encode("utf-8")) % 10_000 < val_fraction * 10_000


def split_documents(documents: Iterable[Document], val_fraction: float = 0.1) -> tuple[str, str]:
    """(training text, validation text): whole documents, about ``val_fraction`` of them (by count,
    chosen by :func:`is_validation_document`) for validation, each side joined with a blank line."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be strictly between 0 and 1, got {val_fraction!r}")
    train, val = [], []
    for doc in documents:
        (val if is_validation_document(doc.name, val_fraction) else train).append(doc.text)
    if not train or not val:
        raise ValueError(f"splitting {len(train) + len(val)} documents left one side empty; "
                         "use more documents or another val_fraction")
    return DOCUMENT_SEPARATOR.join(train), DOCUMENT_SEPARATOR.join(val)


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
