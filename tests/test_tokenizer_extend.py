"""Extending a tokenizer (BPETokenizer, HFTokenizer) and resizing a model's embedding and head to match."""
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg
from minigrad import nn
from minigrad.ops import cross_entropy

from gpt.checkpoint import load_checkpoint, save_checkpoint
from gpt.model import GPTConfig, GPTModel
from gpt.tokenizer import BPETokenizer, HFTokenizer
from gpt.tokenizer.extend import extend_vocabulary, resize_token_embeddings

TEXT = "the cat sat on the mat. the dog sat on the log. a cat and a dog sat on a mat and a log.\n" * 4
pytestmark = pytest.mark.filterwarnings("ignore:training stopped after")  # a small vocabulary on a short text


@pytest.fixture
def bpe():
    return BPETokenizer.train(TEXT, 280)


def tiny_model(vocab_size, tie_weights=False, seed=0):
    mg.manual_seed(seed)
    return GPTModel(GPTConfig.from_preset("tiny", vocab_size=vocab_size, context_length=16, emb_dim=32,
                                          drop_rate=0.0, tie_weights=tie_weights))


# ----------------------------------------------------------------------------- BPETokenizer
def test_bpe_added_tokens_are_always_cut_out_whole(bpe):
    n = bpe.n_vocab
    ids = bpe.add_tokens(["<|tool|>", "dogcat"])
    assert ids == [n, n + 1] and bpe.n_vocab == n + 2
    text = "the dogcat sat<|tool|>on dogcatdog"
    encoded = bpe.encode(text)  # ordinary tokens: no allowed_special needed
    assert encoded.count(n) == 1 and encoded.count(n + 1) == 2
    assert bpe.decode(encoded) == text
    assert bpe.encode_ordinary(text) == encoded == bpe.encode_bytes(text.encode())
    assert bpe.add_tokens(["dogcat"]) == [n + 1]  # already there: same id


def test_bpe_added_token_that_already_is_a_token_keeps_its_id(bpe):
    the = bpe.encode("the")
    assert len(the) == 1
    assert bpe.add_tokens(["the"]) == the
    assert bpe.encode("xthex") == bpe.encode("x") + the + bpe.encode("x")  # now always cut out


def test_bpe_added_special_tokens_follow_allowed_special(bpe):
    [user] = bpe.add_special_tokens(["<|user|>"])
    assert user == bpe.n_vocab - 1 and "<|user|>" in bpe.special_tokens
    with pytest.raises(ValueError, match="disallowed"):
        bpe.encode("hi <|user|>")
    assert bpe.encode("hi <|user|>", allowed_special="all")[-1] == user
    assert user not in bpe.encode("hi <|user|>", disallowed_special=())


def test_bpe_save_and_load_keep_added_and_special_tokens(bpe, tmp_path):
    bpe.add_tokens(["<|tool|>", "the"])
    bpe.add_special_tokens(["<|user|>"])
    bpe.save(tmp_path / "tok.txt")
    again = BPETokenizer.load(tmp_path / "tok.txt")
    assert again.added_tokens == bpe.added_tokens and again.special_tokens == bpe.special_tokens
    text = "the <|tool|> x <|user|> the"
    assert again.encode(text, allowed_special="all") == bpe.encode(text, allowed_special="all")


@given(st.lists(st.sampled_from(["<a>", "ab", "the", " cat", "<|x|>", "zz"]), min_size=1, max_size=4),
       st.text(alphabet="abthe <>|xzc", max_size=30))
def test_bpe_added_tokens_decode_back(words, text):
    tok = BPETokenizer.train(TEXT, 280)
    tok.add_tokens(words)
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    for w in set(words):  # each added word is found whole wherever it starts leftmost-longest
        if text == w:
            assert ids == [tok.added_tokens[w]]


def test_bpe_bad_added_tokens(bpe):
    with pytest.raises(ValueError, match="non-empty"):
        bpe.add_tokens([""])
    with pytest.raises(ValueError, match="both a special and an added"):
        BPETokenizer([], {"<x>": 256}, added_tokens={"<x>": 257})


# ----------------------------------------------------------------------------- HFTokenizer
@pytest.fixture
def hf_pair(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    lib = Tokenizer(models.BPE())
    lib.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    lib.decoder = decoders.ByteLevel()
    lib.train_from_iterator([TEXT], trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                                        show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    lib.save(str(tmp_path / "tokenizer.json"))
    return HFTokenizer.from_file(tmp_path), lib, tokenizers


def test_hf_add_tokens_matches_the_library(hf_pair):
    ours, lib, tokenizers = hf_pair
    new = ["<|user|>", "dogcat", "the"]
    ours_ids = ours.add_tokens(new[:2]) + ours.add_tokens(new[2:])
    lib.add_tokens([tokenizers.AddedToken(s, normalized=False) for s in new])
    assert ours_ids == [lib.token_to_id(s) for s in new]
    assert ours.vocab_size == lib.get_vocab_size()
    for text in ["the dogcat<|user|> sat", "xthex dogcatdogcat", "<|user|><|user|>", " the"]:
        assert ours.encode(text) == lib.encode(text).ids
        assert ours.decode(ours.encode(text)) == lib.decode(lib.encode(text).ids) == text


def test_hf_added_special_tokens_and_save(hf_pair, tmp_path):
    ours, _, _ = hf_pair
    [user] = ours.add_tokens(["<|user|>"], special=True)
    with pytest.raises(ValueError, match="disallowed"):
        ours.encode("hi <|user|>")
    assert ours.encode("hi <|user|>", allowed_special="all")[-1] == user
    assert ours.decode([user], skip_special_tokens=True) == ""
    ours.save(tmp_path / "saved.json")
    again = HFTokenizer.from_file(tmp_path / "saved.json")
    assert again.special_tokens == ours.special_tokens and again.vocab_size == ours.vocab_size


# ----------------------------------------------------------------------------- resizing a model
@pytest.mark.parametrize("tied", [False, True])
def test_resize_keeps_old_rows_draws_new_ones_and_ties_again(tied):
    model = tiny_model(60, tie_weights=tied)
    emb, head = model.tok_emb.weight.data.copy(), model.out_head.weight.data.copy()
    resize_token_embeddings(model, 2060)
    assert model.cfg.vocab_size == 2060 and model.tok_emb.num_embeddings == model.out_head.out_features == 2060
    assert model.tok_emb.weight.shape == model.out_head.weight.shape == (2060, 32)
    assert model.tok_emb.weight.dtype == np.float32
    np.testing.assert_array_equal(model.tok_emb.weight.data[:60], emb)
    np.testing.assert_array_equal(model.out_head.weight.data[:60], head)
    assert (model.out_head.weight is model.tok_emb.weight) == tied
    new_emb = model.tok_emb.weight.data[60:]
    assert abs(new_emb.std() - 1.0) < 0.05  # nn.Embedding's N(0, 1), GPTModel's init
    if not tied:
        new_head = model.out_head.weight.data[60:]
        bound = 1 / np.sqrt(32)
        assert np.abs(new_head).max() <= bound and new_head.std() > 0.8 * bound / np.sqrt(3)  # U(-b, b)
    names = [n for n, _ in model.named_parameters()]
    assert ("out_head.weight" in names) != tied  # a tied head is one parameter, as before
    logits = model(np.array([[1, 2059, 60]]))
    assert logits.shape == (1, 3, 2060)


def test_resize_down_drops_the_last_rows():
    model = tiny_model(60)
    emb = model.tok_emb.weight.data.copy()
    resize_token_embeddings(model, 50)
    np.testing.assert_array_equal(model.tok_emb.weight.data, emb[:50])
    assert model.out_head.weight.shape == (50, 32) and model.cfg.vocab_size == 50


def test_new_rows_learn():
    model = tiny_model(60)
    resize_token_embeddings(model, 64)
    ids = np.array([[61, 62, 63, 5]])
    loss = cross_entropy(model(ids[:, :-1]).reshape(-1, 64), ids[:, 1:].reshape(-1))
    loss.backward()
    assert np.abs(model.tok_emb.weight.grad[61:64]).sum() > 0 and np.abs(model.out_head.weight.grad[62:64]).sum() > 0


@dataclass
class _Cfg:
    vocab_size: int
    emb_dim: int
    arch: str = "llama"


class _DecoderLike(nn.Module):
    """Any model with tok_emb and out_head (here with a bias) and a DecoderConfig-like cfg."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size)


def test_resize_uses_the_families_normal_init_and_extends_a_bias():
    mg.manual_seed(0)
    model = _DecoderLike(_Cfg(10, 16))
    bias = model.out_head.bias.data.copy()
    resize_token_embeddings(model, 4010)
    assert model.cfg.vocab_size == 4010
    assert abs(model.tok_emb.weight.data[10:].std() - 0.02) < 0.002  # N(0, 0.02^2), as Hugging Face inits them
    assert abs(model.out_head.weight.data[10:].std() - 0.02) < 0.002
    np.testing.assert_array_equal(model.out_head.bias.data[:10], bias)
    assert model.out_head.bias.shape == (4010,) and not model.out_head.bias.data[10:].any()
    resize_token_embeddings(model, 4020, std=1.0)
    assert model.tok_emb.weight.data[4010:].std() > 0.5


def test_resize_refuses_bad_sizes_and_models():
    with pytest.raises(ValueError, match="positive integer"):
        resize_token_embeddings(tiny_model(60), 0)
    with pytest.raises(ValueError, match="tok_emb"):
        resize_token_embeddings(nn.Linear(3, 4), 10)


# ----------------------------------------------------------------------------- with a checkpoint
@pytest.mark.parametrize("tied", [False, True])
def test_extended_model_and_tokenizer_round_trip_through_a_checkpoint(tmp_path, bpe, tied):
    n = bpe.n_vocab
    model = tiny_model(n, tie_weights=tied)
    ids = extend_vocabulary(model, bpe, ["<|user|>", "<|assistant|>"], special=True)
    assert ids == [n, n + 1] and model.cfg.vocab_size == n + 2
    save_checkpoint(tmp_path / "ck", model, tokenizer=bpe, step=1)
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.config.vocab_size == n + 2 and ck.tokenizer.special_tokens == bpe.special_tokens
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(ck.model.state_dict()[name], value)
    assert (ck.model.out_head.weight is ck.model.tok_emb.weight) == tied
    text = "the cat<|user|>sat"
    assert ck.tokenizer.encode(text, allowed_special="all") == bpe.encode(text, allowed_special="all")


def test_a_checkpoint_carries_a_tokenizer_json(tmp_path, hf_pair):
    ours, lib, _ = hf_pair
    n = ours.vocab_size
    model = tiny_model(n)
    assert extend_vocabulary(model, ours, ["<|user|>"], special=True) == [n]
    save_checkpoint(tmp_path / "ck", model, tokenizer=ours, step=3)
    step = tmp_path / "ck" / "step-000003"
    assert (step / "tokenizer.json").is_file() and not (step / "tokenizer.txt").exists()
    ck = load_checkpoint(tmp_path / "ck")
    assert isinstance(ck.tokenizer, HFTokenizer) and ck.config.vocab_size == ours.vocab_size == n + 1
    text = "the dog<|user|> sat"
    assert ck.tokenizer.encode(text, allowed_special="all") == ours.encode(text, allowed_special="all")
