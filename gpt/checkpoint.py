"""Checkpoints: one directory with everything needed to generate from a model or resume its training.

Layout of a checkpoint directory ``DIR``::

    DIR/latest                     name of the newest complete checkpoint, e.g. "step-000500"
    DIR/step-000500/
        model.safetensors          the weights, under the model's state_dict names
        config.json                the model's config (a GPTConfig, or a DecoderConfig or BertConfig whose
                                   "arch" names the family), plus free-form "info" (how it was trained)
        tokenizer.txt              the tokenizer (BPETokenizer.save format), if one was given,
          or tokenizer.json        or, for an HFTokenizer, its tokenizer.json
        optimizer.safetensors      the optimizer's arrays (moments), if training state is saved
        trainer.json               step, loss history, data position, random generators and the
                                   optimizer's scalar state

Nothing is ever half-written under a final name: a checkpoint is written into a temporary directory
that is renamed to ``step-NNNNNN`` only when complete, and ``latest`` is replaced atomically
afterwards. A crash at any moment leaves the previous checkpoint intact and ``latest`` pointing at
a complete one. Older checkpoints beyond ``keep`` are removed after the new one is in place.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpt import safetensors
from gpt.atomic import default_mode, write_text_atomic
from gpt.model import GPTConfig, GPTModel


def _config_and_class(d: dict):
    """(config, model class) for a saved config dict: a BertConfig (and BertForMaskedLM, the encoder
    with its masked-language-model head) when its ``arch`` is "bert", a DecoderConfig when it names
    another ``arch`` (Llama 3, Qwen3, Gemma 3), else the book's GPTConfig (every checkpoint from before)."""
    if d.get("arch") == "bert":
        from gpt.architectures.bert import BertConfig, BertForMaskedLM

        return BertConfig.from_dict(d), BertForMaskedLM    # a classifier's prepare() takes its .bert
    if "arch" in d:
        from gpt.architectures import config_from_dict, model_class

        cfg = config_from_dict(d)
        return cfg, model_class(cfg.arch)
    return GPTConfig.from_dict(d), GPTModel

LATEST = "latest"
TOKENIZER_FILE = "tokenizer.txt"
HF_TOKENIZER_FILE = "tokenizer.json"


def tokenizer_file_name(tokenizer) -> str:
    """The file a checkpoint keeps ``tokenizer`` in: tokenizer.json for an HFTokenizer, else tokenizer.txt."""
    from gpt.tokenizer import HFTokenizer

    return HF_TOKENIZER_FILE if isinstance(tokenizer, HFTokenizer) else TOKENIZER_FILE


class CheckpointError(ValueError):
    """A checkpoint directory that is missing, incomplete, damaged or does not fit the model."""


@dataclass
class Checkpoint:
    path: Path                       # the step-NNNNNN directory that was read
    model: GPTModel                  # or a gpt.architectures model (Llama3Model, Qwen3Model, Gemma3Model,
                                     # BertForMaskedLM)
    config: GPTConfig                # or a DecoderConfig, or a BertConfig
    tokenizer: object | None
    info: dict
    optimizer_state: dict | None
    trainer_state: dict | None


def _link_or_copy(src, dst) -> None:
    """Hard-link ``src`` to ``dst`` (instant, no extra space), or copy it where links are not allowed."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _split_arrays(obj, prefix: str, arrays: dict):
    """Replace every ndarray inside ``obj`` (nested dicts/lists) by {"__array__": key}, collecting them."""
    if isinstance(obj, np.ndarray):
        arrays[prefix] = obj
        return {"__array__": prefix}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {"__dict__": [[_split_arrays(k, f"{prefix}.k{i}", arrays), _split_arrays(v, f"{prefix}.{i}", arrays)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        return [_split_arrays(v, f"{prefix}.{i}", arrays) for i, v in enumerate(obj)]
    return obj


def _join_arrays(obj, arrays: dict):
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        if "__dict__" in obj:
            return {_join_arrays(k, arrays): _join_arrays(v, arrays) for k, v in obj["__dict__"]}
        return {k: _join_arrays(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join_arrays(v, arrays) for v in obj]
    return obj


def save_checkpoint(directory, model: GPTModel, *, tokenizer=None, optimizer=None, trainer_state: dict | None = None,
                    info: dict | None = None, step: int | None = None, keep: int = 2) -> Path:
    """Write a complete checkpoint into ``directory`` (created if needed) and point ``latest`` at it.

    ``step`` names the checkpoint (default: ``trainer_state["train_state"]["step"]`` or 0).
    Returns the new ``step-NNNNNN`` directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if step is None:
        step = int((trainer_state or {}).get("train_state", {}).get("step", 0))
    name = f"step-{step:06d}"
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=f".{name}.", suffix=".tmp"))
    os.chmod(tmp, default_mode(directory=True))   # mkdtemp makes 0700
    try:
        safetensors.save_file({k: np.ascontiguousarray(v) for k, v in model.state_dict().items()},
                              tmp / "model.safetensors", metadata={"format": "np"})
        out_head, tok_emb = getattr(model, "out_head", None), getattr(model, "tok_emb", None)   # an encoder has neither
        config = {"model": model.cfg.to_dict(), "tied": out_head is not None and out_head.weight is tok_emb.weight,
                  "info": info or {}}
        write_text_atomic(tmp / "config.json", json.dumps(config, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save(tmp / tokenizer_file_name(tokenizer))
        if optimizer is not None or trainer_state is not None:
            arrays: dict[str, np.ndarray] = {}
            opt = _split_arrays(optimizer.state_dict(), "optimizer", arrays) if optimizer is not None else None
            safetensors.save_file(arrays, tmp / "optimizer.safetensors")
            write_text_atomic(tmp / "trainer.json", json.dumps({"optimizer": opt, "trainer": trainer_state}) + "\n")
        final = directory / name
        backup = None
        if final.exists():
            # Re-saving the same step. A directory cannot be renamed over a non-empty one, so the
            # old one has to go first; meanwhile `latest` names a hard-linked copy of it, so that
            # at every moment it names a complete checkpoint.
            backup = tmp.with_name(tmp.name + ".old")
            shutil.copytree(final, backup, copy_function=_link_or_copy)
            write_text_atomic(directory / LATEST, backup.name + "\n")
            trash = tmp.with_name(tmp.name + ".trash")
            os.replace(final, trash)               # atomic: never half-deleted under the final name
            shutil.rmtree(trash)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text_atomic(directory / LATEST, name + "\n")
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    # prune older checkpoints (never the one just written)
    older = sorted((p for p in directory.glob("step-*") if p.is_dir() and p.name != name),
                   key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else -1)   # by step, not as text
    for p in older[:max(0, len(older) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def resolve(directory) -> Path:
    """The step directory a checkpoint path refers to: ``DIR`` via ``DIR/latest``, a step
    directory itself, or the ``model.safetensors`` inside one."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    if directory.is_file() and directory.name == "model.safetensors":
        directory = directory.parent
    if (directory / "model.safetensors").is_file():
        return directory
    latest = directory / LATEST
    if not latest.is_file():
        raise CheckpointError(f"{directory}: not a checkpoint (no {LATEST} file and no model.safetensors)")
    name = latest.read_text().strip()
    if not name:
        raise CheckpointError(f"{latest}: is empty; it should name the newest step directory")
    step_dir = directory / name
    if not (step_dir / "model.safetensors").is_file():
        raise CheckpointError(f"{latest}: names {step_dir.name}, which has no model.safetensors")
    return step_dir


def run_directory(path) -> Path:
    """The folder a run's checkpoints go to, given the path a user resumed from: for a step
    directory (``runs/x/step-000500``) that is its parent (``runs/x``), which holds ``latest``."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if (path / "model.safetensors").is_file() and (path.parent / LATEST).is_file():
        return path.parent
    return path


def load_checkpoint(directory, *, load_training_state: bool = True, prepare=None) -> Checkpoint:
    """Read the checkpoint at ``directory`` (see :func:`resolve`) into a new model (and tokenizer).

    ``prepare(model, info)``, if given, is called on the freshly built model before the weights are
    loaded, to redo changes made to the model's structure after it was built (a classification
    head, LoRA layers: see ``gpt.finetune.classify.load_classifier``); ``info`` is what was saved.
    When it returns a model (an encoder wrapped in a classifier), that model takes the weights.

    Every problem (missing file, damaged JSON or safetensors, weights that do not fit the config)
    raises :class:`CheckpointError` naming the file.
    """
    path = resolve(directory)
    config_file = path / "config.json"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        cfg, model_cls = _config_and_class(config["model"])
    except FileNotFoundError:
        raise CheckpointError(f"{config_file}: missing") from None
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{config_file}: not a valid model config ({e})") from None
    try:
        weights = safetensors.load_file(path / "model.safetensors")
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{path / 'model.safetensors'}: {e}") from None
    model = model_cls(cfg)
    if config.get("tied") and not getattr(cfg, "tie_weights", True):
        model.out_head.weight = model.tok_emb.weight
    if prepare is not None:
        model = prepare(model, config.get("info", {})) or model      # it may wrap the model in another
    try:
        model.load_state_dict(weights)
    except ValueError as e:
        raise CheckpointError(f"{path / 'model.safetensors'}: {e}") from None
    tokenizer = None
    for name in (HF_TOKENIZER_FILE, TOKENIZER_FILE):
        if (path / name).is_file():
            from gpt.tokenizer import BPETokenizer, HFTokenizer
            try:
                tokenizer = (HFTokenizer.from_file if name == HF_TOKENIZER_FILE else BPETokenizer.load)(path / name)
            except (ValueError, OSError) as e:
                raise CheckpointError(f"{path / name}: {e}") from None
            break
    optimizer_state = trainer_state = None
    if load_training_state and (path / "trainer.json").is_file():
        trainer_file = path / "trainer.json"
        try:
            extra = json.loads(trainer_file.read_text(encoding="utf-8"))
            trainer_state = extra.get("trainer")
        except (ValueError, OSError, AttributeError) as e:
            raise CheckpointError(f"{trainer_file}: the training state is damaged ({e})") from None
        try:
            arrays = safetensors.load_file(path / "optimizer.safetensors")
        except (ValueError, OSError) as e:
            raise CheckpointError(f"{path / 'optimizer.safetensors'}: the optimizer state is damaged ({e})") from None
        try:
            optimizer_state = _join_arrays(extra.get("optimizer"), arrays) if extra.get("optimizer") else None
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{trainer_file}: refers to an optimizer array that optimizer.safetensors "
                                  f"does not hold ({e})") from None
    return Checkpoint(path, model, cfg, tokenizer, config.get("info", {}), optimizer_state, trainer_state)
