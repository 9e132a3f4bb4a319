"""HFTokenizer reads tokenizer.json files and must give the `tokenizers` library's ids exactly.

The files are built here with `tokenizers` itself (small vocabularies trained in a fraction of a
second on the default corpus plus a generated mixed-script text), one per family:
byte-level BPE (GPT-2's pre-split; Llama 3's and Qwen's Split regex + ByteLevel without regex),
SentencePiece-style BPE with byte fallback (Llama 2, Gemma, and the Metaspace form of newer
conversions) and WordPiece (BERT), plus added tokens with every flag. Each is compared on a few
thousand random strings (a fixed-seed batch, seconds) and on hypothesis examples (which shrink a
failure to a small one). Component by component, the library's own normalizers, pre-tokenizers
and decoders are the oracle too.
"""
from __future__ import annotations

import json
import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

from gpt.tokenizer import BPETokenizer, HFTokenizer  # noqa: E402
from gpt.tokenizer.hf import decoders as our_decoders  # noqa: E402
from gpt.tokenizer.hf import normalizers as our_normalizers  # noqa: E402
from gpt.tokenizer.hf import pre_tokenizers as our_pre_tokenizers  # noqa: E402

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# ----------------------------------------------------------------------------- random text
# Characters from long-established Unicode blocks only: the `regex` module and Python know newer
# Unicode versions than the Rust crates inside `tokenizers`, and a character assigned in between
# is a letter to one and unassigned to the other (a version difference, not a tokenizer bug).
_ALPHABETS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    " \n\t\r\u00a0\u3000\u2028\u2003\x0b\x0c\x85",
    "éèêëàâäôöûüçñÉÈÀÇÑßøåæœ",
    "\u0301\u0308\u0327",  # combining marks
    "αβγδεζηθΣσςΩωάέ",
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЖЯ",
    "مرحبابالعالم٠١٢٣٤٥",
    "नमस्तेदुनिया\u093e\u0903",
    "你好世界中文字符測試",
    "こんにちはカタカナ",
    "안녕하세요",
    "😀😃🎉👍🏽👨\u200d👩\u200d👧❤️🇫🇷",
    "½²³Ⅻ①",
    "\x00\x01\x1f\x7f\u200b\ufeff\ufffd",
]
_WORDS = ["the", " the", "The", "ing", " and", "def ", "return", "'s", "'LL", "'ve", "don't", "   ", "\n\n",
          " 2024", "3.14159", "hello", " world", "__init__", "http://x.org", "can't", "ÀB", "ΣΑΣ", "İstanbul"]


def random_text(rng: random.Random, extra: list[str] = ()) -> str:
    parts = []
    for _ in range(rng.randint(0, 12)):
        r = rng.random()
        if r < 0.35:
            parts.append(rng.choice(_WORDS))
        elif r < 0.45 and extra:
            parts.append(rng.choice(extra))
        else:
            alphabet = rng.choice(_ALPHABETS)
            parts.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))))
    return "".join(parts)


def random_texts(n: int, seed: int, extra: list[str] = ()) -> list[str]:
    rng = random.Random(seed)
    return [random_text(rng, extra) for _ in range(n)]


def text_strategy(extra: list[str] = ()):
    fragment = st.one_of(
        st.sampled_from(_WORDS + list(extra) if extra else _WORDS),
        st.sampled_from(_ALPHABETS).flatmap(lambda a: st.text(alphabet=a, min_size=1, max_size=6)),
    )
    return st.lists(fragment, max_size=12).map("".join)


@pytest.fixture(scope="module")
def training_text():
    from gpt.corpus import default_corpus

    return [default_corpus(max_chars=60_000)] + random_texts(400, seed=1)


N_FUZZ = 3000


def assert_same_ids(ours: HFTokenizer, theirs: Tokenizer, texts, add_special_tokens=True):
    expected = [e.ids for e in theirs.encode_batch(texts, add_special_tokens=add_special_tokens)]
    for text, ids in zip(texts, expected):
        got = ours.encode(text, add_special_tokens, allowed_special="all")
        assert got == ids, f"{text!r}: ours {got} != tokenizers {ids}"
    return expected


def assert_same_decode(ours: HFTokenizer, theirs: Tokenizer, id_lists):
    for ids in id_lists:
        assert ours.decode(ids) == theirs.decode(ids, skip_special_tokens=False), ids
        assert ours.decode(ids, skip_special_tokens=True) == theirs.decode(ids, skip_special_tokens=True), ids


def ours_of(theirs: Tokenizer, tmp_path, name="tokenizer.json") -> HFTokenizer:
    path = tmp_path / name
    theirs.save(str(path))
    return HFTokenizer.from_file(path)


def reload(spec: dict, tmp_path, name="edited.json") -> tuple[HFTokenizer, Tokenizer]:
    path = tmp_path / name
    path.write_text(json.dumps(spec), encoding="utf-8")
    return HFTokenizer.from_file(path), Tokenizer.from_file(str(path))


# ----------------------------------------------------------------------------- byte-level BPE
def train_byte_level(texts, pre_tokenizer, vocab_size=700, normalizer=None, special=("<|endoftext|>",)):
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


@pytest.fixture(scope="module")
def gpt2_style(training_text, tmp_path_factory):
    tok = train_byte_level(training_text, pre_tokenizers.ByteLevel(add_prefix_space=False))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return ours_of(tok, tmp_path_factory.mktemp("gpt2")), tok


def split_then_bytes(pattern):
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


@pytest.fixture(scope="module")
def llama3_style(training_text, tmp_path_factory):
    """Llama 3's shape: its Split regex, ByteLevel without regex, ignore_merges, a BOS template."""
    tok = train_byte_level(training_text, split_then_bytes(LLAMA3_PATTERN), special=("<|begin_of_text|>", "<|eot_id|>"))
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B:1",
                                                       special_tokens=[("<|begin_of_text|>", 0)])
    spec = json.loads(tok.to_str())
    spec["model"]["ignore_merges"] = True
    return reload(spec, tmp_path_factory.mktemp("llama3"))


@pytest.fixture(scope="module")
def qwen_style(training_text, tmp_path_factory):
    """Qwen2/3's shape: NFC, its Split regex (single digits), ByteLevel without regex; merges as lists."""
    tok = train_byte_level(training_text, split_then_bytes(QWEN2_PATTERN), normalizer=normalizers.NFC(),
                           special=("<|endoftext|>", "<|im_start|>", "<|im_end|>"))
    spec = json.loads(tok.to_str())
    spec["model"]["merges"] = [m.split(" ") if isinstance(m, str) else m for m in spec["model"]["merges"]]
    return reload(spec, tmp_path_factory.mktemp("qwen"))


BYTE_LEVEL = ["gpt2_style", "llama3_style", "qwen_style"]


@pytest.mark.parametrize("family", BYTE_LEVEL)
def test_byte_level_ids_equal_the_library_on_thousands_of_strings(family, request):
    ours, theirs = request.getfixturevalue(family)
    specials = sorted(ours.special_tokens)
    texts = random_texts(N_FUZZ, seed=2, extra=specials)
    ids = assert_same_ids(ours, theirs, texts)
    assert_same_decode(ours, theirs, ids[:500])
    for text in texts:
        expected = unicodedata.normalize("NFC", text) if family == "qwen_style" else text
        ids = ours.encode(text, add_special_tokens=False, allowed_special="all")
        assert ours.decode(ids) == expected.encode("utf-8", "replace").decode("utf-8")  # lossless


@pytest.mark.parametrize("family", BYTE_LEVEL)
@given(data=st.data())
def test_byte_level_ids_equal_the_library(family, request, data):
    ours, theirs = request.getfixturevalue(family)
    text = data.draw(text_strategy(sorted(ours.special_tokens)))
    assert_same_decode(ours, theirs, assert_same_ids(ours, theirs, [text]))


def test_byte_level_corpus_ids_and_cold_batch_path(gpt2_style, llama3_style):
    from gpt.corpus import default_corpus

    text = default_corpus(max_chars=300_000)
    for ours, theirs in (gpt2_style, llama3_style):
        ours.clear_cache()
        assert ours.encode(text) == theirs.encode(text).ids  # many new pieces: the NumPy batch merge
        assert ours.decode(ours.encode(text, add_special_tokens=False)) == text


def test_merge_rule_is_the_merge_list_not_tiktokens(tmp_path):
    """A pair whose joined string is a token but which is not in the merge list never merges."""
    vocab = {"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[("b", "c"), ("ab", "c")]))
    ours = ours_of(tok, tmp_path)
    assert ours.encode("abc") == tok.encode("abc").ids == [0, 4]  # tiktoken's rule would give [5]


def test_long_pieces_use_the_heap_merge_and_agree(gpt2_style):
    ours, theirs = gpt2_style
    for text in ["x" * 5000, "ab" * 3000, " " * 4000, "\u00e9" * 700 + "e" * 300, "😀" * 500]:
        ours.clear_cache()
        assert ours.encode(text) == theirs.encode(text).ids


# ----------------------------------------------------------------------------- SentencePiece-style BPE
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


@pytest.fixture(scope="module")
def sentencepiece_model(training_text):
    """A Llama-2-shaped BPE: '▁' for spaces, byte fallback, <unk>; vocabulary trained here."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("(?<=\n)"), behavior="isolated")  # lines, to train fast
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                                  limit_alphabet=120)
    tok.train_from_iterator(training_text, trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for t in BYTE_TOKENS:
        vocab.setdefault(t, len(vocab))
    spec["model"]["vocab"] = vocab
    return spec


LLAMA2_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
BOS_TEMPLATE = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
SENTENCEPIECE_VARIANTS = {
    "llama2": dict(normalizer={"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        pre_tokenizer=None, decoder=LLAMA2_DECODER, post_processor=BOS_TEMPLATE),
    "gemma": dict(normalizer={"type": "Replace", "pattern": {"String": " "}, "content": "▁"}, pre_tokenizer=None,
                  decoder={"type": "Sequence", "decoders": LLAMA2_DECODER["decoders"][:3]}, post_processor=BOS_TEMPLATE),
    "metaspace-first": dict(normalizer=None, pre_tokenizer={"type": "Metaspace", "replacement": "▁",
                                                            "prepend_scheme": "first", "split": False},
                            decoder=LLAMA2_DECODER, post_processor=BOS_TEMPLATE),
    "metaspace-split": dict(normalizer={"type": "NFKC"}, pre_tokenizer={"type": "Metaspace", "replacement": "▁",
                                                                        "prepend_scheme": "always", "split": True},
                            decoder={"type": "Sequence", "decoders": [
                                {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "▁",
                                                           "prepend_scheme": "always", "split": True}]},
                            post_processor=None),
}


@pytest.fixture(scope="module", params=sorted(SENTENCEPIECE_VARIANTS))
def sentencepiece_style(request, sentencepiece_model, tmp_path_factory):
    spec = dict(sentencepiece_model, **SENTENCEPIECE_VARIANTS[request.param])
    ours, theirs = reload(spec, tmp_path_factory.mktemp("sp"))
    return request.param, ours, theirs


def test_sentencepiece_ids_equal_the_library_on_thousands_of_strings(sentencepiece_style):
    name, ours, theirs = sentencepiece_style
    assert ours.model._subsplit is None  # trained line by line, merges join words: one long merge per text
    texts = random_texts(N_FUZZ, seed=3, extra=["<s>", "</s>", "<0x41>", "▁"])
    ids = assert_same_ids(ours, theirs, texts)
    assert_same_decode(ours, theirs, ids[:800])
    assert any(ours.token_to_id("<0x00>") <= i for e in ids for i in e)  # byte fallback was exercised
    if name in ("llama2", "gemma"):  # lossless up to '▁' (a space) and the added tokens
        for text in texts:
            if "<" not in text:
                ids = ours.encode(text, add_special_tokens=False)
                assert ours.decode(ids) == text.replace("▁", " ").encode("utf-8", "replace").decode()


@given(data=st.data())
def test_sentencepiece_ids_equal_the_library(sentencepiece_style, data):
    _, ours, theirs = sentencepiece_style
    text = data.draw(text_strategy(["<s>", "</s>", "▁"]))
    assert_same_decode(ours, theirs, assert_same_ids(ours, theirs, [text]))


def test_sentencepiece_vocabulary_without_merges_across_spaces_is_split_safely(training_text, tmp_path):
    """Trained as SentencePiece does (no merge joins a character to a following '▁'), a Llama-2-shaped
    file lets the model encode a text's '▁word' parts separately (cache, NumPy batch) with the same ids."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=True)
    tok.train_from_iterator(training_text, trainers.BpeTrainer(
        vocab_size=800, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False, limit_alphabet=120))
    spec = json.loads(tok.to_str())
    for t in BYTE_TOKENS:
        spec["model"]["vocab"].setdefault(t, len(spec["model"]["vocab"]))
    ours, theirs = reload(dict(spec, **SENTENCEPIECE_VARIANTS["llama2"]), tmp_path)
    assert ours.model._subsplit is not None
    from gpt.corpus import default_corpus

    texts = random_texts(N_FUZZ, seed=16, extra=["▁", "▁▁", "<s>"]) + default_corpus(max_chars=100_000).split("\n\n")
    assert_same_decode(ours, theirs, assert_same_ids(ours, theirs, texts)[:500])


def test_metaspace_first_prepends_only_at_the_start_of_the_text(sentencepiece_model, tmp_path):
    ours, theirs = reload(dict(sentencepiece_model, **SENTENCEPIECE_VARIANTS["metaspace-first"]), tmp_path)
    for text in ["<s>hello", "hello<s>hello", " hello", "hello world<s> x"]:
        assert ours.encode(text, allowed_special="all") == theirs.encode(text).ids


@pytest.mark.parametrize("options", [dict(continuing_subword_prefix="##"), dict(end_of_word_suffix="</w>"),
                                     dict(continuing_subword_prefix="##", end_of_word_suffix="</w>")],
                         ids=["prefix", "suffix", "both"])
def test_bpe_with_subword_prefix_or_word_suffix(options, training_text, tmp_path):
    tok = Tokenizer(models.BPE(unk_token="<unk>", **options))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder() if "end_of_word_suffix" in options else decoders.WordPiece(cleanup=False)
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>"], show_progress=False, limit_alphabet=100,
                                  **options)
    tok.train_from_iterator(training_text, trainer)
    ours = ours_of(tok, tmp_path)
    ids = assert_same_ids(ours, tok, random_texts(N_FUZZ, seed=14, extra=["<unk>"]))
    assert_same_decode(ours, tok, ids[:500])
    assert any(ours.token_to_id("<unk>") in e for e in ids)  # characters outside the trained alphabet


@pytest.mark.parametrize("fuse_unk", [False, True])
def test_bpe_unknown_characters_without_byte_tokens(fuse_unk, sentencepiece_model, tmp_path):
    """byte_fallback on but no <0xNN> in the vocabulary: the unknown token (fused or not)."""
    spec = dict(sentencepiece_model, **SENTENCEPIECE_VARIANTS["llama2"])
    model = dict(spec["model"], fuse_unk=fuse_unk)
    model["vocab"] = {t: i for t, i in model["vocab"].items() if t not in BYTE_TOKENS}
    ours, theirs = reload(dict(spec, model=model), tmp_path)
    ids = assert_same_ids(ours, theirs, random_texts(N_FUZZ, seed=15))
    assert_same_decode(ours, theirs, ids[:500])
    unk = ours.token_to_id("<unk>")
    assert any(e.count(unk) > 1 for e in ids)


# ----------------------------------------------------------------------------- WordPiece
@pytest.fixture(scope="module", params=["uncased-template", "cased-bert-processing"])
def wordpiece_style(request, training_text, tmp_path_factory):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=12))
    lowercase = request.param.startswith("uncased")
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=900, special_tokens=specials, show_progress=False, limit_alphabet=150)
    tok.train_from_iterator(training_text, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    if lowercase:
        tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                           special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    else:
        tok.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
    return ours_of(tok, tmp_path_factory.mktemp("wp")), tok


def test_wordpiece_ids_equal_the_library_on_thousands_of_strings(wordpiece_style):
    ours, theirs = wordpiece_style
    texts = random_texts(N_FUZZ, seed=4, extra=["[CLS]", "[SEP]", "[MASK]"])
    ids = assert_same_ids(ours, theirs, texts)
    assert_same_decode(ours, theirs, ids[:800])
    a, b = "A first sentence.", "and a second one!"
    assert ours.encode(a, pair=b) == theirs.encode(a, b).ids


@given(data=st.data())
def test_wordpiece_ids_equal_the_library(wordpiece_style, data):
    ours, theirs = wordpiece_style
    text = data.draw(text_strategy(["[CLS]", "[SEP]", "[MASK]"]))
    assert_same_decode(ours, theirs, assert_same_ids(ours, theirs, [text]))


def test_real_minilm_tokenizer(reference_data):
    path = reference_data / "all-MiniLM-L6-v2"
    if not (path / "tokenizer.json").is_file():
        pytest.skip(f"{path}/tokenizer.json is not there")
    ours = HFTokenizer.from_file(path)  # a folder holding tokenizer.json
    theirs = Tokenizer.from_file(str(path / "tokenizer.json"))
    theirs.no_truncation()
    theirs.no_padding()  # run-time options of the library, not tokenization (see HFTokenizer's docstring)
    texts = random_texts(N_FUZZ, seed=5, extra=["[CLS]", "[SEP]", "[MASK]", "[PAD]"])
    from gpt.corpus import default_corpus

    texts += default_corpus(max_chars=100_000).split("\n\n")
    ids = assert_same_ids(ours, theirs, texts)
    assert_same_decode(ours, theirs, ids[:800])
    assert ours.vocab_size == theirs.get_vocab_size() == 30522


# ----------------------------------------------------------------------------- added tokens
ADDED = [
    AddedToken("<plain>", special=False),
    AddedToken("[L]", special=True, lstrip=True),
    AddedToken("[R]", special=True, rstrip=True),
    AddedToken("word", single_word=True, special=False),
    AddedToken("Hello World", normalized=True, special=False),
    AddedToken("<both>", lstrip=True, rstrip=True, special=False),
    AddedToken("ab", special=False, normalized=False),
    AddedToken("abc", special=True),
]
ADDED_TEXTS = ["<plain>", "[L]", "[R]", "word", "Hello World", "hello world", "<both>", "ab", "abc", "  ", " ", "words", "_word"]


@pytest.fixture(scope="module", params=["gpt2_style", "wordpiece", "llama2"])
def with_added_tokens(request, tmp_path_factory, sentencepiece_model, training_text):
    if request.param == "gpt2_style":
        _, theirs = request.getfixturevalue("gpt2_style")
        theirs = Tokenizer.from_str(theirs.to_str())
    elif request.param == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer()
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=500, special_tokens=["[UNK]"], show_progress=False)
        tok.train_from_iterator(training_text, trainer)
        theirs = tok
    else:
        theirs = Tokenizer.from_str(json.dumps(dict(sentencepiece_model, **SENTENCEPIECE_VARIANTS["llama2"])))
    theirs.add_tokens([t for t in ADDED if not t.special])
    theirs.add_special_tokens([t for t in ADDED if t.special])
    return ours_of(theirs, tmp_path_factory.mktemp("added")), theirs


def test_added_tokens_with_every_flag(with_added_tokens):
    ours, theirs = with_added_tokens
    texts = random_texts(N_FUZZ, seed=6, extra=ADDED_TEXTS)
    ids = assert_same_ids(ours, theirs, texts)
    assert_same_decode(ours, theirs, ids[:800])


@given(data=st.data())
def test_added_tokens_at_the_edges(with_added_tokens, data):
    ours, theirs = with_added_tokens
    edge = st.sampled_from(ADDED_TEXTS)
    text = data.draw(st.tuples(edge, text_strategy(ADDED_TEXTS), edge).map("".join))
    assert_same_ids(ours, theirs, [text])


def test_special_tokens_follow_the_allowed_special_rules(with_added_tokens):
    ours, theirs = with_added_tokens
    text = "x [L] y abc <plain>"
    with pytest.raises(ValueError, match="disallowed"):
        ours.encode(text)
    with pytest.raises(ValueError, match="not the string"):
        ours.encode(text, allowed_special="[L]")
    with pytest.raises(ValueError, match="does not have"):
        ours.encode(text, allowed_special={"<nope>"})
    assert ours.encode(text, allowed_special="all") == theirs.encode(text).ids
    theirs.encode_special_tokens = True  # the library's name for "special tokens are ordinary text"
    try:
        assert ours.encode(text, disallowed_special=()) == theirs.encode(text).ids
    finally:
        theirs.encode_special_tokens = False
    only_l = ours.encode(text, allowed_special={"[L]"}, disallowed_special=())
    assert ours.token_to_id("[L]") in only_l and ours.token_to_id("abc") not in only_l
    assert ours.token_to_id("<plain>") in only_l  # non-special added tokens are always matched


# ----------------------------------------------------------------------------- GPT-2's own files
def test_gpt2_files_through_tokenizers_equal_bpe_tokenizer(reference_data, tmp_path):
    folder = reference_data / "gpt2"
    if not (folder / "encoder.json").is_file():
        pytest.skip(f"{folder} has no encoder.json")
    theirs = Tokenizer(models.BPE.from_file(str(folder / "encoder.json"), str(folder / "vocab.bpe")))
    theirs.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    theirs.decoder = decoders.ByteLevel()
    theirs.add_special_tokens(["<|endoftext|>"])
    ours = ours_of(theirs, tmp_path)
    bpe = BPETokenizer.from_gpt2_files(folder / "encoder.json", folder / "vocab.bpe")
    texts = random_texts(N_FUZZ, seed=7, extra=["<|endoftext|>"])
    for text in texts:
        assert ours.encode(text, allowed_special="all") == bpe.encode(text, allowed_special="all")
    from gpt.corpus import default_corpus

    corpus = default_corpus(max_chars=200_000)
    assert ours.encode(corpus) == bpe.encode(corpus)
    assert ours.vocab_size == bpe.n_vocab == 50257


# ----------------------------------------------------------------------------- component by component
def spec_of(component, stage: str) -> dict:
    """The JSON the library writes for one component (normalizer, pre_tokenizer or decoder)."""
    tok = Tokenizer(models.BPE())
    setattr(tok, stage, component)
    return json.loads(tok.to_str())[stage]


NORMALIZERS = [
    normalizers.NFC(), normalizers.NFD(), normalizers.NFKC(), normalizers.NFKD(), normalizers.Lowercase(),
    normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()]), normalizers.Strip(),
    normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(r"\s+"), " "),
    normalizers.Replace("ab", "X"), normalizers.Prepend("▁"),
    normalizers.BertNormalizer(), normalizers.BertNormalizer(strip_accents=True, lowercase=False),
    normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=False),
]


@pytest.mark.parametrize("theirs", NORMALIZERS, ids=lambda n: json.dumps(spec_of(n, "normalizer"))[:60])
def test_normalizers_equal_the_library(theirs):
    ours = our_normalizers.build(spec_of(theirs, "normalizer"), "test")
    for text in random_texts(1500, seed=8):
        assert ours(text) == theirs.normalize_str(text), text


BEHAVIORS = ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]
PRE_TOKENIZERS = [
    *(pre_tokenizers.Split(Regex(r"\s+|\d"), behavior=b, invert=i) for b in BEHAVIORS for i in (False, True)),
    *(pre_tokenizers.Split("ab", behavior=b) for b in BEHAVIORS),
    pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated"),
    pre_tokenizers.Split(Regex(r"(\p{L}+)|x"), behavior="isolated"),  # a capturing group
    pre_tokenizers.Whitespace(), pre_tokenizers.WhitespaceSplit(), pre_tokenizers.BertPreTokenizer(),
    pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Digits(individual_digits=False),
    pre_tokenizers.Punctuation(), pre_tokenizers.Punctuation(behavior="contiguous"),
    pre_tokenizers.Metaspace(prepend_scheme="always", split=True), pre_tokenizers.Metaspace(prepend_scheme="never"),
    pre_tokenizers.Metaspace(prepend_scheme="first", split=False),
    pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(prepend_scheme="first")]),
    pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Punctuation()]),
    pre_tokenizers.CharDelimiterSplit("a"),
]


@pytest.mark.parametrize("theirs", PRE_TOKENIZERS, ids=lambda p: json.dumps(spec_of(p, "pre_tokenizer"))[:80])
def test_pre_tokenizers_equal_the_library(theirs):
    ours = our_pre_tokenizers.build(spec_of(theirs, "pre_tokenizer"), "test")
    for text in random_texts(1500, seed=9):
        expected = [piece for piece, _ in theirs.pre_tokenize_str(text)]
        got, _ = ours.run([text], True) if text else ([], True)
        assert got == expected, text


@pytest.mark.parametrize("add_prefix_space", [False, True])
@pytest.mark.parametrize("use_regex", [False, True])
def test_byte_level_pre_tokenizer_splits_as_the_library(add_prefix_space, use_regex):
    from gpt.tokenizer.gpt2 import token_to_gpt2_str

    theirs = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=use_regex)
    ours = our_pre_tokenizers.build(spec_of(theirs, "pre_tokenizer"), "test")
    for text in random_texts(1500, seed=10):
        expected = [piece for piece, _ in theirs.pre_tokenize_str(text)]
        got, _ = ours.run([text], True) if text else ([], True)
        assert [token_to_gpt2_str(p.encode("utf-8")) for p in got] == expected, text  # (the model maps bytes)


TOKEN_LISTS = [["▁Hello", "▁wor", "ld", "<0xE2>", "<0x82>", "<0xAC>", "▁", "<0xFF>", "x", "▁▁", "##ing", "a</w>", "'s"],
               ["Hello", "##s", ",", "don", "'", "t", ".", "##!", "?"], ["▁", "▁▁"], ["ĠHello", "Ġworld", "âĤ¬", "ðŁ", "<|x|>"]]
DECODERS = [decoders.ByteLevel(), decoders.Metaspace(), decoders.Metaspace(prepend_scheme="never"), decoders.ByteFallback(),
            decoders.Fuse(), decoders.Strip(" ", 1, 1), decoders.Strip("▁", 2, 0), decoders.Replace("▁", " "),
            decoders.WordPiece(), decoders.WordPiece(cleanup=False), decoders.BPEDecoder(),
            decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])]


@pytest.mark.parametrize("theirs", DECODERS, ids=lambda d: json.dumps(spec_of(d, "decoder"))[:60])
def test_decoders_equal_the_library(theirs):
    ours = our_decoders.build(spec_of(theirs, "decoder"), "test")
    rng = random.Random(11)
    lists = TOKEN_LISTS + [[rng.choice(sum(TOKEN_LISTS, [])) for _ in range(rng.randint(0, 8))] for _ in range(300)]
    for tokens in lists:
        assert "".join(ours.decode_chain(list(tokens))) == theirs.decode(tokens), tokens


POST_PROCESSORS = [
    processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                  special_tokens=[("[CLS]", 1), ("[SEP]", 2)]),
    processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)]),
    processors.BertProcessing(("[SEP]", 2), ("[CLS]", 1)), processors.RobertaProcessing(("</s>", 2), ("<s>", 1)),
    processors.ByteLevel(),
    processors.Sequence([processors.ByteLevel(), processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> $B </s>", special_tokens=[("<s>", 1), ("</s>", 2)])]),
]


@pytest.mark.parametrize("processor", POST_PROCESSORS, ids=lambda p: type(p).__name__)
def test_post_processors_equal_the_library(processor, tmp_path):
    vocab = {"[UNK]": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "c": 5}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processor
    ours = ours_of(tok, tmp_path)
    for a, b in [("a b", None), ("c", "a a"), ("", "b"), ("a x", "")]:
        pair_ok = b is None or json.loads(tok.to_str())["post_processor"].get("pair", True) is not None
        if not pair_ok:
            continue
        expected = tok.encode(a, b).ids if b is not None else tok.encode(a).ids
        assert ours.encode(a, pair=b) == expected
        assert ours.encode(a, False, pair=b) == (tok.encode(a, b, add_special_tokens=False).ids if b is not None
                                                 else tok.encode(a, add_special_tokens=False).ids)


# ----------------------------------------------------------------------------- refusing what is not supported
@pytest.mark.parametrize("stage,spec,name", [
    ("pre_tokenizer", {"type": "UnicodeScripts"}, "UnicodeScripts"),
    ("normalizer", {"type": "Precompiled", "precompiled_charsmap": ""}, "Precompiled"),
    ("decoder", {"type": "CTC"}, "CTC"),
    ("post_processor", {"type": "Mystery"}, "Mystery"),
])
def test_an_unsupported_component_is_a_one_line_error(gpt2_style, tmp_path, stage, spec, name):
    data = gpt2_style[0].to_json()
    data[stage] = spec
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError) as err:
        HFTokenizer.from_file(path)
    message = str(err.value)
    assert name in message and str(path) in message and "\n" not in message


def test_bpe_dropout_is_refused(gpt2_style, tmp_path):
    data = gpt2_style[0].to_json()
    data["model"] = dict(data["model"], dropout=0.1)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="dropout"):
        HFTokenizer.from_file(path)


def test_missing_file_and_folder_without_tokenizer_json(tmp_path):
    with pytest.raises(FileNotFoundError):
        HFTokenizer.from_file(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="not a JSON file"):
        HFTokenizer.from_file(tmp_path)


# ----------------------------------------------------------------------------- the small API
def test_vocabulary_lookups_and_save_round_trip(wordpiece_style, tmp_path):
    ours, theirs = wordpiece_style
    assert ours.vocab_size == theirs.get_vocab_size()
    for token, i in list(theirs.get_vocab().items())[:300]:
        assert ours.token_to_id(token) == i and ours.id_to_token(i) == token
    assert ours.token_to_id("certainly not a token") is None and ours.id_to_token(10**9) is None
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ours.decode([10**9])
    ours.save(tmp_path)
    again = HFTokenizer.from_file(tmp_path / "tokenizer.json")
    for text in random_texts(200, seed=12):
        assert again.encode(text, allowed_special="all") == ours.encode(text, allowed_special="all")


def test_lone_surrogates_encode_as_replacement_character(gpt2_style):
    ours, _ = gpt2_style
    assert ours.encode("a\ud800b") == ours.encode("a\ufffdb")


def test_speed_benchmark_runs_and_checks_ids():
    """The bench's tokenizer.json section on a few documents (the ratio itself is measured by
    `python -m gpt bench`, never asserted)."""
    from gpt.corpus import default_corpus
    from gpt.tokenizer.bench import hf_benchmark

    documents = random_texts(50, seed=13) + ["Hello world, it's 2024.\n\n" * 20]
    documents += default_corpus(max_chars=20_000).split("\n\n")
    r = hf_benchmark(documents=documents, repeats=1)
    assert r is not None and r.documents == len(documents)
    assert r.text_bytes == sum(len(d.encode("utf-8")) for d in documents)
    assert r.tokens > len(documents) and r.ours_total_s >= r.ours_load_s > 0 and r.ratio > 0
    assert "ours / tokenizers" in r.summary()


def test_tokenize_command_reads_a_tokenizer_json(wordpiece_style, tmp_path):
    from tests.cli_helpers import check_one_line_error, run_cli

    ours, theirs = wordpiece_style
    theirs.save(str(tmp_path / "tokenizer.json"))
    text = "Tokenizers, today!"
    for where in (tmp_path, tmp_path / "tokenizer.json"):  # a model folder, or the file itself
        code, out, err = run_cli("tokenize", "--tokenizer", str(where), "--ids-only", text)
        assert code == 0, err
        assert [int(x) for x in out.split()] == theirs.encode(text).ids
    code, out, err = run_cli("tokenize", "--tokenizer", str(tmp_path), text)
    assert code == 0 and f"{len(theirs.encode(text).ids)} tokens" in out
    assert all(f'"{t}"' in out for t in theirs.encode(text).tokens)
    code, _, err = run_cli("tokenize", "--tokenizer", str(tmp_path), "--merges", "3")
    check_one_line_error(code, err, "--merges")
    (tmp_path / "bad.json").write_text('{"model": {"type": "Unigram"}}', encoding="utf-8")
    code, _, err = run_cli("tokenize", "--tokenizer", str(tmp_path / "bad.json"), "x")
    check_one_line_error(code, err, "Unigram", "bad.json")
