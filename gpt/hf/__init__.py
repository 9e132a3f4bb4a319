"""Hugging Face model folders in and out (beyond the book, which loads GPT-2 from TensorFlow files).

A model folder on the Hugging Face hub holds ``config.json`` (the architecture), the weights
(``model.safetensors``, or shards and ``model.safetensors.index.json``) and the tokenizer
(``tokenizer.json``, read by :class:`gpt.tokenizer.HFTokenizer`). This package reads and writes the
first two for GPT-2 and for the families of :mod:`gpt.architectures`:

    model_type    model                      how the tensors map
    gpt2          gpt.model.GPTModel         gpt.weights.load_gpt2 (fused qkv split, Conv1D transposed)
    llama         Llama3Model                gpt.hf.names tables: tensors copied as they are
    qwen3         Qwen3Model                 the same, plus the QK-norm weights
    qwen3_moe     Qwen3Model (experts)       per-expert tensors stacked into (E, out, in) parameters
    gemma3_text   Gemma3Model                Qwen3's attention names, four norms per block
    bert          BertModel (encoder)        gpt.architectures.bert.HF_NAMES (load only)

:func:`load_model` builds the model from ``config.json`` (:mod:`gpt.hf.config`) and fills each
parameter in place from a memory map of the weights (:mod:`gpt.hf.files`), converting BF16/F16 to
float32 tensor by tensor, each straight into its parameter: besides the float32 model the process
holds at most one tensor's stored bytes (each tensor's mapped pages are released once read). :func:`save_model` writes a folder that ``transformers.AutoModelForCausalLM.from_pretrained``
loads as the same model.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from gpt.atomic import write_text_atomic
from gpt.hf.config import HF_ARCH, decoder_fields, hf_config, read_config
from gpt.hf.files import INDEX, SINGLE, Checkpoint, write_checkpoint
from gpt.hf.names import FUSED_EXPERTS, name_pairs

__all__ = ["load_model", "save_model", "model_type", "eos_token_ids", "to_hf_tensors", "SUPPORTED"]

SUPPORTED = ("gpt2", *HF_ARCH, "bert")

# tensors some checkpoints carry that no model needs (precomputed RoPE frequencies)
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def _folder(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_file() and path.name in ("config.json", SINGLE, INDEX):
        return path.parent
    if not path.is_dir():
        raise ValueError(f"{path}: no such folder (a Hugging Face model folder holds config.json and the weights)")
    return path


def model_type(path: str | os.PathLike) -> str:
    """The ``model_type`` named by a folder's config.json."""
    return str(read_config(_folder(path)).get("model_type"))


def eos_token_ids(path: str | os.PathLike) -> list[int]:
    """The ids that end a generation: ``eos_token_id`` (one id or a list) of the folder's
    ``generation_config.json``, else of its ``config.json``; empty when neither names one."""
    folder = _folder(path)
    for name in ("generation_config.json", "config.json"):
        file = folder / name
        if not file.is_file():
            continue
        try:
            value = json.loads(file.read_text(encoding="utf-8")).get("eos_token_id")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
            raise ValueError(f"{file}: not a JSON object ({e})") from None
        if value is not None:
            ids = value if isinstance(value, list) else [value]
            if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
                raise ValueError(f"{file}: eos_token_id must be a token id or a list of them, got {value!r}")
            return list(ids)
    return []


def load_model(path: str | os.PathLike, *, context_length: int | None = None):
    """The model stored in a Hugging Face folder (``path``: the folder, or its config.json).

    ``context_length``: keep fewer positions than ``max_position_embeddings`` (for Qwen3 40,960),
    which bounds what ``new_kv_cache`` preallocates; the weights are the same.
    Raises a one-line ValueError for an unsupported ``model_type``, a missing tensor or one of the
    wrong shape, naming the file.
    """
    folder = _folder(path)
    config = read_config(folder)
    where = str(folder / "config.json")
    if config.get("model_type") == "gpt2":
        return _load_gpt2(folder, config, context_length)
    if config.get("model_type") == "bert":          # an encoder (gpt/architectures/bert.py)
        from gpt.architectures.bert import load_hf_bert
        return load_hf_bert(folder)
    fields = decoder_fields(config, where)
    if context_length is not None:
        if not isinstance(context_length, int) or context_length < 1:
            raise ValueError(f"context_length must be a positive integer, got {context_length!r}")
        fields["context_length"] = context_length

    from gpt.architectures import build_model, config_from_dict

    try:
        cfg = config_from_dict(fields)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
    model = build_model(cfg, init=False)          # allocated, not drawn: _fill writes every parameter
    with Checkpoint(folder) as ck:
        _fill(model, ck)
    model.eval()
    return model


def _load_gpt2(folder: Path, config: dict, context_length: int | None):
    from gpt.weights import load_gpt2

    weights = folder / SINGLE
    if not weights.is_file():
        raise ValueError(f"{folder}: a GPT-2 folder needs {SINGLE} (sharded GPT-2 checkpoints are not supported)")
    options = {"n_heads": config["n_head"]} if "n_head" in config else {}
    if context_length is not None:
        options["context_length"] = context_length
    model = load_gpt2(weights, **options)
    model.eval()
    return model


def _fill(model, ck: Checkpoint) -> None:
    """Copy every tensor of ``ck`` into its parameter of ``model``, in place."""
    cfg = model.cfg
    params = {name: p.data for name, p in model.named_parameters()}
    tied = bool(cfg.tie_weights)
    n_experts = getattr(cfg, "n_experts", 0) or 0
    pairs = name_pairs(cfg.arch, cfg.n_layers, n_experts, tied=tied)
    used = set()
    fused = cfg.arch == "qwen3-moe" and "model.layers.0.mlp.experts.gate_up_proj" in ck
    for theirs, ours, expert in pairs:
        if expert is not None and fused:
            continue
        if ours not in params:
            raise ValueError(f"the model has no parameter {ours!r} for {theirs!r} (gpt.hf.names and "
                             f"gpt.architectures disagree)")
        if theirs not in ck:
            raise ValueError(f"{ck.where}: the tensor {theirs!r} is missing (needed for {ours})")
        target = params[ours] if expert is None else params[ours][expert]
        ck.read_into(theirs, target)
        used.add(theirs)
    if fused:
        for i in range(cfg.n_layers):
            for pattern, parts in FUSED_EXPERTS.items():
                theirs = pattern.format(i=i)
                if theirs not in ck:
                    raise ValueError(f"{ck.where}: the tensor {theirs!r} is missing")
                if len(parts) == 1:
                    ck.read_into(theirs, params[parts[0][0].format(i=i)])
                else:
                    # (E, 2I, d): read into one array, then split its rows between gate and up
                    whole = np.empty(ck.shape(theirs), dtype=np.float32)
                    ck.read_into(theirs, whole)
                    half = whole.shape[1] // 2
                    params[parts[0][0].format(i=i)][...] = whole[:, :half]
                    params[parts[1][0].format(i=i)][...] = whole[:, half:]
                used.add(theirs)
    # load_model built the model without drawing weights: a parameter no tensor wrote is garbage
    written = {ours for _, ours, _ in pairs}
    if fused:
        written |= {part.format(i=i) for i in range(cfg.n_layers) for parts in FUSED_EXPERTS.values()
                    for part, *_ in parts}
    unwritten = [name for name in params if name not in written]
    if unwritten:
        raise ValueError(f"{ck.where}: no tensor fills the parameter(s) {', '.join(unwritten[:3])} "
                         f"(gpt.hf.names misses them)")
    unknown = [n for n in ck.names() if n not in used and not n.endswith(_IGNORED_SUFFIXES)
               and not (tied and n == "lm_head.weight")]
    if unknown:
        more = f" (and {len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise ValueError(f"{ck.where}: holds tensors a {cfg.arch} model has no place for: "
                         f"{', '.join(unknown[:3])}{more}")


def to_hf_tensors(model) -> dict[str, np.ndarray]:
    """The model's parameters under their Hugging Face names (views, no copies; experts as slices)."""
    cfg = model.cfg
    params = {name: p.data for name, p in model.named_parameters()}
    tied = model.out_head.weight is model.tok_emb.weight
    out = {}
    for theirs, ours, expert in name_pairs(cfg.arch, cfg.n_layers, getattr(cfg, "n_experts", 0) or 0, tied=tied):
        out[theirs] = params[ours] if expert is None else params[ours][expert]
    return out


def save_model(model, path: str | os.PathLike, *, max_shard_bytes: int | None = None,
               dtype: str = "F32") -> Path:
    """Write ``config.json`` and the weights into the folder ``path`` (created if needed) so that
    ``transformers.AutoModelForCausalLM.from_pretrained(path)`` loads the same model.

    ``max_shard_bytes``: split weights larger than this into shards with an index (as the hub does
    at a few GB). ``dtype``: "F32" (exact), "BF16" or "F16". A GPT-2 model (:class:`gpt.model.GPTModel`)
    is written by :func:`gpt.weights.export_hf`, in float32 and unsharded. Returns the folder.
    """
    from gpt.model import GPTModel

    folder = Path(path)
    if isinstance(model, GPTModel):
        if max_shard_bytes is not None or dtype != "F32":
            raise ValueError("a GPT-2 model is saved in float32 in one file (max_shard_bytes and dtype are "
                             "for the architectures of gpt.architectures)")
        from gpt.weights import export_hf
        return export_hf(model, folder)
    config = hf_config(model.cfg)
    tied = model.out_head.weight is model.tok_emb.weight
    if tied != bool(model.cfg.tie_weights):
        raise ValueError("cfg.tie_weights does not match the model (its output head is "
                         f"{'' if tied else 'not '}the embedding)")
    config["dtype"] = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}.get(dtype, dtype)
    tensors = to_hf_tensors(model)
    write_checkpoint(tensors, folder, max_shard_bytes=max_shard_bytes, dtype=dtype)
    write_text_atomic(folder / "config.json", json.dumps(config, indent=2) + "\n")
    return folder
