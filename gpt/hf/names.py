"""Which tensor of a Hugging Face checkpoint is which parameter here, per family.

Each table reads left to right: the checkpoint's name, then this project's (``{i}`` is the layer,
``{e}`` the expert). Every linear layer keeps its (out, in) layout, so the tensors are copied as they
are: no transposes, and no reordering of the query/key rows, because both sides rotate RoPE pairs
as two halves of each head (dimension j with j + head_dim / 2). Gemma's RMSNorm weights are the
stored w of ``x_hat * (1 + w)`` on both sides.

A parameter written ``name[{e}]`` is one slice of a stacked parameter: Qwen3-MoE's experts are
separate tensors in the checkpoint and one (E, out, in) array per projection here. Checkpoints
written by ``transformers`` 5's in-memory layout may instead hold the experts fused
(``mlp.experts.gate_up_proj`` (E, 2I, d), gate rows first, and ``mlp.experts.down_proj`` (E, d, I));
:data:`FUSED_EXPERTS` says how those split.

``lm_head.weight`` is absent when the embeddings are tied (``tie_word_embeddings``).
"""
from __future__ import annotations

__all__ = ["TABLES", "FUSED_EXPERTS", "name_pairs"]

_LLAMA = """
model.embed_tokens.weight                              tok_emb.weight
model.layers.{i}.input_layernorm.weight                trf_blocks.{i}.norm1.weight
model.layers.{i}.self_attn.q_proj.weight               trf_blocks.{i}.att.W_query.weight
model.layers.{i}.self_attn.k_proj.weight               trf_blocks.{i}.att.W_key.weight
model.layers.{i}.self_attn.v_proj.weight               trf_blocks.{i}.att.W_value.weight
model.layers.{i}.self_attn.o_proj.weight               trf_blocks.{i}.att.out_proj.weight
model.layers.{i}.post_attention_layernorm.weight       trf_blocks.{i}.norm2.weight
model.layers.{i}.mlp.gate_proj.weight                  trf_blocks.{i}.ff.fc1.weight
model.layers.{i}.mlp.up_proj.weight                    trf_blocks.{i}.ff.fc2.weight
model.layers.{i}.mlp.down_proj.weight                  trf_blocks.{i}.ff.fc3.weight
model.norm.weight                                      final_norm.weight
lm_head.weight                                         out_head.weight
"""

# Qwen3 = Llama + RMSNorm of each head's queries and keys (QK-norm)
_QWEN3 = _LLAMA + """
model.layers.{i}.self_attn.q_norm.weight               trf_blocks.{i}.att.q_norm.weight
model.layers.{i}.self_attn.k_norm.weight               trf_blocks.{i}.att.k_norm.weight
"""

# Qwen3-MoE = Qwen3 with a router and E experts in place of the one feed-forward
_QWEN3_MOE = "\n".join(line for line in _QWEN3.splitlines() if ".mlp." not in line) + """
model.layers.{i}.mlp.gate.weight                       trf_blocks.{i}.ff.gate.weight
model.layers.{i}.mlp.experts.{e}.gate_proj.weight      trf_blocks.{i}.ff.fc1.weight[{e}]
model.layers.{i}.mlp.experts.{e}.up_proj.weight        trf_blocks.{i}.ff.fc2.weight[{e}]
model.layers.{i}.mlp.experts.{e}.down_proj.weight      trf_blocks.{i}.ff.fc3.weight[{e}]
"""

# Gemma 3 = Qwen3's attention, a GeGLU feed-forward and four norms per block (names kept from HF)
_GEMMA3 = """
model.embed_tokens.weight                              tok_emb.weight
model.layers.{i}.input_layernorm.weight                trf_blocks.{i}.input_layernorm.weight
model.layers.{i}.self_attn.q_proj.weight               trf_blocks.{i}.att.W_query.weight
model.layers.{i}.self_attn.k_proj.weight               trf_blocks.{i}.att.W_key.weight
model.layers.{i}.self_attn.v_proj.weight               trf_blocks.{i}.att.W_value.weight
model.layers.{i}.self_attn.o_proj.weight               trf_blocks.{i}.att.out_proj.weight
model.layers.{i}.self_attn.q_norm.weight               trf_blocks.{i}.att.q_norm.weight
model.layers.{i}.self_attn.k_norm.weight               trf_blocks.{i}.att.k_norm.weight
model.layers.{i}.post_attention_layernorm.weight       trf_blocks.{i}.post_attention_layernorm.weight
model.layers.{i}.pre_feedforward_layernorm.weight      trf_blocks.{i}.pre_feedforward_layernorm.weight
model.layers.{i}.post_feedforward_layernorm.weight     trf_blocks.{i}.post_feedforward_layernorm.weight
model.layers.{i}.mlp.gate_proj.weight                  trf_blocks.{i}.ff.fc1.weight
model.layers.{i}.mlp.up_proj.weight                    trf_blocks.{i}.ff.fc2.weight
model.layers.{i}.mlp.down_proj.weight                  trf_blocks.{i}.ff.fc3.weight
model.norm.weight                                      final_norm.weight
lm_head.weight                                         out_head.weight
"""


def _parse(table: str) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(line.split()) for line in table.strip().splitlines() if line.strip())


# DecoderConfig.arch -> ((checkpoint pattern, parameter pattern), ...)
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "llama": _parse(_LLAMA), "qwen3": _parse(_QWEN3), "qwen3-moe": _parse(_QWEN3_MOE), "gemma3": _parse(_GEMMA3),
}

# transformers 5's fused expert tensors -> (parameter, rows of the tensor's second axis: "first"/"second" half or "all")
FUSED_EXPERTS = {
    "model.layers.{i}.mlp.experts.gate_up_proj": (("trf_blocks.{i}.ff.fc1.weight", "first"),
                                                   ("trf_blocks.{i}.ff.fc2.weight", "second")),
    "model.layers.{i}.mlp.experts.down_proj": (("trf_blocks.{i}.ff.fc3.weight", "all"),),
}


def name_pairs(arch: str, n_layers: int, n_experts: int = 0, tied: bool = False) -> list[tuple[str, str, int | None]]:
    """Every (checkpoint name, parameter name, expert index or None) of a model, in table order.

    ``tied``: the output head is the embedding, so ``lm_head.weight`` is not listed.
    """
    if arch not in TABLES:
        raise ValueError(f"no Hugging Face name table for arch {arch!r} (known: {', '.join(TABLES)})")
    out = []
    for theirs, ours in TABLES[arch]:
        if tied and theirs == "lm_head.weight":
            continue
        layers = range(n_layers) if "{i}" in theirs else [None]
        experts = range(n_experts) if "{e}" in theirs else [None]
        for i in layers:
            for e in experts:
                out.append((theirs.format(i=i, e=e), ours.replace("[{e}]", "").format(i=i), e))
    return out
