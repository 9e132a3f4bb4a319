"""One configuration for today's decoder families: Llama 3, Qwen3 (dense and mixture-of-experts)
and Gemma 3 (beyond the book).

The fields carry this project's names (the book's ``emb_dim``, ``n_heads``, ``n_layers``,
``context_length``); the Hugging Face ``config.json`` key each one comes from is given beside it,
so a published configuration reads across line by line.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

ARCHES = ("llama", "qwen3", "qwen3-moe", "gemma3")
LAYER_TYPES = ("sliding_attention", "full_attention")
ROPE_TYPES = ("llama3", "linear")
LLAMA3_ROPE_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def check_decoder_rope_scaling(scaling) -> dict | None:
    """``rope_scaling`` in transformers' form, checked and with the type under ``rope_type``:
    None, ``{"rope_type": "linear", "factor": s}`` or ``{"rope_type": "llama3", "factor": s,
    "low_freq_factor": l, "high_freq_factor": h, "original_max_position_embeddings": L}``."""
    if scaling is None:
        return None
    if not isinstance(scaling, dict):
        raise ValueError(f"rope_scaling must be None or a dict with rope_type llama3 or linear, got {scaling!r}")
    scaling = dict(scaling)
    kind = scaling.pop("rope_type", scaling.pop("type", None))
    if kind not in ROPE_TYPES:
        raise ValueError(f"rope_scaling rope_type must be one of {', '.join(ROPE_TYPES)}, not {kind!r}")
    needed = LLAMA3_ROPE_KEYS if kind == "llama3" else ("factor",)
    if set(scaling) != set(needed):
        raise ValueError(f"rope_scaling of type {kind} needs exactly the keys {', '.join(needed)}, got "
                         f"{', '.join(sorted(scaling)) or 'none'}")
    for key in needed:
        v = scaling[key]
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < math.inf:
            raise ValueError(f"rope_scaling {key} must be a positive finite number, got {v!r}")
    if kind == "llama3" and not scaling["high_freq_factor"] > scaling["low_freq_factor"]:
        raise ValueError(f"rope_scaling high_freq_factor ({scaling['high_freq_factor']}) must exceed "
                         f"low_freq_factor ({scaling['low_freq_factor']})")
    return {"rope_type": kind, **scaling}


@dataclass
class DecoderConfig:
    """Hyper-parameters of a Llama 3 / Qwen3 / Qwen3-MoE / Gemma 3 decoder.

    arch:            "llama" | "qwen3" | "qwen3-moe" | "gemma3" (which model class builds it)
    vocab_size:      vocab_size
    context_length:  max_position_embeddings (the longest input the model was trained for)
    emb_dim:         hidden_size
    n_heads:         num_attention_heads (query heads)
    n_kv_heads:      num_key_value_heads (key/value heads, each shared by n_heads / n_kv_heads queries)
    head_dim:        head_dim (None: emb_dim // n_heads)
    n_layers:        num_hidden_layers
    hidden_dim:      intermediate_size (the gated feed-forward's inner width)
    qk_norm:         RMSNorm over head_dim on queries and keys before RoPE (Qwen3, Gemma 3)
    rope_theta:      rope_theta (the RoPE base; Gemma 3: of the global layers)
    rope_scaling:    rope_scaling (see :func:`check_decoder_rope_scaling`; Gemma 3: global layers only)
    tie_weights:     tie_word_embeddings (the output head shares the token embedding)
    norm_eps:        rms_norm_eps
    sliding_window:  sliding_window W (a query sees itself and the W - 1 keys before it), for
                     layers of type "sliding_attention"
    layer_types:     layer_types, one per layer ("sliding_attention" or "full_attention");
                     None: all full, except Gemma 3's five local layers to one global
    rope_local_theta: rope_local_base_freq (Gemma 3's RoPE base of the sliding layers)
    query_pre_attn_scalar: query_pre_attn_scalar (Gemma 3: scores scaled by its ^-0.5; None: head_dim)
    n_experts, n_experts_per_token, moe_hidden_dim, norm_topk_prob, router_aux_loss_coef:
                     num_experts, num_experts_per_tok, moe_intermediate_size, norm_topk_prob,
                     router_aux_loss_coef (Qwen3-MoE)
    drop_rate:       dropout on attention weights and before each shortcut (0: none, as published)
    """

    arch: str = "llama"
    vocab_size: int = 4096
    context_length: int = 128
    emb_dim: int = 256
    n_heads: int = 4
    n_kv_heads: int = 4
    head_dim: int | None = None
    n_layers: int = 4
    hidden_dim: int = 768
    qk_norm: bool = False
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    tie_weights: bool = False
    norm_eps: float = 1e-5
    sliding_window: int | None = None
    layer_types: list | None = None
    rope_local_theta: float | None = None
    query_pre_attn_scalar: float | None = None
    n_experts: int = 0
    n_experts_per_token: int = 0
    moe_hidden_dim: int = 0
    norm_topk_prob: bool = True
    router_aux_loss_coef: float = 0.0
    drop_rate: float = 0.0

    PRESETS = {}  # filled by gpt.architectures.presets

    def __post_init__(self):
        if self.arch not in ARCHES:
            raise ValueError(f"arch must be one of {', '.join(ARCHES)}, not {self.arch!r}")
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_kv_heads", "n_layers", "hidden_dim"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        if self.head_dim is None:
            if self.emb_dim % self.n_heads:
                raise ValueError(f"emb_dim ({self.emb_dim}) is not divisible by n_heads ({self.n_heads}); "
                                 "give head_dim explicitly")
            self.head_dim = self.emb_dim // self.n_heads
        if isinstance(self.head_dim, bool) or not isinstance(self.head_dim, numbers.Integral) \
                or self.head_dim <= 0 or self.head_dim % 2:
            raise ValueError(f"head_dim must be a positive even integer (RoPE rotates pairs), got {self.head_dim!r}")
        self.rope_scaling = check_decoder_rope_scaling(self.rope_scaling)
        for name in ("rope_theta", "norm_eps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < math.inf:
                raise ValueError(f"{name} must be a positive finite number, got {v!r}")
        if self.arch == "gemma3":
            if self.rope_local_theta is None:
                self.rope_local_theta = 10000.0
            if self.layer_types is None:   # five local (sliding) layers, then one global, repeated
                self.layer_types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention"
                                    for i in range(self.n_layers)]
        if self.layer_types is not None:
            self.layer_types = list(self.layer_types)
            if len(self.layer_types) != self.n_layers:
                raise ValueError(f"layer_types has {len(self.layer_types)} entries for {self.n_layers} layers")
            bad = sorted(set(self.layer_types) - set(LAYER_TYPES))
            if bad:
                raise ValueError(f"layer_types may hold only {' and '.join(LAYER_TYPES)}, not {', '.join(bad)}")
        if "sliding_attention" in (self.layer_types or ()):
            w = self.sliding_window
            if isinstance(w, bool) or not isinstance(w, numbers.Integral) or w < 1:
                raise ValueError(f"sliding layers need a sliding_window of at least 1, got {w!r}")
        if self.rope_local_theta is not None and not 0 < self.rope_local_theta < math.inf:
            raise ValueError(f"rope_local_theta must be a positive finite number, got {self.rope_local_theta!r}")
        if self.query_pre_attn_scalar is not None and not 0 < self.query_pre_attn_scalar < math.inf:
            raise ValueError(f"query_pre_attn_scalar must be a positive finite number, got {self.query_pre_attn_scalar!r}")
        if self.arch == "qwen3-moe":
            for name in ("n_experts", "n_experts_per_token", "moe_hidden_dim"):
                v = getattr(self, name)
                if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                    raise ValueError(f"a qwen3-moe model needs a positive integer {name}, got {v!r}")
            if self.n_experts_per_token > self.n_experts:
                raise ValueError(f"n_experts_per_token ({self.n_experts_per_token}) exceeds n_experts ({self.n_experts})")
        if not 0.0 <= self.router_aux_loss_coef < math.inf:
            raise ValueError(f"router_aux_loss_coef must be >= 0, got {self.router_aux_loss_coef!r}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")

    # ------------------------------------------------------------------ derived
    @property
    def extrapolates(self) -> bool:
        """RoPE has no table indexed by position: the model runs past ``context_length``."""
        return True

    @property
    def n_kv_groups(self) -> int:
        """Query heads per key/value head."""
        return self.n_heads // self.n_kv_heads

    def layer_type(self, i: int) -> str:
        return self.layer_types[i] if self.layer_types is not None else "full_attention"

    def window(self, i: int) -> int | None:
        """Layer i's sliding window, or None for a full (global) attention layer."""
        return self.sliding_window if self.layer_type(i) == "sliding_attention" else None

    # ------------------------------------------------------------------ dicts
    @classmethod
    def from_preset(cls, name: str, **overrides) -> "DecoderConfig":
        if name not in cls.PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of: {', '.join(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, d: dict) -> "DecoderConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __getitem__(self, key: str):   # the book indexes its config dict: cfg["emb_dim"]
        return getattr(self, key)
