"""GPT-2's published weights in and out (section 5.5, without TensorFlow).

:func:`load_gpt2` builds a :class:`~gpt.model.GPTModel` from a Hugging Face GPT-2
``model.safetensors``; :func:`export_hf` writes a model back in that layout with a ``config.json``,
so ``transformers.GPT2LMHeadModel.from_pretrained(directory)`` loads it.

How the two layouts map (d = emb_dim, one block ``h.{i}``)::

    wte.weight (V, d)                 -> tok_emb.weight
    wpe.weight (ctx, d)               -> pos_emb.weight
    h.{i}.ln_1.weight / .bias         -> trf_blocks.{i}.norm1.scale / .shift
    h.{i}.attn.c_attn.weight (d, 3d)  -> att.W_query / W_key / W_value .weight, each (d, d)
    h.{i}.attn.c_attn.bias (3d,)      -> att.W_query / W_key / W_value .bias
    h.{i}.attn.c_proj.weight (d, d)   -> att.out_proj.weight
    h.{i}.ln_2.*                      -> norm2.*
    h.{i}.mlp.c_fc.weight (d, 4d)     -> ff.layers.0.weight
    h.{i}.mlp.c_proj.weight (4d, d)   -> ff.layers.2.weight
    ln_f.*                            -> final_norm.*
    lm_head.weight (V, d), if present -> out_head.weight (absent: tied to wte)

GPT-2's ``Conv1D`` stores its weight as (in, out), the transpose of ``Linear``'s (out, in); the
fused ``c_attn`` holds query, key and value side by side along its output axis.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from gpt import safetensors
from gpt.atomic import write_text_atomic
from gpt.model import GPTConfig, GPTModel

# head count is not stored in the weights; the published sizes use these
_HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 20, 1600: 25}


def _strip(state: dict) -> dict:
    """Drop the ``transformer.`` prefix and the attention-mask buffers some exports include."""
    out = {}
    for k, v in state.items():
        k = k[len("transformer."):] if k.startswith("transformer.") else k
        if k.endswith(".attn.bias") and v.ndim == 4 or k.endswith(".attn.masked_bias"):
            continue
        out[k] = v
    return out


def _config_from_weights(state: dict, path: Path, overrides: dict) -> GPTConfig:
    for key in ("wte.weight", "wpe.weight"):
        if key not in state:
            raise ValueError(f"{path}: no {key!r} tensor; is this a GPT-2 model.safetensors?")
    vocab, d = state["wte.weight"].shape
    layers = {int(m.group(1)) for k in state if (m := re.match(r"h\.(\d+)\.", k))}
    if not layers or sorted(layers) != list(range(len(layers))):
        raise ValueError(f"{path}: the transformer blocks h.0 ... h.N are missing or incomplete")
    n_heads = overrides.pop("n_heads", None)
    config_json = path.parent / "config.json"
    if n_heads is None and config_json.is_file():
        n_heads = json.loads(config_json.read_text()).get("n_head")
    if n_heads is None:
        n_heads = _HEADS_BY_WIDTH.get(d)
    if n_heads is None:
        raise ValueError(f"{path}: cannot tell the number of attention heads for width {d}; pass n_heads=")
    cfg = dict(
        vocab_size=vocab, context_length=state["wpe.weight"].shape[0], emb_dim=d, n_heads=n_heads,
        n_layers=len(layers), drop_rate=0.0, qkv_bias=True, tie_weights="lm_head.weight" not in state,
    )
    cfg.update(overrides)
    return GPTConfig(**cfg)


def gpt2_to_state_dict(state: dict, cfg: GPTConfig) -> dict:
    """Map GPT-2 (Hugging Face) tensor names and layouts to this project's ``state_dict``."""
    def get(key):
        if key not in state:
            raise ValueError(f"GPT-2 weights are missing the tensor {key!r}")
        return np.asarray(state[key], dtype=np.float32)

    d = cfg.emb_dim
    out = {"tok_emb.weight": get("wte.weight"), "pos_emb.weight": get("wpe.weight")}
    for i in range(cfg.n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        qkv_w, qkv_b = get(h + "attn.c_attn.weight"), get(h + "attn.c_attn.bias")
        for j, name in enumerate(("W_query", "W_key", "W_value")):
            out[b + f"att.{name}.weight"] = qkv_w[:, j * d:(j + 1) * d].T
            if cfg.qkv_bias:
                out[b + f"att.{name}.bias"] = qkv_b[j * d:(j + 1) * d]
        out[b + "att.out_proj.weight"] = get(h + "attn.c_proj.weight").T
        out[b + "att.out_proj.bias"] = get(h + "attn.c_proj.bias")
        out[b + "ff.layers.0.weight"] = get(h + "mlp.c_fc.weight").T
        out[b + "ff.layers.0.bias"] = get(h + "mlp.c_fc.bias")
        out[b + "ff.layers.2.weight"] = get(h + "mlp.c_proj.weight").T
        out[b + "ff.layers.2.bias"] = get(h + "mlp.c_proj.bias")
        for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            out[b + f"{ours}.scale"] = get(h + f"{theirs}.weight")
            out[b + f"{ours}.shift"] = get(h + f"{theirs}.bias")
    out["final_norm.scale"], out["final_norm.shift"] = get("ln_f.weight"), get("ln_f.bias")
    if not cfg.tie_weights:
        out["out_head.weight"] = get("lm_head.weight") if "lm_head.weight" in state else get("wte.weight")
    return out


def load_gpt2(path: str | os.PathLike, **overrides) -> GPTModel:
    """A GPTModel with the weights of a GPT-2 ``model.safetensors`` (any of the four sizes).

    The configuration is read off the tensors' shapes (the head count from a ``config.json``
    beside the file, or from the published sizes). ``overrides`` change config fields, e.g.
    ``drop_rate=0.1`` for fine-tuning or ``context_length=256`` to keep only the first 256
    position embeddings.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "no such file", str(path))
    state = _strip(safetensors.load_file(path, mmap=True))  # mapped: gpt2-xl need not fit in memory twice
    ctx = overrides.pop("context_length", None)
    cfg = _config_from_weights(state, path, overrides)
    if ctx is not None:
        if not isinstance(ctx, int) or ctx < 1:
            raise ValueError(f"context_length must be a positive integer, got {ctx!r}")
        if ctx > cfg.context_length:
            raise ValueError(f"context_length {ctx} exceeds the {cfg.context_length} positions GPT-2 was trained with")
        state["wpe.weight"] = state["wpe.weight"][:ctx]
        cfg.context_length = ctx
    model = GPTModel(cfg)
    model.load_state_dict(gpt2_to_state_dict(state, cfg))
    return model


def state_dict_to_gpt2(model: GPTModel) -> dict[str, np.ndarray]:
    """This project's parameters in GPT-2's (Hugging Face) names and layouts, ``transformer.``-prefixed."""
    cfg = model.cfg
    if cfg.pos_emb != "learned":
        raise ValueError(f"GPT-2's format has learned position embeddings only; this model uses {cfg.pos_emb!r} "
                         "positions (save it with gpt.checkpoint.save_checkpoint instead)")
    sd = model.state_dict()
    d = cfg.emb_dim
    out = {"wte.weight": sd["tok_emb.weight"], "wpe.weight": sd["pos_emb.weight"]}
    for i in range(cfg.n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        out[h + "attn.c_attn.weight"] = np.concatenate(
            [sd[b + f"att.{n}.weight"].T for n in ("W_query", "W_key", "W_value")], axis=1)
        out[h + "attn.c_attn.bias"] = (
            np.concatenate([sd[b + f"att.{n}.bias"] for n in ("W_query", "W_key", "W_value")])
            if cfg.qkv_bias else np.zeros(3 * d, dtype=np.float32))
        out[h + "attn.c_proj.weight"] = sd[b + "att.out_proj.weight"].T
        out[h + "attn.c_proj.bias"] = sd[b + "att.out_proj.bias"]
        out[h + "mlp.c_fc.weight"] = sd[b + "ff.layers.0.weight"].T
        out[h + "mlp.c_fc.bias"] = sd[b + "ff.layers.0.bias"]
        out[h + "mlp.c_proj.weight"] = sd[b + "ff.layers.2.weight"].T
        out[h + "mlp.c_proj.bias"] = sd[b + "ff.layers.2.bias"]
        for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            out[h + f"{theirs}.weight"] = sd[b + f"{ours}.scale"]
            out[h + f"{theirs}.bias"] = sd[b + f"{ours}.shift"]
    out["ln_f.weight"], out["ln_f.bias"] = sd["final_norm.scale"], sd["final_norm.shift"]
    prefixed = {"transformer." + k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
    if model.out_head.weight is not model.tok_emb.weight:
        prefixed["lm_head.weight"] = np.ascontiguousarray(sd["out_head.weight"], dtype=np.float32)
    return prefixed


def hf_config(cfg: GPTConfig, tied: bool) -> dict:
    """The ``config.json`` transformers expects for a GPT2LMHeadModel of this shape. GPT-2's
    <|endoftext|> id (50256) is named only when the vocabulary has it."""
    eot = 50256 if cfg.vocab_size > 50256 else None
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg.vocab_size, "n_positions": cfg.context_length, "n_ctx": cfg.context_length,
        "n_embd": cfg.emb_dim, "n_layer": cfg.n_layers, "n_head": cfg.n_heads, "n_inner": None,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
        "resid_pdrop": cfg.drop_rate, "embd_pdrop": cfg.drop_rate, "attn_pdrop": cfg.drop_rate,
        "scale_attn_weights": True, "tie_word_embeddings": tied,
        "bos_token_id": eot, "eos_token_id": eot,
    }


def export_hf(model: GPTModel, directory: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``config.json`` in GPT-2's Hugging Face format into
    ``directory`` (created if needed); both files are written atomically. Returns the directory."""
    directory = Path(directory)
    tensors = state_dict_to_gpt2(model)          # refuses a model GPT-2's format cannot hold, before any file
    directory.mkdir(parents=True, exist_ok=True)
    tied = "lm_head.weight" not in tensors
    safetensors.save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    write_text_atomic(directory / "config.json", json.dumps(hf_config(model.cfg, tied), indent=2) + "\n")
    return directory
