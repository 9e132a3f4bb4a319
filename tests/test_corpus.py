"""Tests for gpt.corpus: the corpora that ship with Python, the split by document, and the user's files."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt.corpus import (
    CORPORA, DOCUMENT_SEPARATOR, Document, corpus_documents, default_corpus, is_validation_document, load_texts,
    split_documents,
)


def test_the_docs_corpus_is_the_language_reference_then_the_standard_librarys_docstrings():
    docs = corpus_documents("docs")
    text = default_corpus()
    assert text == DOCUMENT_SEPARATOR.join(d.text for d in docs) == default_corpus()   # deterministic
    assert 1_500_000 <= len(text.encode("utf-8")) <= 2_500_000                          # about 1.9 MB
    names = [d.name for d in docs]
    topics = [n for n in names if n.startswith("topic:")]
    assert 50 <= len(topics) and names[:len(topics)] == topics                          # topics first
    docstrings = [n for n in names if n.startswith("docstring:")]
    assert len(topics) + len(docstrings) == len(names) and len(docstrings) > 5000
    assert "docstring:collections/__init__.py:namedtuple" in names            # a function's
    assert "docstring:json/decoder.py:JSONDecoder.decode" in names            # a method's
    assert "docstring:json/decoder.py:" in names                              # the module's
    by_name = {d.name: d.text for d in docs}
    assert by_name["docstring:collections/__init__.py:namedtuple"].startswith("Returns a new subclass of tuple")
    # left out: tests, GUI toolkits, demos
    assert not any(part in n for n in names for part in ("/test/", "idlelib", "tkinter", "turtledemo"))
    assert "<|endoftext|>" not in text                  # plain text: every tokenizer can encode it
    assert sum(c.isascii() for c in text) / len(text) > 0.99


def test_a_docstring_that_appears_twice_is_kept_once():
    texts = [d.text for d in corpus_documents("docs")]
    assert len(texts) == len(set(texts))
    # the whole docstring of five methods of mailbox.py's mailbox classes: one document
    assert texts.count("Add message and return assigned key.") == 1


def test_the_python_source_corpus_is_the_standard_librarys_files():
    docs = corpus_documents("python-source")
    assert all(d.name.startswith("file:") for d in docs)
    by_name = {d.name: d.text for d in docs}
    assert "def namedtuple(" in by_name["file:collections/__init__.py"]
    assert 5_000_000 <= sum(len(d.text) for d in docs) <= 15_000_000
    assert set(CORPORA) == {"docs", "python-source"}
    with pytest.raises(ValueError, match="unknown corpus 'poetry'.*docs"):
        corpus_documents("poetry")


def test_max_chars_reads_only_the_first_documents():
    assert default_corpus(max_chars=20_000) == default_corpus()[:20_000]


def test_the_split_is_by_whole_documents_and_about_a_tenth():
    docs = corpus_documents("docs")
    train, val = split_documents(docs)
    in_val = [is_validation_document(d.name) for d in docs]
    assert train == DOCUMENT_SEPARATOR.join(d.text for d, v in zip(docs, in_val) if not v)
    assert val == DOCUMENT_SEPARATOR.join(d.text for d, v in zip(docs, in_val) if v)
    assert 0.05 < len(val) / (len(train) + len(val)) < 0.2
    assert 0.05 < sum(in_val) / len(docs) < 0.15


@given(st.lists(st.text("abcdef", min_size=1, max_size=6), min_size=2, max_size=60, unique=True),
       st.floats(0.05, 0.95))
def test_a_documents_side_does_not_depend_on_the_others(names, fraction):
    docs = [Document(n, f"text of {n}") for n in names]
    try:
        train, val = split_documents(docs, fraction)
    except ValueError as e:                     # all on one side: said so, not an empty split
        assert "one side empty" in str(e)
        return
    shuffled_train, shuffled_val = split_documents(list(reversed(docs)), fraction)
    assert set(train.split(DOCUMENT_SEPARATOR)) == set(shuffled_train.split(DOCUMENT_SEPARATOR))
    assert set(val.split(DOCUMENT_SEPARATOR)) == set(shuffled_val.split(DOCUMENT_SEPARATOR))
    for d in docs:
        assert (d.text in val.split(DOCUMENT_SEPARATOR)) == is_validation_document(d.name, fraction)


def test_bad_val_fraction():
    with pytest.raises(ValueError, match="val_fraction"):
        split_documents([Document("a", "x")], 1.0)


def test_load_texts_joins_files_with_a_blank_line(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes("\ufeffFirst line\r\nsecond line".encode("utf-8"))  # BOM and Windows newlines
    b.write_text("Über den Wolken", encoding="utf-8")
    assert load_texts([a, b]) == "First line\nsecond line" + DOCUMENT_SEPARATOR + "Über den Wolken"
    assert DOCUMENT_SEPARATOR == "\n\n"
    assert load_texts(str(b)) == "Über den Wolken"  # a single path is one file, not a list of characters


def test_load_texts_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load_texts([missing])
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9 cr\u00e8me".encode("latin-1"))
    with pytest.raises(UnicodeDecodeError, match="latin1.txt is not UTF-8"):
        load_texts([latin1])
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        load_texts([empty])
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_texts([tmp_path])
    with pytest.raises(ValueError, match="no text files"):
        load_texts([])
