"""The book's SimpleTokenizer (chapter 2.3-2.4)."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt.tokenizer import SimpleTokenizer
from gpt.tokenizer.simple import SimpleTokenizerV1, SimpleTokenizerV2, split_words

BOOK_SENTENCE = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."


@pytest.fixture(scope="module")
def verdict(reference_data):
    return (reference_data / "the-verdict.txt").read_text(encoding="utf-8")


def test_the_books_figures(verdict):
    assert len(verdict) == 20479
    assert len(split_words(verdict)) == 4690
    tok = SimpleTokenizer.from_text(verdict)
    assert tok.n_vocab == 1132
    assert list(tok.str_to_int)[-2:] == ["<|endoftext|>", "<|unk|>"]
    ids = tok.encode(BOOK_SENTENCE)
    assert ids == [1131, 5, 355, 1126, 628, 975, 10, 1130, 55, 988, 956, 984, 722, 988, 1131, 7]
    assert tok.decode(ids) == "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."


def test_the_books_v1_example(verdict):
    tok = SimpleTokenizer.from_text(verdict, strict=True)
    text = """"It's the last he painted, you know," Mrs. Gisburn said with pardonable pride."""
    ids = tok.encode(text)
    assert ids == [1, 56, 2, 850, 988, 602, 533, 746, 5, 1126, 596, 5, 1, 67, 7, 38, 851, 1108, 754, 793, 7]
    # As the book prints it: decode puts spaces back everywhere except before punctuation.
    assert tok.decode(ids) == """" It' s the last he painted, you know," Mrs. Gisburn said with pardonable pride."""


def test_strict_mode_names_the_unknown_word():
    tok = SimpleTokenizer.from_text("the cat sat", strict=True)
    with pytest.raises(KeyError, match="'dog'"):
        tok.encode("the dog sat")
    assert SimpleTokenizer.from_text("the cat sat").encode("the dog") == [2, 4]


def test_the_books_class_names():
    vocab = SimpleTokenizer.from_text("the cat sat").str_to_int
    with pytest.raises(KeyError, match="'dog'"):
        SimpleTokenizerV1(vocab).encode("the dog")
    assert SimpleTokenizerV2(vocab).encode("the dog") == [2, 4]


def test_split_follows_the_books_rules():
    assert split_words("Hello, world. Is this-- a test?") == ["Hello", ",", "world", ".", "Is", "this", "--", "a", "test", "?"]
    assert split_words("  \n\t ") == []
    assert split_words('a_b "c" (d)') == ["a", "_", "b", '"', "c", '"', "(", "d", ")"]


def test_unknown_ids_and_vocabularies_without_unk():
    tok = SimpleTokenizer({"a": 0, "b": 1})
    with pytest.raises(KeyError, match="no <\\|unk\\|>"):
        tok.encode("a c")
    with pytest.raises(KeyError, match="token id 7"):
        tok.decode([0, 7])
    with pytest.raises(ValueError, match="same id"):
        SimpleTokenizer({"a": 0, "b": 0})


words = st.text(st.characters(exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=6)
texts = st.lists(st.one_of(words, st.sampled_from([",", ".", "--", "?", "!", "'", '"', "(", ")", " ", "\n"])), max_size=30).map(" ".join)


@given(texts)
def test_vocabulary_is_sorted_distinct_pieces_plus_two_specials(text):
    tok = SimpleTokenizer.from_text(text)
    pieces = sorted(set(split_words(text)) - {"<|endoftext|>", "<|unk|>"})
    assert list(tok.str_to_int) == pieces + ["<|endoftext|>", "<|unk|>"]
    assert list(tok.str_to_int.values()) == list(range(len(pieces) + 2))


@given(texts, st.data())
def test_encode_of_decode_is_identity_on_known_tokens(text, data):
    tok = SimpleTokenizer.from_text(text)
    ids = data.draw(st.lists(st.integers(0, tok.n_vocab - 1), max_size=20))
    assert tok.encode(tok.decode(ids)) == ids


@given(texts)
def test_every_piece_of_the_training_text_is_known(text):
    tok = SimpleTokenizer.from_text(text)
    assert tok.str_to_int["<|unk|>"] not in tok.encode(text)
    assert tok.encode(text) == [tok.str_to_int[p] for p in split_words(text)]
