"""Which chat style a Hugging Face model folder speaks, and which tokens end its answers.

The folder's own chat template says it best: ``chat_template.jinja`` (newer ``transformers``),
``chat_template.json`` or the ``chat_template`` key of ``tokenizer_config.json``; the markers it
writes name the style (``<|im_start|>``: chatml; ``<|start_header_id|>``: llama3, with the dated
system block of Llama 3.1/3.2 when it writes "Cutting Knowledge Date"; ``<start_of_turn>``: gemma;
``### Instruction:``: alpaca). Without a template, ``config.json``'s ``model_type`` decides where
it can (Qwen2/Qwen3: chatml; Gemma: gemma; Llama with a vocabulary of 128k or more: llama3).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from gpt.chat.templates import STYLES

__all__ = ["read_chat_template", "style_of_template", "detect_chat_style", "eos_token_ids"]

_MARKERS = (("<|im_start|>", "chatml"), ("<|start_header_id|>", "llama3"), ("<start_of_turn>", "gemma"),
            ("### Instruction:", "alpaca"))
_MODEL_TYPES = {"qwen2": "chatml", "qwen3": "chatml", "qwen3_moe": "chatml", "gemma": "gemma", "gemma2": "gemma",
                "gemma3": "gemma", "gemma3_text": "gemma"}
_CUTOFF = re.compile(r"Cutting Knowledge Date: ([^\"'\\\n]+)")


def _folder(path) -> Path:
    path = Path(path)
    return path.parent if path.is_file() else path


def _json(path: Path):
    """A JSON file's content, or None if there is no such file; ValueError if it is not JSON."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def read_chat_template(path: str | os.PathLike) -> str | None:
    """The chat template of a model folder (or of the folder of a file in it), or None."""
    folder = _folder(path)
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        data = _json(folder / name)
        template = data.get("chat_template") if isinstance(data, dict) else None
        if isinstance(template, list):            # named templates: [{"name": "default", "template": ...}, ...]
            named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
            template = named.get("default", next(iter(named.values()), None))
        if isinstance(template, str) and template.strip():
            return template
    return None


def style_of_template(template: str) -> tuple[str, dict] | None:
    """(style, options) for a chat template's text, from the markers it writes; None if unknown."""
    for marker, style in _MARKERS:
        if marker in template:
            options = {}
            if style == "llama3":
                cutoff = _CUTOFF.search(template)
                if cutoff:
                    options["cutting_knowledge_date"] = cutoff.group(1).strip()
            return style, options
    return None


def detect_chat_style(path: str | os.PathLike) -> tuple[str, dict]:
    """(style name, template options) for a Hugging Face model folder; a one-line ValueError that
    says how to name the style when neither the template nor ``config.json`` tells."""
    folder = _folder(path)
    template = read_chat_template(folder)
    if template is not None:
        found = style_of_template(template)
        if found:
            return found
        why = "its chat template is none of the known formats"
    else:
        why = "it has no chat template"
    config = _json(folder / "config.json")
    if isinstance(config, dict):
        model_type = config.get("model_type")
        if model_type in _MODEL_TYPES:
            return _MODEL_TYPES[model_type], {}
        if model_type == "llama" and int(config.get("vocab_size") or 0) >= 128000:
            return "llama3", {}
        why += f" and config.json's model_type {model_type!r} does not say"
    raise ValueError(f"{folder}: cannot tell the chat format ({why}); name it with --style "
                     f"({', '.join(STYLES)})")


def eos_token_ids(path: str | os.PathLike) -> list[int]:
    """The end ids a model folder declares: ``eos_token_id`` (a number or a list) of
    ``generation_config.json`` and ``config.json``."""
    folder, found = _folder(path), []
    for name in ("generation_config.json", "config.json"):
        data = _json(folder / name)
        value = data.get("eos_token_id") if isinstance(data, dict) else None
        for i in value if isinstance(value, list) else [value]:
            if isinstance(i, int) and not isinstance(i, bool) and i >= 0 and i not in found:
                found.append(i)
    return found
