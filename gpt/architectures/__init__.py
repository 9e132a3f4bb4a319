"""Today's decoders from the same parts as chapter 4's GPT (beyond the book).

    llama.py    Llama 3 (Llama3Model): RMSNorm, SwiGLU, grouped-query attention, RoPE with llama3 scaling
    qwen3.py    Qwen3 (Qwen3Model): + QK-norm, explicit head_dim; mixture-of-experts when arch == "qwen3-moe"
    gemma3.py   Gemma 3 (Gemma3Model): + scaled embeddings, (1 + w) norms, four norms per block, GeGLU,
                sliding-window layers with their own RoPE base

The shared parts, one per file: config.py (DecoderConfig), presets.py, norms.py (RMSNorm),
feed_forward.py (SwiGLU, GeGLU), attention.py (GroupedQueryAttention), moe.py (MoEFeedForward).
``build_model(cfg)`` makes the right class for ``cfg.arch``.
"""
from __future__ import annotations

from gpt.architectures.config import ARCHES, DecoderConfig
from gpt.architectures.presets import MINI_PRESETS, PRESETS, count_parameters_of

DecoderConfig.PRESETS = PRESETS

__all__ = ["ARCHES", "DecoderConfig", "PRESETS", "MINI_PRESETS", "build_model", "config_from_dict",
           "count_parameters_of", "model_class"]


def model_class(arch: str):
    """The model class of ``arch`` ("llama", "qwen3", "qwen3-moe", "gemma3")."""
    if arch == "llama":
        from gpt.architectures.llama import Llama3Model
        return Llama3Model
    if arch in ("qwen3", "qwen3-moe"):
        from gpt.architectures.qwen3 import Qwen3Model
        return Qwen3Model
    if arch == "gemma3":
        from gpt.architectures.gemma3 import Gemma3Model
        return Gemma3Model
    raise ValueError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHES)}")


def config_from_dict(d: dict) -> DecoderConfig:
    """A :class:`DecoderConfig` from its ``to_dict()`` (what checkpoints store)."""
    return DecoderConfig.from_dict(dict(d))


def build_model(cfg, init: bool = True):
    """A new model for ``cfg`` (a DecoderConfig, its dict, or a preset name), with fresh weights.

    ``init=False``: the weight matrices are allocated but not drawn (``minigrad.nn.skip_init``), for
    a model whose every parameter is loaded next (gpt.hf.load_model): seconds faster for a real
    checkpoint, and no page of memory written twice. Its values are garbage until then."""
    if isinstance(cfg, str):
        cfg = DecoderConfig.from_preset(cfg)
    elif isinstance(cfg, dict):
        cfg = config_from_dict(cfg)
    if init:
        return model_class(cfg.arch)(cfg)
    from minigrad import nn

    with nn.skip_init():
        return model_class(cfg.arch)(cfg)
