"""Sentence embeddings (gpt/embeddings.py): a sentence-transformers folder read and run in NumPy.

With the real all-MiniLM-L6-v2 (in the reference-data folder; skipped when absent): the vectors
equal transformers' BertModel + the same pooling and normalisation, and sentence-transformers'
own, within cosine 0.99999 and 1e-5 absolute; a few pinned components; padded batches equal
single sentences. Without it: the folder reading on a tiny random model written here.
"""
import json

import numpy as np
import pytest

import minigrad as mg
from gpt.architectures.bert import BertConfig, BertModel, bert_state_to_hf, pool
from gpt.embeddings import SentenceEncoder, cosine_similarity, pooling_modes, read_modules
from gpt.safetensors import save_file

SENTENCES = [
    "This framework generates embeddings for each input sentence",
    "Sentences are passed as a list of string.",
    "The quick brown fox jumps over the lazy dog.",
    "hi",
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "A monkey is playing drums.",
    "Fill in the [MASK]: a [SEP] inside a text is a special token.",
    "Python's list is mutable; a tuple is not. " * 40,     # longer than max_seq_length: truncated
]


class TokenizersAdapter:
    """The ``tokenizers`` library's Tokenizer with the interface SentenceEncoder needs (encode with
    the special tokens, token_to_id), without the padding and truncation tokenizer.json configures."""

    def __init__(self, path):
        tokenizers = pytest.importorskip("tokenizers")
        self.tok = tokenizers.Tokenizer.from_file(str(path))
        self.tok.no_padding()
        self.tok.no_truncation()

    def encode(self, text):
        return self.tok.encode(text).ids

    def token_to_id(self, token):
        return self.tok.token_to_id(token)


@pytest.fixture(scope="module")
def minilm_dir(reference_data):
    folder = reference_data / "all-MiniLM-L6-v2"
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"all-MiniLM-L6-v2 is not in {reference_data}")
    return folder


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return SentenceEncoder.from_pretrained(minilm_dir)      # its tokenizer.json through gpt.tokenizer.HFTokenizer


def test_minilm_token_ids_are_the_tokenizers_librarys(minilm, minilm_dir):
    ids, mask = minilm.tokenize(SENTENCES)
    theirs = TokenizersAdapter(minilm_dir / "tokenizer.json")
    for row, m, text in zip(ids, mask, SENTENCES):
        want = theirs.encode(text)
        want = want[:255] + want[-1:] if len(want) > 256 else want
        assert row[m == 1].tolist() == want


@pytest.fixture(scope="module")
def minilm_vectors(minilm):
    return minilm.encode(SENTENCES, batch_size=32)


def assert_same_vectors(got, want):
    assert got.shape == want.shape and got.dtype == np.float32
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.99999
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_minilm_folder_is_read_as_sentence_transformers_configures_it(minilm):
    assert minilm.pooling == ("mean",) and minilm.normalize and minilm.max_seq_length == 256
    assert minilm.dim == 384 and minilm.model.cfg.layer_norm_eps == 1e-12 and minilm.model.cfg.n_layers == 6
    ids, mask = minilm.tokenize([SENTENCES[3], SENTENCES[-1]])
    assert ids.shape == (2, 256) and ids[0, 0] == 101 and ids[0, 2] == 102 and mask[0].sum() == 3
    assert ids[1, -1] == 102 and mask[1].all()              # truncated, ending in [SEP]


def test_minilm_matches_transformers_bert_with_mean_pooling(minilm_dir, minilm, minilm_vectors):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    ref = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    ids, mask = minilm.tokenize(SENTENCES)
    with torch.no_grad():
        hidden = ref(torch.tensor(ids), attention_mask=torch.tensor(mask)).last_hidden_state.numpy()
    m = mask[:, :, None]
    want = (hidden * m).sum(1) / m.sum(1)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert_same_vectors(minilm_vectors, want.astype(np.float32))


def test_minilm_matches_sentence_transformers(minilm_dir, minilm_vectors):
    st = pytest.importorskip("sentence_transformers")
    want = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(SENTENCES, batch_size=32)
    assert_same_vectors(minilm_vectors, want)


def test_minilm_pinned_vectors(minilm_vectors):
    """First components of two sentences, computed once with this code (they agreed with
    sentence-transformers 6.3 to 3e-7); a change in tokenizer, weights or pooling moves them."""
    np.testing.assert_allclose(minilm_vectors[0, :4], [-0.0137174148, -0.0428515561, -0.0156285968, 0.0140537769],
                               rtol=0, atol=2e-6)
    np.testing.assert_allclose(minilm_vectors[1, :4], [0.0564524680, 0.0550023876, 0.0313795507, 0.0339484662],
                               rtol=0, atol=2e-6)


def test_minilm_padded_batches_equal_single_sentences(minilm, minilm_vectors):
    np.testing.assert_allclose(np.linalg.norm(minilm_vectors, axis=1), 1.0, rtol=1e-6)
    for i in (0, 3, 6):
        np.testing.assert_allclose(minilm.encode([SENTENCES[i]])[0], minilm_vectors[i], rtol=0, atol=1e-6)
    np.testing.assert_allclose(minilm.encode(SENTENCES, batch_size=3), minilm_vectors, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(minilm.encode(SENTENCES[4]), minilm.encode([SENTENCES[4]])[0])


def test_minilm_puts_similar_meanings_close(minilm_vectors):
    sim = cosine_similarity(minilm_vectors, minilm_vectors)
    eating, bread, drums = 4, 5, 6
    assert sim[eating, bread] > sim[eating, drums] + 0.3


# ---------------------------------------------------------------------- a tiny folder written here
class CharTokenizer:
    """[CLS]=1, [SEP]=2, [PAD]=0, and one id per character (3 + ord % 20)."""

    def encode(self, text, add_special_tokens=True):
        ids = [3 + ord(c) % 20 for c in text]
        return [1] + ids + [2] if add_special_tokens else ids

    def token_to_id(self, token):
        return {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2}.get(token)


def write_folder(tmp_path, pooling: dict, normalize: bool, max_seq_length=6):
    mg.manual_seed(0)
    cfg = BertConfig(vocab_size=23, context_length=16, emb_dim=8, n_heads=2, n_layers=2, hidden_dim=16)
    model = BertModel(cfg).eval()
    save_file(bert_state_to_hf(model), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_hf()))
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 8, **pooling}))
    (tmp_path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    return model


@pytest.mark.parametrize("pooling, modes", [
    ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, ("cls",)),
    ({"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}, ("max", "mean")),
    ({"pooling_mode": "lasttoken"}, ("lasttoken",)),
])
@pytest.mark.parametrize("normalize", [False, True])
def test_a_sentence_transformers_folder_is_read_and_run(tmp_path, pooling, modes, normalize):
    model = write_folder(tmp_path, pooling, normalize)
    enc = SentenceEncoder.from_pretrained(tmp_path, tokenizer=CharTokenizer())
    assert enc.pooling == modes and enc.normalize == normalize and enc.max_seq_length == 6
    texts = ["abc", "a", "abcdefghij"]
    got = enc.encode(texts, batch_size=2)
    assert got.shape == (3, 8 * len(modes)) and got.dtype == np.float32
    for text, vector in zip(texts, got):
        ids = CharTokenizer().encode(text)
        ids = ids[:5] + ids[-1:] if len(ids) > 6 else ids        # truncated to 6, keeping [SEP]
        with mg.no_grad():
            want = pool(model(np.array([ids])), None, modes).data[0]
        if normalize:
            want = want / np.linalg.norm(want)
        np.testing.assert_allclose(vector, want, rtol=1e-5, atol=1e-6)


def test_pooling_config_keys():
    assert pooling_modes({"pooling_mode_mean_tokens": True}) == ("mean",)
    assert pooling_modes({}) == ("mean",)
    assert pooling_modes({"pooling_mode_cls_token": True, "pooling_mode_mean_sqrt_len_tokens": True}) == (
        "cls", "mean_sqrt_len_tokens")
    assert pooling_modes({"pooling_mode": ["cls", "mean"]}) == ("cls", "mean")
    with pytest.raises(ValueError, match="pooling mode 'attention' is not supported"):
        pooling_modes({"pooling_mode": "attention"})


def test_unsupported_folders_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        SentenceEncoder.from_pretrained(tmp_path / "nothing")
    (tmp_path / "modules.json").write_text(json.dumps([
        {"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(ValueError, match="module 'sentence_transformers.models.Dense' is not supported"):
        read_modules(tmp_path)
    (tmp_path / "modules.json").write_text("[]")
    with pytest.raises(ValueError, match="first module must be the Transformer"):
        read_modules(tmp_path)
    (tmp_path / "modules.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        SentenceEncoder.from_pretrained(tmp_path, tokenizer=CharTokenizer())


def test_gpt_hf_load_model_reads_a_bert_folder_as_the_same_encoder(minilm_dir, minilm):
    from gpt import hf

    model = hf.load_model(minilm_dir)
    assert isinstance(model, BertModel)
    ours = dict(model.state_dict())
    for name, array in minilm.model.state_dict().items():
        np.testing.assert_array_equal(ours[name], array, err_msg=name)
