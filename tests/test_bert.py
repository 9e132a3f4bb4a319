"""The BERT encoder (gpt/architectures/bert.py): gradients of a tiny encoder end to end against central
differences, the forward pass against a direct NumPy formula and against transformers' BertModel,
padding invariance, attention in both directions, the tied MLM head, and Hugging Face names."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad import gradcheck
from gpt.architectures.bert import (
    HF_NAMES,
    BertConfig,
    BertForMaskedLM,
    BertModel,
    bert_from_hf,
    bert_state_to_hf,
    pool,
)

TINY = dict(vocab_size=11, context_length=8, emb_dim=8, n_heads=2, n_layers=2, hidden_dim=12,
            drop_rate=0.0, attn_drop_rate=0.0)


def tiny(seed=0, **overrides) -> BertModel:
    mg.manual_seed(seed)
    model = BertModel(BertConfig(**{**TINY, **overrides})).eval()
    rng = np.random.default_rng(seed)       # LayerNorms and biases away from their 1/0 initial values
    for p in model.parameters():
        p.data[...] += rng.normal(0, 0.3, p.shape).astype(p.dtype)
    return model


def batch(rng, lengths, seq_len, vocab=11):
    """Random ids (b, T) with garbage ids in the padding, and the attention mask (b, T)."""
    ids = rng.integers(0, vocab, (len(lengths), seq_len))
    mask = (np.arange(seq_len)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    return ids, mask


# ---------------------------------------------------------------------- gradients
GRAD = dict(vocab_size=7, context_length=5, emb_dim=4, hidden_dim=6)   # a smaller model: ~300 parameters


@settings(max_examples=5)
@given(seed=st.integers(0, 2**16), pre_norm=st.booleans(), lengths=st.lists(st.integers(1, 5), min_size=1, max_size=2),
       mode=st.sampled_from(["mean", "cls", "max"]))
def test_tiny_encoder_gradients_end_to_end(seed, pre_norm, lengths, mode):
    """Every parameter's gradient of a pooled sentence vector through embeddings, padding-masked
    attention, erf GELU, LayerNorms and the pooler matches float64 central differences."""
    model = tiny(seed, pre_norm=pre_norm, **GRAD).double()
    ids, mask = batch(np.random.default_rng(seed), lengths, 5, vocab=7)
    types = np.random.default_rng(seed + 1).integers(0, 2, ids.shape)
    params = list(model.parameters())
    fn = lambda *ps: model.pooled_output(pool(model(ids, mask, types), mask, mode)[:, None, :])  # noqa: E731
    assert gradcheck(fn, *params, seed=seed, atol=1e-7, rtol=1e-6)
    assert all(p.grad is not None for p in params)


@settings(max_examples=3)
@given(seed=st.integers(0, 2**16))
def test_masked_lm_gradients_with_the_tied_decoder(seed):
    mg.manual_seed(seed)
    model = BertForMaskedLM(BertConfig(**{**TINY, **GRAD}, add_pooler=False)).eval().double()
    rng = np.random.default_rng(seed)
    for p in model.parameters():
        p.data[...] += rng.normal(0, 0.3, p.shape)
    ids, mask = batch(rng, [4, 2], 4, vocab=7)
    targets = np.where(mask == 1, rng.integers(0, 7, ids.shape), -100)
    fn = lambda *ps: mg.cross_entropy(model(ids, mask), targets)  # noqa: E731
    assert gradcheck(fn, *model.parameters(), seed=seed, atol=1e-7, rtol=1e-6)


# ---------------------------------------------------------------------- forward
def gelu_erf(x):
    return x * 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def layer_norm(x, w, b, eps):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) * w + b


def numpy_bert(state, cfg, ids, mask, types):
    """BERT's forward written out in NumPy, one sentence at a time (no padding at all)."""
    out = []
    for row, m, ty in zip(ids, mask, types):
        n = int(m.sum())
        x = state["tok_emb.weight"][row[:n]] + state["pos_emb.weight"][:n] + state["type_emb.weight"][ty[:n]]
        x = layer_norm(x, state["emb_norm.weight"], state["emb_norm.bias"], cfg.layer_norm_eps)
        for i in range(cfg.n_layers):
            p = lambda name: (state[f"trf_blocks.{i}.{name}.weight"], state[f"trf_blocks.{i}.{name}.bias"])  # noqa: E731
            lin = lambda v, name: v @ p(name)[0].T + p(name)[1]  # noqa: E731
            h, hd = cfg.n_heads, cfg.head_dim
            q, k, v = (lin(x, f"att.W_{s}").reshape(n, h, hd).transpose(1, 0, 2) for s in ("query", "key", "value"))
            s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
            w = np.exp(s - s.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            att = lin((w @ v).transpose(1, 0, 2).reshape(n, -1), "att.out_proj")
            x = layer_norm(x + att, *p("norm1"), cfg.layer_norm_eps)
            ff = lin(gelu_erf(lin(x, "ff.layers.0")), "ff.layers.2")
            x = layer_norm(x + ff, *p("norm2"), cfg.layer_norm_eps)
        out.append(x)
    return out


def test_forward_is_bert_written_out_in_numpy():
    model = tiny(3, layer_norm_eps=1e-12).double()
    rng = np.random.default_rng(3)
    ids, mask = batch(rng, [6, 3, 1], 6)
    types = rng.integers(0, 2, ids.shape)
    with mg.no_grad():
        hidden = model(ids, mask, types).data
    for row, (h, want) in enumerate(zip(hidden, numpy_bert(model.state_dict(), model.cfg, ids, mask, types))):
        np.testing.assert_allclose(h[:len(want)], want, rtol=1e-10, atol=1e-12, err_msg=f"sentence {row}")


def test_pooling_modes_are_the_sentence_transformers_formulas():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((2, 4, 3))
    mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]])
    t = mg.tensor(h)
    np.testing.assert_allclose(pool(t, mask, "cls").data, h[:, 0])
    np.testing.assert_allclose(pool(t, mask, "mean").data, [h[0, :3].mean(0), h[1, 0]])
    np.testing.assert_allclose(pool(t, mask, "max").data, [h[0, :3].max(0), h[1, 0]])
    np.testing.assert_allclose(pool(t, mask, "mean_sqrt_len_tokens").data, [h[0, :3].sum(0) / math.sqrt(3), h[1, 0]])
    np.testing.assert_allclose(pool(t, mask, "weightedmean").data, [(h[0, :3] * [[1], [2], [3]]).sum(0) / 6, h[1, 0]])
    np.testing.assert_allclose(pool(t, mask, "lasttoken").data, [h[0, 2], h[1, 0]])
    both = pool(t, mask, ("cls", "mean")).data
    assert both.shape == (2, 6)
    np.testing.assert_allclose(both[:, 3:], pool(t, mask, "mean").data)
    with pytest.raises(ValueError, match="unknown pooling mode 'sum'"):
        pool(t, mask, "sum")


@pytest.mark.parametrize("pre_norm", [False, True])
def test_a_padded_batch_gives_the_vectors_of_single_sentences(pre_norm):
    model = tiny(5, pre_norm=pre_norm)
    rng = np.random.default_rng(5)
    ids, mask = batch(rng, [7, 2, 5, 1], 8)
    with mg.no_grad():
        hidden = model(ids, mask).data
        pooled = pool(model(ids, mask), mask, "mean").data
        for row, n in enumerate(mask.sum(1)):
            alone = model(ids[row:row + 1, :n])
            np.testing.assert_allclose(hidden[row, :n], alone.data[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(pooled[row], pool(alone, None, "mean").data[0], rtol=1e-5, atol=1e-5)
    assert hidden.dtype == np.float32


def test_attention_looks_both_ways_and_never_at_padding():
    model = tiny(1)
    ids, mask = batch(np.random.default_rng(1), [5, 3], 5)
    for block in model.trf_blocks:
        block.att.keep_attention = True
    with mg.no_grad():
        model(ids, mask)
    w = model.trf_blocks[0].att.last_attn_weights
    assert w.shape == (2, 2, 5, 5)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert (w[1, :, :, 3:] == 0).all()                          # padded keys get exactly no weight
    assert (np.triu(w[0, 0], k=1) > 0).any()                    # a query sees later tokens: not causal
    model.trf_blocks[0].att.keep_attention = False
    assert model.trf_blocks[1].att.last_attn_weights is not None


def test_bad_input_says_what_is_wrong():
    model = tiny(0)
    with pytest.raises(ValueError, match="context length is 8 but 9 tokens"):
        model(np.zeros((1, 9), dtype=np.int64))
    with pytest.raises(ValueError, match="all 0"):
        model(np.zeros((2, 3), dtype=np.int64), np.array([[1, 1, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"attention_mask has shape \(3,\)"):
        model(np.zeros((1, 3), dtype=np.int64), np.ones(3))
    with pytest.raises(ValueError, match="model_type 'gpt2', not 'bert'"):
        BertConfig.from_hf({"model_type": "gpt2"})
    with pytest.raises(ValueError, match="emb_dim .* divisible"):
        BertConfig(emb_dim=10, n_heads=3)


def test_masked_lm_head_is_tied_to_the_word_embeddings():
    model = BertForMaskedLM(BertConfig(**TINY))
    assert model.mlm_head.decoder.weight is model.bert.tok_emb.weight
    names = dict(model.named_parameters())
    assert "mlm_head.decoder.bias" in names and "mlm_head.decoder.weight" not in names
    assert model(np.array([[1, 2, 3]])).shape == (1, 3, 11)


# ---------------------------------------------------------------------- transformers as the oracle
def hf_tiny(masked_lm: bool, seed: int = 0):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=24, max_position_embeddings=12, type_vocab_size=2)
    model = (transformers.BertForMaskedLM if masked_lm else transformers.BertModel)(config).eval()
    with torch.no_grad():   # LayerNorms and biases away from 1 and 0, so a swapped name would show
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return torch, config, model


@pytest.mark.parametrize("masked_lm", [False, True], ids=["BertModel", "BertForMaskedLM"])
def test_matches_transformers_on_a_tiny_random_bert(masked_lm):
    torch, config, ref = hf_tiny(masked_lm)
    tensors = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    ours = bert_from_hf(config.to_dict(), tensors)
    assert type(ours) is (BertForMaskedLM if masked_lm else BertModel)
    rng = np.random.default_rng(0)
    ids, mask = batch(rng, [9, 4, 6], 9, vocab=30)
    types = rng.integers(0, 2, ids.shape)
    with torch.no_grad():
        out = ref(torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    with mg.no_grad():
        got = ours(ids, mask, types)
    if masked_lm:
        np.testing.assert_allclose(got.data, out.logits.numpy(), rtol=1e-4, atol=1e-5)
    else:
        real = mask[:, :, None] == 1              # transformers' padded rows attend too; compare the real tokens
        np.testing.assert_allclose(np.where(real, got.data, 0), np.where(real, out.last_hidden_state.numpy(), 0),
                                   rtol=1e-4, atol=1e-5)
        with mg.no_grad():
            np.testing.assert_allclose(ours.pooled_output(got).data, out.pooler_output.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("masked_lm", [False, True], ids=["BertModel", "BertForMaskedLM"])
def test_hugging_face_names_round_trip(masked_lm):
    torch, config, ref = hf_tiny(masked_lm)
    tensors = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    back = bert_state_to_hf(bert_from_hf(config.to_dict(), tensors))
    skipped = {k for k in tensors if k.endswith("position_ids") or k.startswith("cls.predictions.decoder")}
    assert set(back) == set(tensors) - skipped
    for name, array in back.items():
        np.testing.assert_array_equal(array, tensors[name], err_msg=name)


def test_unknown_tensor_names_are_refused():
    model = tiny(0)
    tensors = bert_state_to_hf(model)
    tensors["encoder.layer.0.attention.self.rotary.weight"] = np.zeros(3)
    with pytest.raises(ValueError, match="unexpected tensor 'encoder.layer.0.attention.self.rotary.weight'"):
        bert_from_hf(BertConfig(**TINY).to_hf(), tensors)
    assert len([k for k in HF_NAMES if "{i}" in k]) == 16     # 8 linear or norm layers per block, weight and bias


def test_lora_on_the_encoder_trains_only_the_low_rank_matrices_and_merges_back():
    from gpt.finetune.lora import LoRALayer, add_lora, merge_lora

    model = tiny(2)
    ids, mask = batch(np.random.default_rng(2), [6, 3], 6)
    with mg.no_grad():
        before = pool(model(ids, mask), mask).data
    frozen = {name: p.data.copy() for name, p in model.named_parameters()}
    add_lora(model, rank=2, alpha=4)
    with mg.no_grad():
        np.testing.assert_array_equal(pool(model(ids, mask), mask).data, before)   # B starts at 0
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(any(p is q for m in model.modules() if isinstance(m, LoRALayer)
                                 for q in m.parameters()) for p in trainable)
    optimizer = mg.optim.SGD(trainable, lr=0.5)
    for _ in range(3):
        loss = (pool(model(ids, mask), mask) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with mg.no_grad():
        tuned = pool(model(ids, mask), mask).data
    assert np.abs(tuned - before).max() > 1e-3
    checked = 0
    for name, p in model.named_parameters():        # every original weight unchanged
        original = name.replace(".linear.", ".")
        if original in frozen:
            np.testing.assert_array_equal(p.data, frozen[original], err_msg=name)
            checked += 1
    assert checked == len(frozen)
    merge_lora(model)
    assert not any(isinstance(m, LoRALayer) for m in model.modules())
    with mg.no_grad():
        np.testing.assert_allclose(pool(model(ids, mask), mask).data, tuned, rtol=1e-5, atol=1e-6)
