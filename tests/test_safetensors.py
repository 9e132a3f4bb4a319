"""gpt.safetensors: round trips, byte-exact format compliance, BF16 rounding, and every corruption
case ending in a one-line SafetensorsError that names the file."""
import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpt import safetensors as sf
from gpt.safetensors import SafetensorsError

NUMPY_OF = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
            "F16": np.float16, "I32": np.int32, "U32": np.uint32, "F32": np.float32,
            "I64": np.int64, "U64": np.uint64, "F64": np.float64}

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
names = st.text(min_size=0, max_size=12).filter(lambda s: s != "__metadata__")


def _not_bf16_nan(bits: int) -> bool:
    return not ((bits & 0x7F80) == 0x7F80 and bits & 0x007F)


@st.composite
def tensor_and_dtype(draw):
    """-> (array to save, stored dtype name). BF16 arrays are float32 values exact in bfloat16."""
    dtype = draw(st.sampled_from(sf.DTYPES))
    shape = draw(shapes)
    if dtype == "BF16":
        bits = draw(hnp.arrays(np.uint16, shape, elements=st.integers(0, 0xFFFF).filter(_not_bf16_nan)))
        return sf.bfloat16_bits_to_float32(bits), dtype
    return draw(hnp.arrays(NUMPY_OF[dtype], shape)), dtype


tensor_dicts = st.dictionaries(names, tensor_and_dtype(), max_size=5)
metadata_dicts = st.none() | st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4)


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape, dtype and bytes (so NaN payloads and -0.0 count too)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _check_layout(blob: bytes, header: sf.Header) -> None:
    """The data buffer starts at a multiple of 8 and each tensor at a multiple of its element size."""
    assert header.data_start % 8 == 0
    for info in header.tensors.values():
        assert info.data_offsets[0] % sf._STORAGE[info.dtype].itemsize == 0
    n = struct.unpack("<Q", blob[:8])[0]
    assert header.data_start == 8 + n


# ------------------------------------------------------------------------------------------------
# Round trips


@given(tensor_dicts, metadata_dicts)
def test_round_trip_through_bytes_and_files(items, metadata):
    tensors = {k: a for k, (a, _) in items.items()}
    dtypes = {k: d for k, (_, d) in items.items() if d == "BF16"}
    blob = sf.save(tensors, metadata, dtypes=dtypes)
    header = sf._parse("<bytes>", blob)
    _check_layout(blob, header)
    assert {k: i.dtype for k, i in header.tensors.items()} == {k: d for k, (_, d) in items.items()}
    assert header.metadata == (metadata or {})

    loaded = sf.load(blob)
    assert list(loaded) == sorted(tensors)
    for k, a in tensors.items():
        assert _same(loaded[k], a), k

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.safetensors"
        sf.save_file(tensors, path, metadata, dtypes=dtypes)
        assert path.read_bytes() == blob
        assert sorted(os.listdir(d)) == ["t.safetensors"]  # no temporary file left behind
        assert sf.load_metadata(path) == (metadata or {})
        for mmap in (False, True):
            from_file = sf.load_file(path, mmap=mmap)
            assert all(_same(from_file[k], a) for k, a in tensors.items())
        with sf.safe_open(path) as f:
            assert f.keys() == sorted(tensors)
            assert all(_same(f.get_tensor(k), a) for k, a in tensors.items())


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=60), max_size=6))
def test_metadata_round_trip(metadata):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.safetensors"
        sf.save_file({"x": np.zeros(3, np.float32)}, path, metadata)
        assert sf.load_metadata(path) == metadata
        assert sf.load_metadata(path) is not metadata


def test_no_metadata_reads_as_empty_dict(tmp_path):
    sf.save_file({"x": np.ones(2, np.float32)}, tmp_path / "a.safetensors")
    assert sf.load_metadata(tmp_path / "a.safetensors") == {}
    assert b"__metadata__" not in (tmp_path / "a.safetensors").read_bytes()


def test_load_file_arrays_are_writable_and_mmap_arrays_read_only(tmp_path):
    path = tmp_path / "w.safetensors"
    sf.save_file({"a": np.arange(4, dtype=np.float32), "b": np.arange(3, dtype=np.int64)}, path)
    plain = sf.load_file(path)
    plain["a"][0] = 42.0  # an ordinary writable array
    assert plain["a"][0] == 42.0 and sf.load_file(path)["a"][0] == 0.0  # the file is untouched
    mapped = sf.load_file(path, mmap=True)
    np.testing.assert_array_equal(mapped["b"], [0, 1, 2])
    with pytest.raises(ValueError):
        mapped["b"][0] = 1


def test_save_file_replaces_atomically_and_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "m.safetensors"
    sf.save_file({"x": np.arange(3, dtype=np.float32)}, path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="cannot store"):
        sf.save_file({"x": np.array(["a", "b"])}, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]
    sf.save_file({"y": np.arange(2, dtype=np.int32)}, path)
    assert list(sf.load_file(path)) == ["y"] and os.listdir(tmp_path) == ["m.safetensors"]


# ------------------------------------------------------------------------------------------------
# Format compliance without the library: bytes built by hand from the published description


def _hand_file(header: dict, data: bytes, pad: int = 0) -> bytes:
    text = json.dumps(header).encode("utf-8") + b" " * pad
    return struct.pack("<Q", len(text)) + text + data


def test_reads_a_file_written_byte_by_byte(tmp_path):
    data = b"".join([
        struct.pack("<4f", 1.0, -2.5, 0.125, 3e38),       # F32 [2, 2]
        struct.pack("<2q", -(2**40), 7),                   # I64 [2]
        struct.pack("<3H", 0x3F80, 0xC000, 0x3F00),        # BF16 [3]: 1.0, -2.0, 0.5
        struct.pack("<e", -0.5),                           # F16 []
        bytes([1, 0, 1]),                                  # BOOL [3]
        bytes([200]),                                      # U8 [1, 1]
    ])
    header = {
        "__metadata__": {"format": "pt", "note": "hand-made"},
        "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "ids": {"dtype": "I64", "shape": [2], "data_offsets": [16, 32]},
        "half": {"dtype": "BF16", "shape": [3], "data_offsets": [32, 38]},
        "h": {"dtype": "F16", "shape": [], "data_offsets": [38, 40]},
        "mask": {"dtype": "BOOL", "shape": [3], "data_offsets": [40, 43]},
        "empty": {"dtype": "F32", "shape": [0, 5], "data_offsets": [43, 43]},
        "byte": {"dtype": "U8", "shape": [1, 1], "data_offsets": [43, 44]},
    }
    path = tmp_path / "hand.safetensors"
    path.write_bytes(_hand_file(header, data, pad=5))  # trailing spaces in the header are allowed
    t = sf.load_file(path)
    assert t["w"].dtype == np.float32 and t["w"].shape == (2, 2)
    np.testing.assert_array_equal(t["w"], np.array([[1.0, -2.5], [0.125, 3e38]], np.float32))
    np.testing.assert_array_equal(t["ids"], np.array([-(2**40), 7], np.int64))
    assert t["half"].dtype == np.float32
    np.testing.assert_array_equal(t["half"], [1.0, -2.0, 0.5])
    assert t["h"].shape == () and t["h"].dtype == np.float16 and t["h"] == -0.5
    np.testing.assert_array_equal(t["mask"], [True, False, True])
    assert t["empty"].shape == (0, 5) and t["empty"].dtype == np.float32
    assert t["byte"].shape == (1, 1) and t["byte"][0, 0] == 200
    assert sf.load_metadata(path) == {"format": "pt", "note": "hand-made"}


def test_writes_the_bytes_the_format_prescribes():
    blob = sf.save({"b": np.array([1, -1], np.int16), "a": np.array([1.5, 2.0], np.float32)}, {"k": "v"})
    text = (b'{"__metadata__":{"k":"v"},'
            b'"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
            b'"b":{"dtype":"I16","shape":[2],"data_offsets":[8,12]}}')
    text += b" " * (-(8 + len(text)) % 8)  # padded so the data starts at a multiple of 8
    expected = struct.pack("<Q", len(text)) + text + struct.pack("<2f", 1.5, 2.0) + struct.pack("<2h", 1, -1)
    assert blob == expected


def test_big_endian_and_strided_inputs_are_stored_little_endian_c_order():
    a = np.arange(12, dtype=">i4").reshape(3, 4).T  # big-endian and not contiguous
    blob = sf.save({"a": a})
    assert blob.endswith(np.ascontiguousarray(a, dtype="<i4").tobytes())
    np.testing.assert_array_equal(sf.load(blob)["a"], a)


# ------------------------------------------------------------------------------------------------
# bfloat16 rounding


def _decode(bits: int) -> float:
    return float(sf.bfloat16_bits_to_float32(np.array([bits], np.uint16))[0])


BELOW_BF16_MAX = float(np.float32(3.38e38))  # bfloat16's largest finite value is about 3.3895e38


@given(st.floats(width=32, allow_nan=False, allow_infinity=False,
                 min_value=-BELOW_BF16_MAX, max_value=BELOW_BF16_MAX))
def test_bf16_rounds_to_nearest_even(x):
    x32 = np.float32(x)
    r = int(sf.float32_to_bfloat16_bits(np.array([x32]))[0])
    low = int(np.array([x32]).view(np.uint32)[0]) >> 16   # truncation: toward zero
    assert r in (low, low + 1)
    other = low + 1 if r == low else low
    d_r, d_other = abs(float(x32) - _decode(r)), abs(float(x32) - _decode(other))
    assert d_r <= d_other
    if d_r == d_other and x32 != 0:
        assert r % 2 == 0  # ties go to the even bit pattern


def test_bf16_rounding_fixed_cases():
    x = np.array([1 + 2**-8, 1 + 3 * 2**-8, 1.0, -0.0, np.inf, -np.inf,
                  np.finfo(np.float32).max, np.nan], np.float32)
    bits = sf.float32_to_bfloat16_bits(x)
    assert list(bits[:7]) == [0x3F80, 0x3F82, 0x3F80, 0x8000, 0x7F80, 0xFF80, 0x7F80]
    assert np.isnan(sf.bfloat16_bits_to_float32(bits[7:]))[0]
    assert sf.float32_to_bfloat16_bits(np.float32(2.0)).shape == ()  # 0-d in, 0-d out


def test_bf16_save_halves_the_size_and_rounds(tmp_path):
    x = np.array([1 + 2**-8, 3.14159, -1e-3], np.float32)
    blob = sf.save({"x": x}, dtypes={"x": "BF16"})
    back = sf.load(blob)["x"]
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, sf.bfloat16_bits_to_float32(sf.float32_to_bfloat16_bits(x)))
    np.testing.assert_allclose(back, x, rtol=2**-8)


# ------------------------------------------------------------------------------------------------
# Bad input: one-line errors that name the file


def _error(tmp_path, blob: bytes, header_only_ok: bool = False) -> str:
    """The message of the SafetensorsError every reader raises on ``blob`` (header_only_ok: the
    problem is in the tensor bytes, which read_header does not look at)."""
    path = tmp_path / "bad.safetensors"
    path.write_bytes(blob)
    readers = [sf.load_file, lambda p: sf.load_file(p, mmap=True)]
    if header_only_ok:
        sf.read_header(path)
    else:
        readers.append(sf.read_header)
    for reader in readers:
        with pytest.raises(SafetensorsError) as info:
            reader(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message
    return message


F32_2 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("blob, problem", [
    (b"\x05\x00\x00", "truncated"),
    (struct.pack("<Q", 1000) + b"{}", "only 2 follow"),
    (_hand_file({"a": F32_2}, b"\0" * 4), "truncated"),                  # data cut short
    (struct.pack("<Q", 5) + b"{nope", "not valid JSON"),
    (struct.pack("<Q", 2) + b"\xff\xfe", "UTF-8"),
    (_hand_file([1, 2], b""), "not an object"),
    (_hand_file({"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}}, b"\0\0"),
     "dtype 'F8_E4M3'"),
    (_hand_file({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8), "needs 12 bytes"),
    (_hand_file({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}, b"\0" * 8), "shape"),
    (_hand_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8), "data_offsets"),
    (_hand_file({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8), "needs an object"),
    (_hand_file({"a": F32_2, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
     "overlap"),
    (_hand_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12),
     "belong to no tensor"),
    (_hand_file({"a": F32_2}, b"\0" * 11), "3 trailing bytes"),
    (_hand_file({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"n": 1}},
                b"\0" * 8), "__metadata__"),
    (_hand_file({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02"), "BOOL"),
    (struct.pack("<Q", 3000) + b"[" * 1500 + b"]" * 1500, "nests JSON"),
])
def test_corrupt_files_raise_a_clear_error(tmp_path, blob, problem):
    assert problem in _error(tmp_path, blob, header_only_ok=problem == "BOOL")


def test_duplicate_tensor_names_are_rejected(tmp_path):
    entry = b'{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    text = b'{"a":' + entry + b',"a":' + entry + b'}'
    assert "twice" in _error(tmp_path, struct.pack("<Q", len(text)) + text + b"\0")


@given(tensor_dicts.filter(lambda d: any(a.size for a, _ in d.values())), st.data())
def test_every_strict_prefix_of_a_file_is_rejected(items, data):
    blob = sf.save({k: a for k, (a, _) in items.items()})
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(SafetensorsError):
        sf.load(blob[:cut])


@given(tensor_dicts, st.data())
def test_a_damaged_header_never_crashes_the_reader(items, data):
    """Any byte of the header changed: a valid file or a SafetensorsError, never another exception."""
    blob = bytearray(sf.save({k: a for k, (a, _) in items.items()}))
    n = struct.unpack("<Q", blob[:8])[0]
    i = data.draw(st.integers(0, 8 + n - 1))
    new = data.draw(st.integers(0, 255))
    assume(blob[i] != new)
    blob[i] = new
    try:
        sf.load(bytes(blob))
    except SafetensorsError as e:
        assert "\n" not in str(e)


def test_saving_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="reserved"):
        sf.save({"__metadata__": np.zeros(1)})
    with pytest.raises(ValueError, match="str -> str"):
        sf.save({"x": np.zeros(1)}, {"epoch": 3})
    with pytest.raises(ValueError, match="do not fit in I8"):
        sf.save({"x": np.array([300])}, dtypes={"x": "I8"})
    with pytest.raises(ValueError, match="cannot be stored as I32"):
        sf.save({"x": np.array([0.5])}, dtypes={"x": "I32"})
    with pytest.raises(ValueError, match="not one of the tensors"):
        sf.save({"x": np.zeros(1)}, dtypes={"y": "F16"})
    with pytest.raises(ValueError, match="only floating"):
        sf.save({"x": np.arange(2)}, dtypes={"x": "BF16"})


def test_safe_open_reads_one_tensor_and_names_missing_ones(tmp_path):
    path = tmp_path / "s.safetensors"
    sf.save_file({"a": np.arange(5, dtype=np.int32), "b": np.ones((2, 2), np.float16)}, path, {"x": "y"})
    with sf.safe_open(path) as f:
        assert f.keys() == ["a", "b"] and f.metadata() == {"x": "y"}
        b = f.get_tensor("b")
        b[0, 0] = 3  # a fresh writable array
        assert b.dtype == np.float16 and b.shape == (2, 2)
        with pytest.raises(KeyError, match="no tensor 'c'"):
            f.get_tensor("c")


# ------------------------------------------------------------------------------------------------
# Interoperability with the reference implementation (optional; skipped when it is not installed)


@given(st.dictionaries(names, tensor_and_dtype().filter(lambda t: t[1] != "BF16"), max_size=4),
       metadata_dicts)
def test_files_interoperate_with_the_reference_library(items, metadata):
    official = pytest.importorskip("safetensors.numpy")
    tensors = {k: a for k, (a, _) in items.items()}
    # The reference writer (0.8.0 too) emits an invalid header for metadata with no tensors
    # (safetensors/safetensors#466), which this reader rightly rejects; leave that case out.
    assume(tensors or metadata is None)
    with tempfile.TemporaryDirectory() as d:
        ours, theirs = Path(d) / "ours.safetensors", Path(d) / "theirs.safetensors"
        sf.save_file(tensors, ours, metadata)
        official.save_file(tensors, str(theirs), metadata=metadata)
        read_by_them = official.load_file(str(ours))
        read_by_us = sf.load_file(theirs)
        assert sf.load_metadata(theirs) == (metadata or {})
    for k, a in tensors.items():
        assert _same(np.asarray(read_by_them[k]), a)
        assert _same(read_by_us[k], a)
