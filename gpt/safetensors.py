"""Safetensors files in NumPy: the format Hugging Face publishes model weights in.

Not in the book (which loads TensorFlow checkpoints through TensorFlow); this module lets GPT-2's
published ``model.safetensors`` be read, and this project's weights be written, with NumPy alone.

The layout of a file, every integer little-endian::

    bytes [0, 8)        N, the length of the header, an unsigned 64-bit integer
    bytes [8, 8 + N)    the header: UTF-8 JSON, possibly padded at the end with spaces, e.g.
                        {"__metadata__": {"format": "np"},                     (optional, str -> str)
                         "wte.weight": {"dtype": "F32", "shape": [50257, 768],
                                        "data_offsets": [0, 154389504]}, ...}
    bytes [8 + N, end)  the data buffer: each tensor's elements in C order, little-endian,
                        at [begin, end) counted from the start of this buffer

A reader trusts nothing: the tensors' byte ranges must tile the buffer exactly (no gap, no overlap,
nothing left over), and each range must hold prod(shape) * itemsize bytes. Every violation raises
:class:`SafetensorsError` (a ``ValueError``) with a one-line message naming the file and the problem.

Dtypes: BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64. NumPy has no bfloat16, so
BF16 tensors are returned as float32 (exact: a bfloat16 is the top half of a float32) and written from
floating arrays by rounding to the nearest bfloat16, ties to even (``save_file(..., dtypes=...)``).

API: :func:`save_file` / :func:`load_file` for files, :func:`save` / :func:`load` for bytes,
:func:`read_header` and :func:`load_metadata` to inspect a file without reading its tensors, and
:class:`safe_open` to read tensors one at a time (for checkpoints larger than memory), also straight
into an existing array (:meth:`safe_open.read_into`, converting BF16/F16 on the way).
"""
from __future__ import annotations

import json
import mmap as _mmap
import os
import struct
from dataclasses import dataclass
from math import prod
from typing import Mapping

import numpy as np

from gpt.atomic import atomic_write

__all__ = [
    "SafetensorsError", "TensorInfo", "Header", "DTYPES", "save_file", "load_file", "save", "load",
    "read_header", "load_metadata", "safe_open", "read_float_into", "float32_to_bfloat16_bits", "bfloat16_bits_to_float32",
]

# Safetensors dtype name -> how its elements are stored (little-endian NumPy dtype).
# BF16 is stored as its raw 16 bits and converted to float32 on reading.
_STORAGE: dict[str, np.dtype] = {
    "BOOL": np.dtype("|b1"), "U8": np.dtype("|u1"), "I8": np.dtype("|i1"),
    "I16": np.dtype("<i2"), "U16": np.dtype("<u2"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I32": np.dtype("<i4"), "U32": np.dtype("<u4"), "F32": np.dtype("<f4"),
    "I64": np.dtype("<i8"), "U64": np.dtype("<u8"), "F64": np.dtype("<f8"),
}
DTYPES: tuple[str, ...] = tuple(_STORAGE)

# NumPy dtype code (kind + itemsize, byte order dropped) -> safetensors dtype name, for writing.
_FROM_NUMPY: dict[str, str] = {
    "b1": "BOOL", "u1": "U8", "i1": "I8", "i2": "I16", "u2": "U16", "f2": "F16",
    "i4": "I32", "u4": "U32", "f4": "F32", "i8": "I64", "u8": "U64", "f8": "F64",
}

_METADATA_KEY = "__metadata__"
_MAX_HEADER = 100_000_000  # the reference implementation refuses larger headers too


class SafetensorsError(ValueError):
    """A file (or byte string) that is not valid safetensors; the message names it and the problem."""


@dataclass(frozen=True)
class TensorInfo:
    """One header entry: dtype name, shape, and [begin, end) byte range within the data buffer."""

    dtype: str
    shape: tuple[int, ...]
    data_offsets: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return self.data_offsets[1] - self.data_offsets[0]


@dataclass(frozen=True)
class Header:
    """A parsed and validated header. ``data_start`` is the file offset of the data buffer (8 + N)."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int


# ------------------------------------------------------------------------------------------------
# bfloat16: the upper 16 bits of a float32 (sign, 8 exponent bits, 7 mantissa bits)


def bfloat16_bits_to_float32(bits: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 bit patterns, any shape -> float32 array of the same shape (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def float32_to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    """Floating array, any shape -> uint16 bfloat16 bits, rounded to nearest, ties to even.

    Rounding adds 0x7FFF plus the lowest kept bit before dropping the low 16 bits, so a value exactly
    halfway between two bfloat16s goes to the one with an even last bit; values past the largest
    bfloat16 round to infinity. NaNs stay NaN (quiet, same sign). float64 input is rounded to float32
    first.
    """
    f = np.asarray(x, dtype=np.float32)
    flat = f.reshape(-1)  # 1-d: array arithmetic wraps silently where NaN bit patterns overflow
    u = flat.view(np.uint32)
    r = u >> 16
    r &= 1          # the lowest bit that is kept
    r += 0x7FFF     # just below half of the dropped part, plus one if the kept part is odd
    r += u
    r >>= 16
    nan = np.isnan(flat)
    if nan.any():
        r[nan] = (u[nan] >> 16) | 0x0040
    return r.astype(np.uint16).reshape(f.shape)


# ------------------------------------------------------------------------------------------------
# Writing


def _prepare(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None,
             dtypes: Mapping[str, str] | None) -> tuple[bytes, list[np.ndarray]]:
    """Check the inputs and lay the file out -> (8-byte length + padded header, arrays in data order).

    Each returned array is 1-d, C-contiguous and little-endian in its stored dtype. Tensors are laid out
    by decreasing element size, then by name, so each begins at a multiple of its element size (the
    header is padded so the data buffer itself starts at a multiple of 8).
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(f"tensors must be a dict of name -> numpy array, got {type(tensors).__name__}")
    dtypes = dict(dtypes or {})
    for name in dtypes:
        if name not in tensors:
            raise ValueError(f"dtypes names {name!r}, which is not one of the tensors being saved")
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("metadata must be a dict of str -> str (convert numbers with str())")

    stored: dict[str, tuple[str, tuple[int, ...], np.ndarray]] = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise ValueError(f"tensor names must be strings, got {name!r}")
        if name == _METADATA_KEY:
            raise ValueError(f"{_METADATA_KEY!r} is reserved for metadata and cannot name a tensor")
        arr = np.asarray(value)
        shape = tuple(int(d) for d in arr.shape)
        want = dtypes.get(name)
        if want is None:
            if arr.dtype.name == "bfloat16" and arr.dtype.itemsize == 2:  # e.g. ml_dtypes.bfloat16
                want, flat = "BF16", arr.reshape(-1).view(np.uint16)
            else:
                want = _FROM_NUMPY.get(arr.dtype.str[1:]) if arr.dtype.kind in "biuf" else None
                if want is None:
                    raise ValueError(f"tensor {name!r} has dtype {arr.dtype}, which safetensors cannot "
                                     f"store; convert it to one of {', '.join(_FROM_NUMPY.values())}")
                flat = arr.reshape(-1)
        elif want == "BF16":
            if arr.dtype.kind != "f":
                raise ValueError(f"tensor {name!r} is {arr.dtype}; only floating arrays can be "
                                 "stored as BF16")
            flat = float32_to_bfloat16_bits(arr.reshape(-1))
        elif want in _STORAGE:
            try:
                flat = arr.reshape(-1).astype(_STORAGE[want], casting="same_kind")
            except TypeError:
                raise ValueError(f"tensor {name!r} is {arr.dtype} and cannot be stored as {want} "
                                 "without changing its kind (float/int/bool)") from None
            if flat.dtype.kind in "iub" and not np.array_equal(flat, arr.reshape(-1)):
                raise ValueError(f"tensor {name!r} has values that do not fit in {want}")
        else:
            raise ValueError(f"dtypes asks for {want!r} for tensor {name!r}; known: {', '.join(DTYPES)}")
        flat = np.ascontiguousarray(flat, dtype=_STORAGE[want])
        stored[name] = (want, shape, flat)

    order = sorted(stored, key=lambda n: (-_STORAGE[stored[n][0]].itemsize, n))
    offsets: dict[str, tuple[int, int]] = {}
    pos = 0
    for name in order:
        offsets[name] = (pos, pos + stored[name][2].nbytes)
        pos += stored[name][2].nbytes

    header: dict[str, object] = {}
    if metadata is not None:
        header[_METADATA_KEY] = dict(metadata)
    for name in sorted(stored):
        dtype, shape, _ = stored[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets[name])}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text, [stored[n][2] for n in order]


def save(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None,
         *, dtypes: Mapping[str, str] | None = None) -> bytes:
    """The safetensors encoding of ``tensors`` as bytes (see :func:`save_file` for the arguments)."""
    head, arrays = _prepare(tensors, metadata, dtypes)
    return b"".join([head, *(a.view(np.uint8).tobytes() for a in arrays)])


def save_file(tensors: Mapping[str, np.ndarray], path: str | os.PathLike,
              metadata: Mapping[str, str] | None = None, *, dtypes: Mapping[str, str] | None = None) -> None:
    """Write ``tensors`` (name -> array of any shape) to ``path`` in safetensors format, atomically.

    ``metadata`` is an optional str -> str dict stored under ``__metadata__``. ``dtypes`` maps tensor
    names to a stored dtype other than the array's own (e.g. ``{"wte.weight": "BF16"}``; float -> F16
    and BF16 round to nearest even). The bytes go to a temporary file in the same folder, which is
    fsynced and then renamed over ``path``: a crash never leaves a half-written file under that name.
    """
    head, arrays = _prepare(tensors, metadata, dtypes)
    with atomic_write(path, "wb") as f:
        f.write(head)
        for a in arrays:
            if a.size:
                f.write(a.view(np.uint8))


# ------------------------------------------------------------------------------------------------
# Reading


def _parse_header(where: str, text: bytes, buffer_len: int, data_start: int) -> Header:
    """Decode and validate a header against a data buffer of ``buffer_len`` bytes."""
    def fail(problem: str) -> SafetensorsError:
        return SafetensorsError(f"{where}: {problem}")

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in pairs:
            if k in out:
                raise fail(f"the header names {k!r} twice")
            out[k] = v
        return out

    try:
        raw = json.loads(text.decode("utf-8"), object_pairs_hook=no_duplicates)
    except UnicodeDecodeError as e:
        raise fail(f"the header is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise fail(f"the header is not valid JSON ({e.msg} at character {e.pos}); "
                   "the file is damaged or not safetensors") from None
    except RecursionError:
        raise fail("the header nests JSON too deeply to be a safetensors header") from None
    if not isinstance(raw, dict):
        raise fail(f"the header is JSON but a {type(raw).__name__}, not an object")

    metadata = raw.pop(_METADATA_KEY, None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise fail(f"{_METADATA_KEY} must map strings to strings")

    def is_int(x: object) -> bool:
        return type(x) is int

    tensors: dict[str, TensorInfo] = {}
    for name, entry in raw.items():
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
            raise fail(f"tensor {name!r} needs an object with dtype, shape and data_offsets")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in _STORAGE:
            raise fail(f"tensor {name!r} has dtype {dtype!r}, which this reader does not support "
                       f"(supported: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(is_int(d) and d >= 0 for d in shape):
            raise fail(f"tensor {name!r} has shape {shape!r}; expected a list of non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(is_int(o) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise fail(f"tensor {name!r} has data_offsets {offsets!r}; expected [begin, end] "
                       "with 0 <= begin <= end")
        need = prod(shape) * _STORAGE[dtype].itemsize
        if offsets[1] - offsets[0] != need:
            raise fail(f"tensor {name!r} ({dtype}, shape {shape}) needs {need} bytes but its "
                       f"data_offsets {offsets} span {offsets[1] - offsets[0]}")
        if offsets[1] > buffer_len:
            raise fail(f"tensor {name!r} ends at byte {offsets[1]} of the data but the data has only "
                       f"{buffer_len} bytes; the file is truncated")
        tensors[name] = TensorInfo(dtype, tuple(shape), (offsets[0], offsets[1]))

    # The ranges must tile [0, buffer_len) exactly: sorted by start, each begins where the last ended.
    pos, prev = 0, None
    for name in sorted(tensors, key=lambda n: tensors[n].data_offsets):
        begin, end = tensors[name].data_offsets
        if begin < pos:
            raise fail(f"tensors {prev!r} and {name!r} overlap (bytes {begin}..{pos} of the data)")
        if begin > pos:
            raise fail(f"bytes {pos}..{begin} of the data belong to no tensor (a gap before {name!r})")
        pos, prev = end, name
    if pos != buffer_len:
        raise fail(f"the data has {buffer_len} bytes but the tensors cover only {pos}; "
                   f"{buffer_len - pos} trailing bytes belong to no tensor")
    return Header(tensors, dict(metadata), data_start)


def _header_length(where: str, first8: bytes, total: int) -> int:
    """Check the 8-byte length prefix of a ``total``-byte file -> N."""
    if len(first8) < 8:
        raise SafetensorsError(f"{where}: truncated: {total} bytes, too short for the 8-byte header length")
    (n,) = struct.unpack("<Q", first8)
    if n > total - 8:
        raise SafetensorsError(f"{where}: the header length says {n} bytes but only {total - 8} follow; "
                               "the file is truncated or not safetensors")
    if n > _MAX_HEADER:
        raise SafetensorsError(f"{where}: the header length {n} exceeds {_MAX_HEADER} bytes; "
                               "this is not a safetensors file")
    return n


def _parse(where: str, buf) -> Header:
    """Validate the header of a complete file held in ``buf`` (bytes, bytearray or mmap)."""
    n = _header_length(where, bytes(buf[:8]), len(buf))
    return _parse_header(where, bytes(buf[8:8 + n]), len(buf) - 8 - n, 8 + n)


def read_header(path: str | os.PathLike) -> Header:
    """Read and validate the header of a file, without reading its tensors.

    The offsets are checked against the file's actual size, so a file whose header is valid here is
    structurally complete (a download cut short fails with "truncated").
    """
    with open(path, "rb") as f:
        total = os.fstat(f.fileno()).st_size
        n = _header_length(str(path), f.read(8), total)
        return _parse_header(str(path), f.read(n), total - 8 - n, 8 + n)


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``__metadata__`` dict of a file (empty when it has none)."""
    return read_header(path).metadata


def _to_array(where: str, name: str, info: TensorInfo, buf, offset: int) -> np.ndarray:
    """The tensor ``info`` whose bytes start at ``offset`` in ``buf`` -> array of shape info.shape.

    A view into ``buf`` (writable if ``buf`` is), except BF16 -> new float32 array.
    """
    storage = _STORAGE[info.dtype]
    count = prod(info.shape)
    flat = np.frombuffer(buf, dtype=storage, count=count, offset=offset)
    if info.dtype == "BF16":
        flat = bfloat16_bits_to_float32(flat)
    elif info.dtype == "BOOL" and count and flat.view(np.uint8).max() > 1:
        raise SafetensorsError(f"{where}: tensor {name!r} is BOOL but holds bytes other than 0 and 1")
    if not flat.dtype.isnative:  # big-endian machines
        flat = flat.astype(flat.dtype.newbyteorder("="))
    return flat.reshape(info.shape)


def load(data: bytes | bytearray, *, where: str = "<bytes>") -> dict[str, np.ndarray]:
    """Decode safetensors bytes -> {name: array}; views into ``data`` (writable iff it is a bytearray)."""
    header = _parse(where, data)
    return {name: _to_array(where, name, info, data, header.data_start + info.data_offsets[0])
            for name, info in sorted(header.tensors.items())}


def load_file(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, np.ndarray]:
    """Read a safetensors file -> {name: array}, names sorted, each array of its header's shape.

    Default: the file is read once into memory and the arrays are writable views into that buffer
    (no second copy; any one array keeps the whole buffer alive). ``mmap=True``: the file is mapped,
    nothing is read until used, and the arrays are read-only views of the mapping (copy one with
    ``np.array(a)`` to change it) - the way to open a checkpoint larger than free memory.
    BF16 tensors are always new float32 arrays; F16 stays float16.
    """
    where = str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if mmap and size >= 8:
            buf = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
        else:
            buf = np.empty(size, dtype=np.uint8)  # unlike bytearray(size), not zero-filled first
            view, got = memoryview(buf), 0
            while got < size:  # one read() returns at most ~2 GiB on Linux: loop for gpt2-large/xl
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
            if got != size:
                raise SafetensorsError(f"{where}: the file shrank while being read ({got} of {size} bytes)")
    return load(buf, where=where)


def read_float_into(stored: np.ndarray, dtype: str, out: np.ndarray) -> None:
    """Convert a tensor's stored elements (``dtype`` one of F16, BF16, F32, F64) into the floating
    array ``out`` of the same shape, with no temporary of the tensor's size.

    BF16 -> float32 is a widening of each 16-bit pattern into the top half of a 32-bit one, which
    ``np.left_shift(..., out=out.view(uint32))`` does element by element straight into ``out``.
    """
    if dtype not in ("F16", "BF16", "F32", "F64"):
        raise ValueError(f"a {dtype} tensor holds no floating-point numbers to convert")
    if stored.shape != out.shape:
        raise ValueError(f"a tensor of shape {stored.shape} does not fit an array of shape {out.shape}")
    if dtype == "BF16" and out.dtype == np.float32:
        np.left_shift(stored, 16, out=out.view(np.uint32), dtype=np.uint32)
    elif dtype == "BF16":
        np.copyto(out, bfloat16_bits_to_float32(stored))
    else:
        np.copyto(out, stored, casting="same_kind")


class safe_open:
    """Lazy access to a file's tensors, one at a time (the reference library's ``safe_open``).

    ``with safe_open(path) as f: w = f.get_tensor("wte.weight")`` reads only that tensor's bytes.
    Each ``get_tensor`` returns a new writable array. ``f.read_into(name, out)`` converts a floating
    tensor straight from a memory map of the file into an existing array (a model's parameter), so a
    checkpoint stored in BF16 or F16 becomes float32 without a second copy of it in memory.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.header = read_header(path)
        self._file = open(path, "rb")
        self._map = None   # mapped on the first read_into

    def info(self, name: str) -> TensorInfo:
        """The header entry (dtype, shape, byte range) of tensor ``name``."""
        if name not in self.header.tensors:
            raise KeyError(f"{self.path} has no tensor {name!r} ({len(self.header.tensors)} tensors; "
                           "see keys())")
        return self.header.tensors[name]

    def read_into(self, name: str, out: np.ndarray) -> None:
        """Write tensor ``name`` (F16, BF16, F32 or F64) into the floating array ``out`` of its shape."""
        info = self.info(name)
        if tuple(out.shape) != info.shape:
            raise ValueError(f"{self.path}: tensor {name!r} has shape {list(info.shape)} but the array "
                             f"it should fill has shape {list(out.shape)}")
        if self._map is None:
            self._map = _mmap.mmap(self._file.fileno(), 0, access=_mmap.ACCESS_READ)
        stored = np.frombuffer(self._map, dtype=_STORAGE[info.dtype], count=prod(info.shape),
                               offset=self.header.data_start + info.data_offsets[0]).reshape(info.shape)
        try:
            read_float_into(stored, info.dtype, out)
        except ValueError as e:
            raise ValueError(f"{self.path}: tensor {name!r}: {e}") from None
        finally:
            del stored   # no view may outlive the map, or it cannot be closed
        # The pages just read are the file's, not this process's: let them go from its resident
        # memory, so that loading a checkpoint never holds it in memory beside the model.
        begin = self.header.data_start + info.data_offsets[0]
        page = begin - begin % _mmap.PAGESIZE
        if hasattr(self._map, "madvise") and info.nbytes:
            self._map.madvise(_mmap.MADV_DONTNEED, page, begin + info.nbytes - page)

    def keys(self) -> list[str]:
        return sorted(self.header.tensors)

    def metadata(self) -> dict[str, str]:
        return dict(self.header.metadata)

    def get_tensor(self, name: str) -> np.ndarray:
        info = self.info(name)
        self._file.seek(self.header.data_start + info.data_offsets[0])
        buf = bytearray(info.nbytes)
        if self._file.readinto(buf) != info.nbytes:
            raise SafetensorsError(f"{self.path}: the file changed while open; tensor {name!r} is cut short")
        return _to_array(self.path, name, info, buf, 0)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self._file.close()

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
