"""BERT: the transformer's encoder, built from the same parts as chapter 4's GPT (beyond the book).

    ids (b, T), attention_mask (b, T), token_type_ids (b, T)
        -> token + position + token-type embedding -> LayerNorm -> dropout
        -> n_layers x EncoderBlock
        -> hidden states (b, T, emb_dim)
        -> pooling (CLS or masked mean)        -> a sentence vector (b, emb_dim)
        or MaskedLMHead                        -> logits (b, T, vocab_size)

What differs from the GPT (gpt/model.py), and nothing else does:

* **Attention sees both directions.** No causal mask: every token attends to every other one.
  The only mask hides padding: ``attention_mask`` (1 = token, 0 = padding) becomes a (b, 1, 1, T)
  mask over the *keys*, applied inside the same fused ``masked_softmax`` the GPT uses. Padding
  therefore changes nothing for the real tokens, and a batch of padded sentences gives the same
  vectors as the sentences one at a time.
* **Three embeddings are summed**: token, learned absolute position, and token type ("segment":
  0 for the first sentence of a pair, 1 for the second), then **LayerNorm** (eps 1e-12 in BERT)
  and dropout. The GPT has no type embedding and no norm there.
* **Post-LayerNorm blocks** (as the original transformer): ``x = norm1(x + attention(x))``,
  ``x = norm2(x + feed_forward(x))``, so there is no final norm. ``pre_norm=True`` gives the GPT's
  arrangement (norm inside the shortcut, a final norm at the end) for experiments.
* **The exact GELU**, x Phi(x) with the erf (``minigrad.ops.gelu_erf``), where GPT-2 uses the tanh
  approximation.
* **Outputs**: one vector per token, not next-token logits. For a sentence vector they are pooled
  (:func:`pool`: the [CLS] token's vector, or the mean over real tokens as sentence-transformers
  does); for pretraining, :class:`MaskedLMHead` predicts masked tokens through a dense + GELU +
  LayerNorm transform and a decoder tied to the word embeddings (plus its own bias).

Parameter names follow the GPT's (``tok_emb``, ``trf_blocks.{i}.att.W_query`` ...); the table
:data:`HF_NAMES` maps Hugging Face's ``BertModel`` names onto them, and :func:`load_hf_bert` loads a
Hugging Face folder (``model_type: "bert"``, ``model.safetensors``).

Shapes: b = batch, T = tokens, d = emb_dim, H = heads, hd = d / H, V = vocab_size.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F

ACTIVATIONS = ("gelu", "gelu_tanh", "relu")
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")   # sentence-transformers' names


@dataclass
class BertConfig:
    """BERT's hyper-parameters, under the GPT's names where the concept is the same.

    Hugging Face's config.json keys: ``hidden_size`` = emb_dim, ``num_hidden_layers`` = n_layers,
    ``num_attention_heads`` = n_heads, ``intermediate_size`` = hidden_dim, ``max_position_embeddings``
    = context_length (:meth:`from_hf` / :meth:`to_hf` translate).
    """

    vocab_size: int = 30522
    context_length: int = 512
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    hidden_dim: int = 3072
    type_vocab_size: int = 2
    drop_rate: float = 0.1
    attn_drop_rate: float = 0.1
    layer_norm_eps: float = 1e-12
    activation: str = "gelu"          # "gelu" is the exact erf form; "gelu_tanh" GPT-2's approximation
    pre_norm: bool = False
    pad_token_id: int = 0
    add_pooler: bool = True            # BERT's tanh layer over [CLS] (pretrained for next-sentence prediction)
    initializer_range: float = 0.02
    arch: str = "bert"

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers", "hidden_dim",
                     "type_vocab_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.emb_dim % self.n_heads:
            raise ValueError(f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads})")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {self.activation!r}")
        for name in ("drop_rate", "attn_drop_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.arch != "bert":
            raise ValueError(f"BertConfig is for arch 'bert', not {self.arch!r}")

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @property
    def extrapolates(self) -> bool:
        return False          # learned absolute positions: at most context_length tokens

    def __getitem__(self, key: str):
        return getattr(self, key)

    @classmethod
    def from_dict(cls, d: dict) -> "BertConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown BERT config keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_hf(cls, hf: dict) -> "BertConfig":
        """From a Hugging Face ``config.json`` of ``model_type: "bert"``."""
        if hf.get("model_type", "bert") != "bert":
            raise ValueError(f"config.json has model_type {hf.get('model_type')!r}, not 'bert'")
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"position_embedding_type {hf['position_embedding_type']!r} is not supported "
                             "(only BERT's learned 'absolute' positions)")
        act = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
        if hf.get("hidden_act", "gelu") not in act:
            raise ValueError(f"hidden_act {hf['hidden_act']!r} is not supported; one of {', '.join(act)}")
        return cls(
            vocab_size=hf["vocab_size"], context_length=hf.get("max_position_embeddings", 512),
            emb_dim=hf["hidden_size"], n_heads=hf["num_attention_heads"], n_layers=hf["num_hidden_layers"],
            hidden_dim=hf["intermediate_size"], type_vocab_size=hf.get("type_vocab_size", 2),
            drop_rate=hf.get("hidden_dropout_prob", 0.1), attn_drop_rate=hf.get("attention_probs_dropout_prob", 0.1),
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12), activation=act[hf.get("hidden_act", "gelu")],
            pad_token_id=hf.get("pad_token_id", 0) or 0, initializer_range=hf.get("initializer_range", 0.02),
        )

    def to_hf(self) -> dict:
        """The Hugging Face ``config.json`` of this configuration (post-norm only: HF's BERT has no pre-norm)."""
        if self.pre_norm:
            raise ValueError("Hugging Face's BertModel is post-LayerNorm; a pre_norm model has no HF config")
        act = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}[self.activation]
        return {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": self.vocab_size,
                "hidden_size": self.emb_dim, "num_hidden_layers": self.n_layers,
                "num_attention_heads": self.n_heads, "intermediate_size": self.hidden_dim,
                "hidden_act": act, "hidden_dropout_prob": self.drop_rate,
                "attention_probs_dropout_prob": self.attn_drop_rate,
                "max_position_embeddings": self.context_length, "type_vocab_size": self.type_vocab_size,
                "initializer_range": self.initializer_range, "layer_norm_eps": self.layer_norm_eps,
                "pad_token_id": self.pad_token_id, "position_embedding_type": "absolute"}


# published sizes (BERT paper; MiniLM-L6-H384 as in all-MiniLM-L6-v2's config.json) and a CPU size
PRESETS: dict[str, dict] = {
    "bert-base": dict(emb_dim=768, n_layers=12, n_heads=12, hidden_dim=3072),
    "bert-large": dict(emb_dim=1024, n_layers=24, n_heads=16, hidden_dim=4096),
    "minilm-l6-h384": dict(emb_dim=384, n_layers=6, n_heads=12, hidden_dim=1536),
    "bert-mini": dict(vocab_size=4096, context_length=128, emb_dim=256, n_layers=4, n_heads=4, hidden_dim=1024),
}


def _as_config(cfg) -> BertConfig:
    return cfg if isinstance(cfg, BertConfig) else BertConfig.from_dict(dict(cfg))


def padding_mask(attention_mask, batch_size: int, seq_len: int) -> np.ndarray | None:
    """(b, T) with 1 for tokens and 0 for padding -> (b, 1, 1, T) bool, True at padded *keys*
    (broadcast over heads and queries); None when there is no padding."""
    if attention_mask is None:
        return None
    m = np.asarray(attention_mask.data if isinstance(attention_mask, mg.Tensor) else attention_mask)
    if m.shape != (batch_size, seq_len):
        raise ValueError(f"attention_mask has shape {m.shape} but the ids have {(batch_size, seq_len)}")
    hidden = m == 0
    if not hidden.any():
        return None
    if hidden.all(axis=1).any():
        raise ValueError("a row of attention_mask is all 0: every sequence needs at least one token")
    return hidden[:, None, None, :]


class BidirectionalAttention(nn.Module):
    """Multi-head self-attention without a causal mask. x: (b, T, d) -> (b, T, d).

    The GPT's ``MultiHeadAttention`` minus the causal mask and the KV cache, plus a padding mask
    over the keys. Keeps its softmax weights (b, H, T, T) in ``last_attn_weights`` when
    ``keep_attention`` is True (for the look-inside page).
    """

    def __init__(self, d_in: int, d_out: int, num_heads: int, dropout: float):
        super().__init__()
        if d_out % num_heads:
            raise ValueError(f"d_out ({d_out}) must be divisible by num_heads ({num_heads})")
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out)
        self.W_key = nn.Linear(d_in, d_out)
        self.W_value = nn.Linear(d_in, d_out)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.keep_attention = False
        self.last_attn_weights = None

    def _heads(self, t, b: int, num_tokens: int):
        # (b, T, d_out) -> (b, T, H, hd) -> (b, H, T, hd)
        return t.reshape(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, mask=None):
        """mask: None, or bool broadcastable to (b, H, T, T), True where a query may not look
        (from :func:`padding_mask`: (b, 1, 1, T))."""
        b, num_tokens, _ = x.shape
        queries = self._heads(self.W_query(x), b, num_tokens)
        keys = self._heads(self.W_key(x), b, num_tokens)
        values = self._heads(self.W_value(x), b, num_tokens)
        attn_scores = queries @ keys.transpose(2, 3)                           # (b, H, T, T)
        # softmax(scores / sqrt(hd)) with padded keys at -inf, one fused pass (no padding: nothing hidden)
        hidden = np.False_ if mask is None else mask
        attn_weights = F.masked_softmax(attn_scores, hidden, scale=1.0 / math.sqrt(self.head_dim))
        if self.keep_attention:
            self.last_attn_weights = attn_weights.data
        attn_weights = self.dropout(attn_weights)
        context = (attn_weights @ values).transpose(1, 2)                       # (b, T, H, hd)
        return self.out_proj(context.reshape(b, num_tokens, self.d_out))


class Activation(nn.Module):
    """The feed-forward's non-linearity by name: "gelu" (exact, erf), "gelu_tanh", "relu"."""

    def __init__(self, name: str = "gelu"):
        super().__init__()
        self.name = name
        self.fn = {"gelu": F.gelu_erf, "gelu_tanh": F.gelu, "relu": F.relu}[name]

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


class FeedForward(nn.Module):
    """Linear (d -> hidden_dim), GELU, Linear back (as the GPT's, with BERT's exact GELU). (b, T, d) -> (b, T, d)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg.emb_dim, cfg.hidden_dim),
            Activation(cfg.activation),
            nn.Linear(cfg.hidden_dim, cfg.emb_dim),
        )

    def forward(self, x):
        return self.layers(x)


class EncoderBlock(nn.Module):
    """Attention and feed-forward, each in a shortcut connection followed by LayerNorm (post-norm,
    BERT), or preceded by it (``cfg.pre_norm``, the GPT's arrangement). x: (b, T, d) -> (b, T, d)."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.pre_norm = cfg.pre_norm
        self.att = BidirectionalAttention(cfg.emb_dim, cfg.emb_dim, cfg.n_heads, cfg.attn_drop_rate)
        self.norm1 = nn.LayerNorm(cfg.emb_dim, eps=cfg.layer_norm_eps)
        self.ff = FeedForward(cfg)
        self.norm2 = nn.LayerNorm(cfg.emb_dim, eps=cfg.layer_norm_eps)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x, mask=None):
        if self.pre_norm:
            x = x + self.drop_shortcut(self.att(self.norm1(x), mask))
            return x + self.drop_shortcut(self.ff(self.norm2(x)))
        x = self.norm1(x + self.drop_shortcut(self.att(x, mask)))
        return self.norm2(x + self.drop_shortcut(self.ff(x)))


class BertModel(nn.Module):
    """The encoder. ``model(ids, attention_mask, token_type_ids)`` -> hidden states Tensor (b, T, d).

    ids: (b, T) ints; attention_mask: (b, T), 1 for tokens, 0 for padding (None: no padding);
    token_type_ids: (b, T) in [0, type_vocab_size) (None: all 0). Padding goes on the right (the
    positions count from 0 at the first token).
    """

    def __init__(self, cfg):
        super().__init__()
        cfg = _as_config(cfg)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        self.type_emb = nn.Embedding(cfg.type_vocab_size, cfg.emb_dim)
        self.emb_norm = nn.LayerNorm(cfg.emb_dim, eps=cfg.layer_norm_eps)
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.Sequential(*[EncoderBlock(cfg) for _ in range(cfg.n_layers)])
        self.final_norm = nn.LayerNorm(cfg.emb_dim, eps=cfg.layer_norm_eps) if cfg.pre_norm else nn.Identity()
        self.pooler = nn.Linear(cfg.emb_dim, cfg.emb_dim) if cfg.add_pooler else None
        init_bert_weights(self, cfg.initializer_range)

    def forward(self, in_idx, attention_mask=None, token_type_ids=None):
        ids = np.asarray(in_idx.data if isinstance(in_idx, mg.Tensor) else in_idx)
        if ids.ndim != 2:
            raise ValueError(f"BertModel expects token ids of shape (batch, tokens), got {ids.shape}")
        batch_size, seq_len = ids.shape
        if seq_len > self.cfg.context_length:
            raise ValueError(f"the encoder's context length is {self.cfg.context_length} but {seq_len} tokens "
                             f"were given; truncate the input")
        mask = padding_mask(attention_mask, batch_size, seq_len)               # (b, 1, 1, T) or None
        types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)
        x = self.tok_emb(ids) + self.pos_emb(np.arange(seq_len)) + self.type_emb(types)   # (b, T, d)
        x = self.drop_emb(self.emb_norm(x))
        for block in self.trf_blocks:
            x = block(x, mask)
        return self.final_norm(x)                                              # (b, T, d)

    def pooled_output(self, hidden):
        """BERT's own pooler: tanh(Linear(hidden[:, 0])), the [CLS] vector its next-sentence
        objective trained. (b, T, d) -> (b, d). Sentence-transformers models use :func:`pool` instead."""
        if self.pooler is None:
            raise ValueError("this model has no pooler (add_pooler=False)")
        return F.tanh(self.pooler(hidden[:, 0]))


def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: weights of Linear and Embedding layers N(0, std^2), biases 0, LayerNorm 1 and 0."""
    rng = mg.random.default_generator()
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            m.weight.data[...] = rng.standard_normal(m.weight.shape, dtype=np.float32) * np.float32(std)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.data[...] = 0


def pool(hidden, attention_mask=None, mode="mean"):
    """A sentence vector from the token vectors, as sentence-transformers' ``Pooling`` module does.

    hidden: (b, T, d) Tensor; attention_mask: (b, T), 1 for tokens, 0 for padding (None: all tokens;
    padding on the right). mode, under sentence-transformers' names:
      "cls"                   the first token's vector
      "mean"                  the mean over the tokens
      "max"                   the element-wise maximum over the tokens
      "mean_sqrt_len_tokens"  the sum over the tokens divided by sqrt(number of tokens)
      "weightedmean"          the mean weighted by position 1, 2, ..., T (later tokens count more)
      "lasttoken"             the last token's vector
    A tuple of modes concatenates the vectors in that order. -> (b, d * number of modes).
    """
    modes = (mode,) if isinstance(mode, str) else tuple(mode)
    b, t, _ = hidden.shape
    m = np.ones((b, t), dtype=bool) if attention_mask is None else np.asarray(attention_mask) != 0
    weights = m.astype(hidden.dtype)[:, :, None]                             # (b, T, 1)
    counts = np.maximum(weights.sum(axis=1), 1e-9).astype(hidden.dtype)     # (b, 1), as sentence-transformers' clamp
    out = []
    for one in modes:
        if one == "cls":
            out.append(hidden[:, 0])
        elif one == "mean":
            out.append((hidden * weights).sum(axis=1) / counts)
        elif one == "mean_sqrt_len_tokens":
            out.append((hidden * weights).sum(axis=1) / np.sqrt(counts))
        elif one == "weightedmean":
            by_position = weights * np.arange(1, t + 1, dtype=hidden.dtype)[None, :, None]
            out.append((hidden * by_position).sum(axis=1) / by_position.sum(axis=1))
        elif one == "max":
            out.append(hidden.masked_fill(~m[:, :, None], -1e9).max(axis=1))
        elif one == "lasttoken":
            out.append(hidden[np.arange(b), m.sum(axis=1) - 1])
        else:
            raise ValueError(f"unknown pooling mode {one!r}; choose from {', '.join(POOLING_MODES)}")
    return out[0] if len(out) == 1 else mg.concat(out, axis=-1)


class MaskedLMHead(nn.Module):
    """BERT's masked-language-model head: (b, T, d) -> logits (b, T, V).

    transform: Linear (d -> d), GELU, LayerNorm; then the decoder, whose weight *is* the word
    embedding matrix (tied: the same Parameter) plus a bias of its own.
    """

    def __init__(self, cfg: BertConfig, tok_emb: nn.Embedding):
        super().__init__()
        self.transform = nn.Linear(cfg.emb_dim, cfg.emb_dim)
        self.act = Activation(cfg.activation)
        self.norm = nn.LayerNorm(cfg.emb_dim, eps=cfg.layer_norm_eps)
        self.decoder = nn.Linear(cfg.emb_dim, cfg.vocab_size)
        self.decoder.weight = tok_emb.weight            # tied
        self.decoder.bias.data[...] = 0

    def forward(self, hidden):
        return self.decoder(self.norm(self.act(self.transform(hidden))))


class BertForMaskedLM(nn.Module):
    """The encoder with its masked-language-model head (what BERT is pretrained as).
    ``model(ids, attention_mask, token_type_ids)`` -> logits (b, T, V)."""

    def __init__(self, cfg):
        super().__init__()
        cfg = _as_config(cfg)
        self.cfg = cfg
        self.bert = BertModel(cfg)
        self.mlm_head = MaskedLMHead(cfg, self.bert.tok_emb)
        init_bert_weights(self.mlm_head.transform, cfg.initializer_range)

    def forward(self, in_idx, attention_mask=None, token_type_ids=None):
        return self.mlm_head(self.bert(in_idx, attention_mask, token_type_ids))


# ---------------------------------------------------------------------- Hugging Face checkpoints
#: Hugging Face BertModel tensor names -> this module's (``{i}`` is the layer). BertForMaskedLM's
#: names carry a ``bert.`` prefix and add ``cls.predictions.*``; old checkpoints say gamma/beta
#: for a LayerNorm's weight/bias.
HF_NAMES: dict[str, str] = {
    "embeddings.word_embeddings.weight": "tok_emb.weight",
    "embeddings.position_embeddings.weight": "pos_emb.weight",
    "embeddings.token_type_embeddings.weight": "type_emb.weight",
    "embeddings.LayerNorm.weight": "emb_norm.weight",
    "embeddings.LayerNorm.bias": "emb_norm.bias",
    **{f"encoder.layer.{{i}}.{hf}.{p}": f"trf_blocks.{{i}}.{ours}.{p}"
       for hf, ours in (("attention.self.query", "att.W_query"), ("attention.self.key", "att.W_key"),
                        ("attention.self.value", "att.W_value"), ("attention.output.dense", "att.out_proj"),
                        ("attention.output.LayerNorm", "norm1"), ("intermediate.dense", "ff.layers.0"),
                        ("output.dense", "ff.layers.2"), ("output.LayerNorm", "norm2"))
       for p in ("weight", "bias")},
    "pooler.dense.weight": "pooler.weight",
    "pooler.dense.bias": "pooler.bias",
}
#: BertForMaskedLM's head (``cls.predictions.decoder.weight`` is the tied word embedding)
HF_MLM_NAMES: dict[str, str] = {
    "cls.predictions.transform.dense.weight": "mlm_head.transform.weight",
    "cls.predictions.transform.dense.bias": "mlm_head.transform.bias",
    "cls.predictions.transform.LayerNorm.weight": "mlm_head.norm.weight",
    "cls.predictions.transform.LayerNorm.bias": "mlm_head.norm.bias",
    "cls.predictions.bias": "mlm_head.decoder.bias",
}
_IGNORED = re.compile(r"(bert\.)?embeddings\.position_ids|cls\.predictions\.decoder\.(weight|bias)|cls\.seq_relationship\..*")


def _our_name(hf_name: str) -> str | None:
    """This module's name of a Hugging Face tensor name (without any ``bert.`` prefix), or None."""
    name = hf_name.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    if name in HF_MLM_NAMES:
        return HF_MLM_NAMES[name]
    layer = re.match(r"encoder\.layer\.(\d+)\.(.*)", name)
    if layer:
        ours = HF_NAMES.get(f"encoder.layer.{{i}}.{layer.group(2)}")
        return ours.replace("{i}", layer.group(1)) if ours else None
    return HF_NAMES.get(name)


def bert_state_from_hf(tensors: dict) -> tuple[dict, bool]:
    """Rename a Hugging Face BERT checkpoint's tensors (name -> array) to this module's names.

    Returns (state dict, has_mlm_head). With the head (BertForMaskedLM), the encoder's names get
    a ``bert.`` prefix to match :class:`BertForMaskedLM`; without it they match :class:`BertModel`.
    Raises ValueError naming the first tensor it does not know.
    """
    has_head = any(k.startswith("cls.predictions.") for k in tensors)
    state = {}
    for hf_name, array in tensors.items():
        if _IGNORED.fullmatch(hf_name):
            continue
        bare = hf_name[len("bert."):] if hf_name.startswith("bert.") else hf_name
        ours = _our_name(bare)
        if ours is None:
            raise ValueError(f"unexpected tensor {hf_name!r} in a BERT checkpoint (not in gpt.architectures.bert.HF_NAMES)")
        if has_head and not ours.startswith("mlm_head."):
            ours = "bert." + ours
        state[ours] = np.asarray(array, dtype=np.float32)
    return state, has_head


def bert_from_hf(hf_config: dict, tensors: dict):
    """A :class:`BertModel` (or :class:`BertForMaskedLM`, when the checkpoint has the MLM head) from a
    Hugging Face ``config.json`` dict and its tensors (name -> array). For ``gpt.hf.load_model``."""
    cfg = BertConfig.from_hf(hf_config)
    has_pooler = any(k.endswith("pooler.dense.weight") for k in tensors)
    cfg = dataclasses.replace(cfg, add_pooler=has_pooler)
    state, has_head = bert_state_from_hf(tensors)
    model = BertForMaskedLM(cfg) if has_head else BertModel(cfg)
    model.load_state_dict(state)
    return model.eval()


def load_hf_bert(directory: str | os.PathLike):
    """Load a Hugging Face BERT folder (``config.json`` with ``model_type: "bert"`` and
    ``model.safetensors``) -> :class:`BertModel` in eval mode (or :class:`BertForMaskedLM`)."""
    from gpt.safetensors import load_file

    folder = Path(directory)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: a Hugging Face BERT folder holds config.json and "
                                    "model.safetensors (pytorch_model.bin is not read; convert it to safetensors)")
    hf_config = json.loads(config_path.read_text(encoding="utf-8"))
    return bert_from_hf(hf_config, load_file(weights_path, mmap=True))


def bert_state_to_hf(model) -> dict[str, np.ndarray]:
    """The reverse of :func:`bert_state_from_hf`: this model's tensors under Hugging Face's names."""
    reverse = {}
    for hf, ours in {**HF_NAMES, **HF_MLM_NAMES}.items():
        if "{i}" in hf:
            for i in range(model.cfg.n_layers):
                reverse[ours.replace("{i}", str(i))] = hf.replace("{i}", str(i))
        else:
            reverse[ours] = hf
    out = {}
    for name, array in model.state_dict().items():
        bare = name[len("bert."):] if name.startswith("bert.") else name
        hf = reverse[bare]
        out[("bert." + hf) if name.startswith("bert.") else hf] = np.ascontiguousarray(array)
    return out
