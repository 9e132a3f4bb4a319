"""A Hugging Face ``config.json`` <-> this project's :class:`~gpt.architectures.config.DecoderConfig`.

The keys are those ``transformers`` writes (they carry over to every checkpoint on the hub)::

    config.json                          DecoderConfig
    model_type llama|qwen3|qwen3_moe|    arch "llama" | "qwen3" | "qwen3-moe" | "gemma3"
      gemma3_text
    vocab_size                           vocab_size
    hidden_size                          emb_dim
    num_hidden_layers                    n_layers
    num_attention_heads                  n_heads
    num_key_value_heads                  n_kv_heads            (absent: n_heads)
    head_dim                             head_dim              (absent: hidden_size / heads)
    intermediate_size                    hidden_dim            (the feed-forward width)
    max_position_embeddings              context_length
    rms_norm_eps                         norm_eps
    tie_word_embeddings                  tie_weights
    RoPE: rope_parameters (transformers 5) or rope_theta + rope_scaling (older files)
      rope_theta                         rope_theta
      rope_type "llama3" (factor, low_freq_factor, high_freq_factor,
      original_max_position_embeddings) or "linear" (factor)
                                         rope_scaling (the same keys, type under "rope_type")
    qwen3, gemma3_text                   qk_norm True (q_norm / k_norm weights)
    qwen3_moe: num_experts (or num_local_experts), num_experts_per_tok, moe_intermediate_size,
      norm_topk_prob                     n_experts, n_experts_per_token, moe_hidden_dim, norm_topk_prob
    gemma3_text: sliding_window          sliding_window
      layer_types, or sliding_window_pattern P (every P-th layer global)
                                         layer_types
      rope_local_base_freq (or rope_parameters["sliding_attention"])
                                         rope_local_theta
      query_pre_attn_scalar              query_pre_attn_scalar

Anything the models here do not implement (attention biases, logit soft-capping, dense layers inside
a mixture-of-experts model, a RoPE type other than the default and Llama 3's, ...) is refused with
a one-line ``ValueError`` that names the key and the file, instead of loading a model that would
silently compute something else.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["HF_ARCH", "read_config", "decoder_fields", "hf_config"]

# model_type in config.json -> DecoderConfig.arch
HF_ARCH = {"llama": "llama", "qwen3": "qwen3", "qwen3_moe": "qwen3-moe", "gemma3_text": "gemma3"}
_MODEL_TYPE = {arch: model_type for model_type, arch in HF_ARCH.items()}
_CLASS = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM", "qwen3-moe": "Qwen3MoeForCausalLM",
          "gemma3": "Gemma3ForCausalLM"}
_LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
_ACTIVATION = {"llama": "silu", "qwen3": "silu", "qwen3-moe": "silu", "gemma3": "gelu_pytorch_tanh"}


def read_config(folder: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of a folder; a missing or broken file is a one-line ValueError."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ValueError(f"{path}: not found; a Hugging Face model folder holds config.json and the weights")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def _rope(config: dict, where: str, key: str | None = None) -> dict:
    """The RoPE settings as one dict {"rope_theta", "rope_type", ...}: transformers 5 writes them
    under ``rope_parameters`` (for Gemma 3 one dict per layer kind, ``key``), older files as
    ``rope_theta`` beside a ``rope_scaling`` dict (which names its type ``rope_type`` or ``type``)."""
    params = config.get("rope_parameters")
    if isinstance(params, dict) and key is not None and key in params:
        params = params[key]
    if isinstance(params, dict) and "rope_theta" in params:
        out = dict(params)
    else:
        out = dict(config.get("rope_scaling") or {})
        if "rope_theta" not in config:
            raise ValueError(f"{where}: no rope_theta (nor rope_parameters); cannot tell the RoPE base")
        out["rope_theta"] = config["rope_theta"]
    out["rope_type"] = out.get("rope_type", out.get("type", "default")) or "default"
    return out


def _refuse(where: str, what: str) -> ValueError:
    return ValueError(f"{where}: {what}, which the models in gpt.architectures do not implement")


def decoder_fields(config: dict, where: str = "config.json") -> dict:
    """The DecoderConfig fields (a dict) for a parsed ``config.json``; ``where`` names the file in errors."""
    model_type = config.get("model_type")
    if model_type not in HF_ARCH:
        known = ", ".join(["gpt2", *HF_ARCH])
        hint = ("; this is the multimodal Gemma 3 (4B and larger, text and images): use a text-only "
                "checkpoint such as gemma-3-270m or gemma-3-1b-it") if model_type == "gemma3" else ""
        raise ValueError(f"{where}: model_type {model_type!r} is not supported (supported: {known}){hint}")
    arch = HF_ARCH[model_type]

    def need(key: str):
        if config.get(key) is None:
            raise ValueError(f"{where}: the key {key!r} is missing (a {model_type} config must have it)")
        return config[key]

    activation = config.get("hidden_activation") or config.get("hidden_act") or _ACTIVATION[arch]
    if activation != _ACTIVATION[arch]:
        raise _refuse(where, f"the activation is {activation!r}, not {_ACTIVATION[arch]!r}")
    for key in ("attention_bias", "mlp_bias", "use_bidirectional_attention"):
        if config.get(key):
            raise _refuse(where, f"{key} is true")
    for key in ("final_logit_softcapping", "attn_logit_softcapping"):
        if config.get(key) is not None:
            raise _refuse(where, f"{key} is {config[key]}")

    n_heads = need("num_attention_heads")
    emb_dim = need("hidden_size")
    fields = dict(
        arch=arch, vocab_size=need("vocab_size"), emb_dim=emb_dim, n_layers=need("num_hidden_layers"),
        n_heads=n_heads, n_kv_heads=config.get("num_key_value_heads") or n_heads,
        head_dim=config.get("head_dim") or emb_dim // n_heads, hidden_dim=need("intermediate_size"),
        context_length=need("max_position_embeddings"), norm_eps=config.get("rms_norm_eps", 1e-6),
        tie_weights=bool(config.get("tie_word_embeddings", arch == "gemma3")),
    )

    if arch == "gemma3":
        rope_global = _rope(config, where, "full_attention")
        fields["rope_local_theta"] = float(config.get("rope_local_base_freq")
                                          or _rope(config, where, "sliding_attention")["rope_theta"])
        fields["sliding_window"] = need("sliding_window")
        n = fields["n_layers"]
        types = config.get("layer_types")
        if types is None:
            pattern = config.get("sliding_window_pattern") or config.get("_sliding_window_pattern") or 6
            types = ["full_attention" if (i + 1) % pattern == 0 else "sliding_attention" for i in range(n)]
        if len(types) != n or not set(types) <= {"sliding_attention", "full_attention"}:
            raise ValueError(f"{where}: layer_types must list 'sliding_attention' or 'full_attention' for "
                             f"each of the {n} layers")
        fields["layer_types"] = list(types)
        fields["query_pre_attn_scalar"] = need("query_pre_attn_scalar")
    else:
        rope_global = _rope(config, where)
        if config.get("use_sliding_window"):
            raise _refuse(where, "use_sliding_window is true")

    fields["rope_theta"] = float(rope_global["rope_theta"])
    fields["qk_norm"] = arch != "llama"
    kind = rope_global["rope_type"]
    keys = {"llama3": _LLAMA3_KEYS, "linear": ("factor",)}.get(kind)
    if keys is not None:
        missing = [k for k in keys if k not in rope_global]
        if missing:
            raise ValueError(f"{where}: RoPE type {kind!r} needs {', '.join(missing)}")
        fields["rope_scaling"] = {"rope_type": kind, **{k: rope_global[k] for k in keys}}
    elif kind != "default":
        raise _refuse(where, f"the RoPE type is {kind!r} (supported: default, llama3, linear)")

    if arch == "qwen3-moe":
        n_experts = config.get("num_experts", config.get("num_local_experts"))
        if n_experts is None:
            raise ValueError(f"{where}: the key 'num_experts' is missing (a qwen3_moe config must have it)")
        if config.get("mlp_only_layers") or config.get("decoder_sparse_step", 1) != 1:
            raise _refuse(where, "some layers are dense inside a mixture-of-experts model "
                                 "(mlp_only_layers / decoder_sparse_step)")
        fields.update(n_experts=n_experts, n_experts_per_token=need("num_experts_per_tok"),
                      moe_hidden_dim=need("moe_intermediate_size"),
                      norm_topk_prob=bool(config.get("norm_topk_prob", False)))
    return fields


def hf_config(cfg) -> dict:
    """The ``config.json`` (a dict) that ``transformers`` reads as the same model as DecoderConfig ``cfg``."""
    arch = cfg.arch
    if arch not in _MODEL_TYPE:
        raise ValueError(f"cannot write a Hugging Face config for arch {arch!r}")
    out = {
        "architectures": [_CLASS[arch]], "model_type": _MODEL_TYPE[arch], "dtype": "float32",
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.emb_dim, "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads, "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim,
        "intermediate_size": cfg.hidden_dim, "max_position_embeddings": cfg.context_length,
        "rms_norm_eps": cfg.norm_eps, "tie_word_embeddings": bool(cfg.tie_weights),
        "attention_bias": False, "attention_dropout": 0.0,
        ("hidden_activation" if arch == "gemma3" else "hidden_act"): _ACTIVATION[arch],
    }
    if cfg.qk_norm != (arch != "llama"):
        raise ValueError(f"a {arch} model {'without' if arch != 'llama' else 'with'} QK-norm has no "
                         "Hugging Face equivalent")
    rope = {"rope_type": "default", "rope_theta": float(cfg.rope_theta)}
    if cfg.rope_scaling:
        rope = {**cfg.rope_scaling, "rope_theta": float(cfg.rope_theta)}
    if arch == "gemma3":
        out["rope_parameters"] = {"sliding_attention": {"rope_type": "default",
                                                        "rope_theta": float(cfg.rope_local_theta)},
                                  "full_attention": rope}
        out.update(sliding_window=cfg.sliding_window,
                   query_pre_attn_scalar=cfg.query_pre_attn_scalar or cfg.head_dim,
                   layer_types=list(cfg.layer_types),
                   final_logit_softcapping=None, attn_logit_softcapping=None)
    else:
        out["rope_parameters"] = rope
    if arch == "qwen3-moe":
        out.update(num_experts=cfg.n_experts, num_experts_per_tok=cfg.n_experts_per_token,
                   moe_intermediate_size=cfg.moe_hidden_dim, norm_topk_prob=bool(cfg.norm_topk_prob),
                   decoder_sparse_step=1, mlp_only_layers=[])
    return out
