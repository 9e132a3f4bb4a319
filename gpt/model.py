"""Chapter 4: the GPT architecture.

    ids (b, T) -> token embedding + position embedding -> dropout
              -> n_layers x TransformerBlock
              -> final LayerNorm -> out_head -> logits (b, T, vocab_size)

Each TransformerBlock is pre-LayerNorm with two shortcut (residual) connections:

    x = x + dropout(attention(norm1(x)))
    x = x + dropout(feed_forward(norm2(x)))

The classes carry the book's names and parameter names (``tok_emb``, ``trf_blocks``,
``norm1.scale`` ...), so the book's code and state dicts map one to one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F

from gpt.attention import MultiHeadAttention
from gpt.kv_cache import KVCache
from gpt.positions import EXTRAPOLATING, ALiBi, RotaryEmbedding, T5RelativeBias, check_rope_scaling

POSITION_KINDS = ("learned", "rope", "alibi", "t5", "none")


@dataclass
class GPTConfig:
    """The model's hyper-parameters; the book passes the same keys as a dict (``GPT_CONFIG_124M``).

    ``tie_weights`` shares the token embedding with the output head (as GPT-2 does);
    ``pos_emb`` chooses how the model knows where a token is (see :mod:`gpt.positions`): learned
    absolute positions (GPT-2, the book), rotary embeddings, ALiBi's fixed distance penalty, T5's
    learned bias per distance bucket, or none.

    ``rope_scaling`` (rope only): None, or ``{"type": "linear" | "ntk", "factor": s}`` to run a model
    at s times the length it was trained at (:class:`gpt.positions.RotaryEmbedding`).
    ``num_buckets`` / ``max_distance`` (t5 only): the distance buckets of the bias table; distances
    of ``max_distance`` or more share the last bucket (None: the context length, or num_buckets if larger).
    """

    vocab_size: int = 50257
    context_length: int = 1024
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    tie_weights: bool = False
    pos_emb: str = "learned"
    rope_scaling: dict | None = None
    num_buckets: int = 32
    max_distance: int | None = None

    PRESETS = {}  # filled below

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.emb_dim % self.n_heads:
            raise ValueError(f"emb_dim ({self.emb_dim}) must be divisible by n_heads ({self.n_heads})")
        if self.pos_emb not in POSITION_KINDS:
            raise ValueError(f"pos_emb must be one of {', '.join(POSITION_KINDS)}, not {self.pos_emb!r}")
        check_rope_scaling(self.rope_scaling)
        if self.rope_scaling is not None and self.pos_emb != "rope":
            raise ValueError(f"rope_scaling applies to pos_emb='rope' only, not {self.pos_emb!r}")
        if self.num_buckets < 2 or (self.max_distance is not None and self.max_distance <= self.num_buckets // 2):
            raise ValueError(f"num_buckets must be at least 2 and max_distance more than num_buckets / 2 (the "
                             f"distances with a bucket each), got {self.num_buckets} and {self.max_distance}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "GPTConfig":
        """One of :data:`PRESETS` (``gpt2-small`` ... ``gpt2-xl``, ``tiny``, ``mini``), with overrides."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # the book indexes its config dict: cfg["emb_dim"]
    def __getitem__(self, key: str):
        return getattr(self, key)

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @property
    def t5_max_distance(self) -> int:
        """``max_distance``, or by default the context length (at least ``num_buckets``)."""
        return self.max_distance or max(self.context_length, self.num_buckets)

    @property
    def extrapolates(self) -> bool:
        """Whether the model runs on more than ``context_length`` tokens (no table indexed by position)."""
        return self.pos_emb in EXTRAPOLATING


_GPT2 = dict(vocab_size=50257, context_length=1024, drop_rate=0.1, qkv_bias=False)
PRESETS: dict[str, dict] = {
    # the four published GPT-2 sizes (the book's table in section 4.6 / 5.5)
    "gpt2-small": dict(_GPT2, emb_dim=768, n_layers=12, n_heads=12),
    "gpt2-medium": dict(_GPT2, emb_dim=1024, n_layers=24, n_heads=16),
    "gpt2-large": dict(_GPT2, emb_dim=1280, n_layers=36, n_heads=20),
    "gpt2-xl": dict(_GPT2, emb_dim=1600, n_layers=48, n_heads=25),
    # CPU-sized models for this project's own pretraining (vocab_size is set from the tokenizer)
    "tiny": dict(vocab_size=512, context_length=64, emb_dim=64, n_layers=2, n_heads=2, drop_rate=0.0),
    "mini": dict(vocab_size=4096, context_length=128, emb_dim=256, n_layers=4, n_heads=4, drop_rate=0.1),
}
GPTConfig.PRESETS = PRESETS


def _as_config(cfg) -> GPTConfig:
    return cfg if isinstance(cfg, GPTConfig) else GPTConfig.from_dict(dict(cfg))


class LayerNorm(nn.Module):
    """The book's LayerNorm (section 4.2): normalise the last axis to mean 0 and (biased)
    variance 1, then ``scale * x + shift``. (..., emb_dim) -> (..., emb_dim).
    One fused node (see ``minigrad.ops.layer_norm``)."""

    def __init__(self, emb_dim: int):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(np.ones(emb_dim, dtype=np.float32))
        self.shift = nn.Parameter(np.zeros(emb_dim, dtype=np.float32))

    def forward(self, x):
        return F.layer_norm(x, self.scale, self.shift, eps=self.eps)


class GELU(nn.Module):
    """GELU, tanh approximation (section 4.3): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    Element-wise: any shape -> the same shape."""

    def forward(self, x):
        return F.gelu(x)


class FeedForward(nn.Module):
    """Expand to 4 x emb_dim, GELU, project back (section 4.3). (b, T, d) -> (b, T, d)."""

    def __init__(self, cfg):
        super().__init__()
        cfg = _as_config(cfg)
        self.layers = nn.Sequential(
            nn.Linear(cfg.emb_dim, 4 * cfg.emb_dim),
            GELU(),
            nn.Linear(4 * cfg.emb_dim, cfg.emb_dim),
        )

    def forward(self, x):
        return self.layers(x)


class TransformerBlock(nn.Module):
    """Pre-LayerNorm attention and feed-forward, each inside a shortcut connection (section 4.5).
    x: (b, T, emb_dim) -> (b, T, emb_dim)."""

    def __init__(self, cfg):
        super().__init__()
        cfg = _as_config(cfg)
        self.att = MultiHeadAttention(
            d_in=cfg.emb_dim, d_out=cfg.emb_dim, context_length=cfg.context_length,
            num_heads=cfg.n_heads, dropout=cfg.drop_rate, qkv_bias=cfg.qkv_bias,
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg.emb_dim)
        self.norm2 = LayerNorm(cfg.emb_dim)
        self.drop_shortcut = nn.Dropout(cfg.drop_rate)

    def forward(self, x, kv_cache=None, layer: int = 0, rope=None, start_pos: int = 0, attn_bias=None):
        shortcut = x
        x = self.norm1(x)
        x = self.att(x, kv_cache=kv_cache, layer=layer, rope=rope, start_pos=start_pos, attn_bias=attn_bias)
        x = self.drop_shortcut(x)
        x = x + shortcut

        shortcut = x
        x = self.norm2(x)
        x = self.ff(x)
        x = self.drop_shortcut(x)
        return x + shortcut


class GPTModel(nn.Module):
    """The GPT model (section 4.6). ``model(ids)``: ids (b, T) ints -> logits Tensor (b, T, vocab).

    ``cfg`` is a :class:`GPTConfig` or the book's dict with the same keys. Beyond the book, the
    position scheme is ``cfg.pos_emb`` (:mod:`gpt.positions`); all but ``"learned"`` run on inputs
    longer than ``cfg.context_length`` (``evaluate --context``, ``generate(context_size=)``).
    """

    def __init__(self, cfg):
        super().__init__()
        cfg = _as_config(cfg)
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.emb_dim)
        if cfg.pos_emb == "learned":
            self.pos_emb = nn.Embedding(cfg.context_length, cfg.emb_dim)
        else:
            self.pos_emb = None
        self.rope = None
        if cfg.pos_emb == "rope":
            self.rope = RotaryEmbedding(cfg.head_dim, cfg.context_length, scaling=cfg.rope_scaling)
        self.alibi = ALiBi(cfg.n_heads) if cfg.pos_emb == "alibi" else None
        self.drop_emb = nn.Dropout(cfg.drop_rate)
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg.n_layers)])
        self.final_norm = LayerNorm(cfg.emb_dim)
        self.out_head = nn.Linear(cfg.emb_dim, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.out_head.weight = self.tok_emb.weight
        self.rel_pos_bias = None   # made last, and zero: the other weights are those of the same seed's "none"
        if cfg.pos_emb == "t5":
            self.rel_pos_bias = T5RelativeBias(cfg.n_heads, cfg.num_buckets, cfg.t5_max_distance)

    def set_rope_scaling(self, scaling: dict | None) -> None:
        """Stretch a rope model to longer inputs at inference (see :class:`gpt.positions.RotaryEmbedding`)."""
        if self.cfg.pos_emb != "rope":
            raise ValueError(f"rope_scaling applies to rope models; this one uses {self.cfg.pos_emb!r} positions")
        check_rope_scaling(scaling)
        self.cfg.rope_scaling = scaling
        self.rope = RotaryEmbedding(self.cfg.head_dim, self.cfg.context_length, scaling=scaling)

    def attention_bias(self, start: int, num_tokens: int):
        """The position bias every layer adds to its scores: (H, T, start + T) for queries at positions
        start .. start + T - 1 (an array for alibi, a Tensor for t5), or None."""
        if self.alibi is not None:
            return self.alibi(start, num_tokens, start + num_tokens, dtype=self.tok_emb.weight.dtype)
        if self.rel_pos_bias is not None:
            return self.rel_pos_bias(start, num_tokens, start + num_tokens)
        return None

    def forward(self, in_idx, kv_cache: KVCache | None = None, last_only: bool = False):
        """in_idx: (b, T) token ids (array or Tensor).

        kv_cache: continue from the positions already in the cache (generation; beyond the book).
        last_only: run the output head on the last position only, returning (b, 1, vocab) --
            all that sampling needs, and the head is the largest matrix product of the model.
        """
        ids = np.asarray(in_idx.data if isinstance(in_idx, mg.Tensor) else in_idx)
        if ids.ndim == 1:
            raise ValueError(f"GPTModel expects token ids of shape (batch, tokens), got {ids.shape}; "
                             "add a batch axis with ids[None]")
        batch_size, seq_len = ids.shape
        start = kv_cache.length if kv_cache is not None else 0
        if start + seq_len > self.cfg.context_length and not self.cfg.extrapolates:
            raise ValueError(
                f"the model's context length is {self.cfg.context_length} but {start + seq_len} positions "
                f"were given; crop the input to the last {self.cfg.context_length} tokens"
            )
        x = self.tok_emb(ids)                                                  # (b, T, d)
        if self.pos_emb is not None:
            x = x + self.pos_emb(np.arange(start, start + seq_len))            # (T, d) broadcast over b
        x = self.drop_emb(x)
        bias = self.attention_bias(start, seq_len)                             # built once, shared by layers
        for i, block in enumerate(self.trf_blocks):
            x = block(x, kv_cache=kv_cache, layer=i, rope=self.rope, start_pos=start, attn_bias=bias)
        if kv_cache is not None:
            kv_cache.advance()
        if last_only:
            x = x[:, -1:, :]
        x = self.final_norm(x)
        return self.out_head(x)                                               # (b, T, vocab)

    def new_kv_cache(self, batch_size: int, max_len: int | None = None) -> KVCache:
        """An empty preallocated cache for generating ``batch_size`` sequences of up to ``max_len``
        positions (default: the context length; more only for a model that extrapolates)."""
        c = self.cfg
        max_len = max_len or c.context_length
        if max_len > c.context_length and not c.extrapolates:
            raise ValueError(f"a model with learned positions sees at most {c.context_length} tokens, not {max_len}")
        return KVCache(c.n_layers, batch_size, c.n_heads, c.head_dim, max_len, dtype=self.tok_emb.weight.dtype)


# ---------------------------------------------------------------------- size and cost
def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared parameter counted once), as ``sum(p.numel())`` in the book."""
    return model.num_parameters(trainable_only=trainable_only)


def flops_per_token(cfg, training: bool = False) -> int:
    """Matrix-multiply FLOPs (multiply + add = 2) per token at full context length.

    Per layer: q, k, v and output projections 2 * 4 d^2, feed-forward 2 * 8 d^2, attention
    scores and weighted sum 2 * 2 * T * d; plus the output head 2 * d * V. Training costs about
    three times the forward pass (one forward, two matrix products per weight in backward).
    """
    c = _as_config(cfg)
    d, t = c.emb_dim, c.context_length
    forward = c.n_layers * (24 * d * d + 4 * t * d) + 2 * d * c.vocab_size
    return 3 * forward if training else forward


def model_summary(model: "GPTModel") -> dict:
    """Parameters, their float32 size in MB, and FLOPs per token, for ``python -m gpt`` and the book's
    section 4.6 figures."""
    total = count_parameters(model)
    tied = model.out_head.weight is model.tok_emb.weight
    return {
        "parameters": total,
        "trainable": count_parameters(model, trainable_only=True),
        "parameters_without_head": total - (0 if tied else model.out_head.weight.size),
        "size_mb": total * 4 / (1024 * 1024),
        "flops_per_token_forward": flops_per_token(model.cfg),
        "flops_per_token_training": flops_per_token(model.cfg, training=True),
    }
