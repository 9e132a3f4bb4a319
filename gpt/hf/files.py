"""A Hugging Face checkpoint on disk: one ``model.safetensors``, or shards named by an index.

A large checkpoint is split into ``model-00001-of-00002.safetensors`` ... and a
``model.safetensors.index.json``::

    {"metadata": {"total_size": 2471645608},
     "weight_map": {"model.embed_tokens.weight": "model-00001-of-00002.safetensors", ...}}

:class:`Checkpoint` opens either kind and reads tensors one at a time, memory-mapped, straight into
arrays the caller owns (:meth:`Checkpoint.read_into`), so a BF16 checkpoint becomes float32
parameters without a second copy of the weights in memory. :func:`write_checkpoint` writes either
kind, every file atomically, the index last (a reader that finds the index finds its shards).
"""
from __future__ import annotations

import json
import os
from math import prod
from pathlib import Path

import numpy as np

from gpt import safetensors
from gpt.atomic import write_text_atomic

__all__ = ["SINGLE", "INDEX", "Checkpoint", "read_index", "write_checkpoint"]

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


def read_index(path: str | os.PathLike) -> dict[str, str]:
    """The ``weight_map`` (tensor name -> shard file name) of an index file, checked."""
    path = Path(path)
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise ValueError(f"{path}: expected {{\"weight_map\": {{tensor name: shard file}}}}")
    for shard in set(weight_map.values()):
        if Path(shard).name != shard or shard in (".", ".."):
            raise ValueError(f"{path}: the shard {shard!r} is not a file name in the same folder")
    return weight_map


class Checkpoint:
    """The tensors of a model folder (single file or sharded), read lazily.

    ``names()`` lists them, ``shape(name)`` gives one's shape, ``read_into(name, out)`` fills a
    float32 array with it. Use as a context manager (or call ``close()``) to release the files.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        index, single = self.folder / INDEX, self.folder / SINGLE
        if index.is_file():
            self.where = str(index)
            self._shard_of = read_index(index)
            shards = sorted(set(self._shard_of.values()))
            for shard in shards:
                if not (self.folder / shard).is_file():
                    raise ValueError(f"{index}: names the shard {shard}, which is not in {self.folder} "
                                     "(an incomplete download? run it again)")
        elif single.is_file():
            self.where = str(single)
            shards = [SINGLE]
            self._shard_of = None
        else:
            raise ValueError(f"{self.folder}: no {SINGLE} or {INDEX}; a Hugging Face model folder holds its "
                             "weights in one of them")
        self._files: dict[str, safetensors.safe_open] = {}
        try:
            for shard in shards:
                self._files[shard] = safetensors.safe_open(self.folder / shard)
        except Exception:
            self.close()
            raise
        if self._shard_of is None:
            self._shard_of = {name: SINGLE for name in self._files[SINGLE].keys()}
        else:
            for name, shard in self._shard_of.items():
                if name not in self._files[shard].header.tensors:
                    self.close()
                    raise ValueError(f"{self.where}: puts {name!r} in {shard}, which has no such tensor")

    def names(self) -> list[str]:
        return sorted(self._shard_of)

    def __contains__(self, name: str) -> bool:
        return name in self._shard_of

    def _open(self, name: str) -> safetensors.safe_open:
        if name not in self._shard_of:
            raise ValueError(f"{self.where}: the tensor {name!r} is missing")
        return self._files[self._shard_of[name]]

    def shape(self, name: str) -> tuple[int, ...]:
        return self._open(name).info(name).shape

    def read_into(self, name: str, out: np.ndarray) -> None:
        """Fill ``out`` (an array of the tensor's shape) with tensor ``name``, converted to its dtype."""
        f = self._open(name)
        if f.info(name).shape != tuple(out.shape):
            raise ValueError(f"{f.path}: the tensor {name!r} has shape {list(f.info(name).shape)}, "
                             f"but the model built from config.json expects {list(out.shape)}")
        f.read_into(name, out)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}

    def __enter__(self) -> "Checkpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_checkpoint(tensors: dict[str, np.ndarray], folder: str | os.PathLike, *,
                     max_shard_bytes: int | None = None, dtype: str = "F32") -> list[Path]:
    """Write ``tensors`` (name -> array) into ``folder`` as ``model.safetensors``, or, when they
    take more than ``max_shard_bytes``, as shards of at most that size (a single tensor larger than
    it gets a shard of its own) plus ``model.safetensors.index.json``. ``dtype``: ``"F32"``,
    ``"BF16"`` or ``"F16"`` for every floating tensor. Returns the files written, index last.

    Stale files of the other layout (an old index beside a new single file, or the reverse) are
    removed, so that a reader cannot pick the wrong one.
    """
    if dtype not in ("F32", "BF16", "F16"):
        raise ValueError(f"dtype must be F32, BF16 or F16, got {dtype!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    itemsize = 4 if dtype == "F32" else 2
    sizes = {name: prod(np.shape(a)) * itemsize for name, a in tensors.items()}
    total = sum(sizes.values())
    groups: list[list[str]] = [[]]
    if max_shard_bytes is not None and total > max_shard_bytes:
        used = 0
        for name in tensors:
            if groups[-1] and used + sizes[name] > max_shard_bytes:
                groups.append([])
                used = 0
            groups[-1].append(name)
            used += sizes[name]
    else:
        groups[0] = list(tensors)
    metadata = {"format": "pt"}
    written = []
    if len(groups) == 1:
        files = [SINGLE]
    else:
        files = [f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors" for k in range(len(groups))]
    for file, names in zip(files, groups):
        part = {n: tensors[n] for n in names}
        safetensors.save_file(part, folder / file, metadata=metadata,
                              dtypes=None if dtype == "F32" else {n: dtype for n in names})
        written.append(folder / file)
    stale = [folder / SINGLE] if len(groups) > 1 else [folder / INDEX]
    if len(groups) > 1:
        index = {"metadata": {"total_size": total},
                 "weight_map": {n: file for file, names in zip(files, groups) for n in names}}
        write_text_atomic(folder / INDEX, json.dumps(index, indent=2) + "\n")
        written.append(folder / INDEX)
    for path in stale:
        if path.exists():
            path.unlink()
    return written
