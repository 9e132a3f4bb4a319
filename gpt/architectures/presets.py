"""Published configurations (from each model's Hugging Face ``config.json``) and CPU-sized ones.

The published ones are for loading real checkpoints (``gpt.hf.load_model``) and for counting
parameters; the ``*-mini`` ones are about the size of the GPT ``mini`` preset (emb 256, 4 layers,
context 128) for training from scratch on a laptop (``python -m gpt pretrain --arch ...``).
"""
from __future__ import annotations

_LLAMA32 = dict(arch="llama", vocab_size=128256, context_length=131072, rope_theta=500000.0, norm_eps=1e-5,
                tie_weights=True,
                rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192})
_QWEN3 = dict(arch="qwen3", vocab_size=151936, context_length=40960, rope_theta=1000000.0, norm_eps=1e-6,
              qk_norm=True, head_dim=128)
_GEMMA3 = dict(arch="gemma3", vocab_size=262144, context_length=32768, rope_theta=1000000.0, rope_local_theta=10000.0,
               norm_eps=1e-6, qk_norm=True, head_dim=256, n_heads=4, n_kv_heads=1, query_pre_attn_scalar=256,
               sliding_window=512, tie_weights=True)

PRESETS: dict[str, dict] = {
    # meta-llama/Llama-3.2-1B and -3B
    "llama3.2-1b": dict(_LLAMA32, emb_dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, head_dim=64, hidden_dim=8192),
    "llama3.2-3b": dict(_LLAMA32, emb_dim=3072, n_layers=28, n_heads=24, n_kv_heads=8, head_dim=128, hidden_dim=8192),
    # Qwen/Qwen3-0.6B, Qwen3-1.7B (tied embeddings) and Qwen3-30B-A3B (128 experts, 8 per token)
    "qwen3-0.6b": dict(_QWEN3, emb_dim=1024, n_layers=28, n_heads=16, n_kv_heads=8, hidden_dim=3072, tie_weights=True),
    "qwen3-1.7b": dict(_QWEN3, emb_dim=2048, n_layers=28, n_heads=16, n_kv_heads=8, hidden_dim=6144, tie_weights=True),
    "qwen3-30b-a3b": dict(_QWEN3, arch="qwen3-moe", emb_dim=2048, n_layers=48, n_heads=32, n_kv_heads=4,
                          hidden_dim=6144, n_experts=128, n_experts_per_token=8, moe_hidden_dim=768,
                          norm_topk_prob=True, router_aux_loss_coef=0.001, tie_weights=False),
    # google/gemma-3-270m and gemma-3-1b-pt (five sliding-window layers to one global, no rope scaling)
    "gemma3-270m": dict(_GEMMA3, emb_dim=640, n_layers=18, hidden_dim=2048),
    "gemma3-1b": dict(_GEMMA3, emb_dim=1152, n_layers=26, hidden_dim=6912),
    # CPU-sized, for pretraining from scratch (vocab_size is set from the tokenizer)
    "llama-mini": dict(arch="llama", vocab_size=4096, context_length=128, emb_dim=256, n_layers=4, n_heads=4,
                       n_kv_heads=2, hidden_dim=768, rope_theta=10000.0),
    "qwen3-mini": dict(arch="qwen3", vocab_size=4096, context_length=128, emb_dim=256, n_layers=4, n_heads=4,
                       n_kv_heads=2, head_dim=64, hidden_dim=768, qk_norm=True, rope_theta=10000.0, norm_eps=1e-6,
                       tie_weights=True),
    "qwen3-moe-mini": dict(arch="qwen3-moe", vocab_size=4096, context_length=128, emb_dim=256, n_layers=4, n_heads=4,
                           n_kv_heads=2, head_dim=64, hidden_dim=768, qk_norm=True, rope_theta=10000.0, norm_eps=1e-6,
                           n_experts=8, n_experts_per_token=2, moe_hidden_dim=192, router_aux_loss_coef=0.01),
    "gemma3-mini": dict(arch="gemma3", vocab_size=4096, context_length=128, emb_dim=256, n_layers=4, n_heads=4,
                        n_kv_heads=1, head_dim=64, hidden_dim=768, qk_norm=True, rope_theta=1000000.0,
                        rope_local_theta=10000.0, query_pre_attn_scalar=64, sliding_window=32, norm_eps=1e-6,
                        tie_weights=True,
                        layer_types=["sliding_attention"] * 3 + ["full_attention"]),
}

#: the preset `python -m gpt pretrain --arch NAME` trains
MINI_PRESETS = {"llama": "llama-mini", "qwen3": "qwen3-mini", "qwen3-moe": "qwen3-moe-mini", "gemma3": "gemma3-mini"}


def count_parameters_of(cfg) -> dict:
    """Parameter counts from the configuration alone (no arrays made: works for 30B):
    ``{"total", "non_embedding", "active"}`` (active: per token, with n_experts_per_token experts)."""
    d, hd, H, KV, L = cfg.emb_dim, cfg.head_dim, cfg.n_heads, cfg.n_kv_heads, cfg.n_layers
    attention = d * H * hd + 2 * d * KV * hd + H * hd * d
    norms = (4 if cfg.arch == "gemma3" else 2) * d + (2 * hd if cfg.qk_norm else 0)
    if cfg.arch == "qwen3-moe":
        expert = 3 * d * cfg.moe_hidden_dim
        ff, ff_active = cfg.n_experts * expert + d * cfg.n_experts, cfg.n_experts_per_token * expert + d * cfg.n_experts
    else:
        ff = ff_active = 3 * d * cfg.hidden_dim
    emb = cfg.vocab_size * d
    head = 0 if cfg.tie_weights else emb
    non_embedding = L * (attention + norms + ff) + d
    return {"total": non_embedding + emb + head, "non_embedding": non_embedding,
            "active": L * (attention + norms + ff_active) + d + emb + head}
