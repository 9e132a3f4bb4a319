"""Where a token sits: the position schemes of ``GPTConfig.pos_emb`` (beyond the book but for
``"learned"``, which is the book's ``nn.Embedding(context_length, emb_dim)`` in ``gpt/model.py``).

Chapter 2 adds a learned vector per *absolute* position to each token embedding. The others here
are *relative*: attention sees how far apart a query and a key are, not where they are.

=========  ==============================================================  ==================
pos_emb    what attention adds or changes                                   parameters
=========  ==============================================================  ==================
learned    x += pos_emb[p] before the first block (GPT-2, the book)        context x emb_dim
rope       queries and keys rotated by p * theta_i (Su et al. 2021)         none
alibi      score(i, j) += -m_h * (i - j), fixed slopes (Press et al. 2022)  none
t5         score(i, j) += b[bucket(j - i), h], learned (Raffel et al. 2020) buckets x heads
none       nothing: the causal mask alone says where a token is              none
=========  ==============================================================  ==================

ALiBi and T5's bias are the notes' "score(i, j) = similarity(q_i, k_j) + position_bias(i - j)":
an (H, T, T_keys) array built once per forward pass with NumPy broadcasting, shared by every
layer, and added to the scaled scores inside the fused masked softmax
(``minigrad.ops.softmax.masked_softmax(..., bias=)``). With no table indexed by position, a
model with rope, alibi, t5 or none runs on sequences longer than the ones it was trained on.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from minigrad import nn
from minigrad.function import Function

__all__ = ["RotaryEmbedding", "check_rope_scaling", "llama3_inv_freq", "rope_scaling_from_string", "alibi_slopes", "alibi_bias", "ALiBi",
           "relative_position_bucket", "T5RelativeBias", "EXTRAPOLATING"]

#: the schemes with no table indexed by position: they run past the training context length
EXTRAPOLATING = ("rope", "alibi", "t5", "none")


# ---------------------------------------------------------------------------------------- RoPE
class _Rotate(Function):
    """out = [x1 cos - x2 sin, x2 cos + x1 sin] for x = [x1, x2] split in halves of the last axis.

    Computed as ``x * [cos, cos] + [x2, x1] * [-sin, sin]`` with the tables given full width
    (``cos``, ``sin``: (T, head_dim) = [cos, cos] and [-sin, sin]): two passes over whole rows
    and one copy that swaps the halves, instead of six passes over half rows.
    The rotation is orthogonal, so its backward is the rotation by the opposite angle:
    dx1 = g1 cos + g2 sin,  dx2 = g2 cos - g1 sin,  i.e.  dx = g * [cos, cos] - [g2, g1] * [-sin, sin].
    """

    def forward(self, x, cos, sin):
        self.cos, self.sin = cos, sin
        out = np.multiply(x, cos, out=np.empty(x.shape, x.dtype))   # C order whatever x's layout
        swapped = _swap_halves(x)
        swapped *= sin
        out += swapped
        return out

    def backward(self, grad):
        gx = grad * self.cos
        swapped = _swap_halves(grad)
        swapped *= self.sin
        gx -= swapped
        return gx


def _swap_halves(x: np.ndarray) -> np.ndarray:
    """[x1, x2] -> [x2, x1] along the last axis, a new C-ordered array."""
    half = x.shape[-1] // 2
    out = np.empty(x.shape, x.dtype)
    out[..., :half] = x[..., half:]
    out[..., half:] = x[..., :half]
    return out


ROPE_SCALINGS = ("linear", "ntk")
LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")


def _as_type_key(scaling):
    """transformers writes the kind under ``rope_type``; this module under ``type``: accept both."""
    if isinstance(scaling, dict) and "rope_type" in scaling and "type" not in scaling:
        scaling = {"type": scaling["rope_type"], **{k: v for k, v in scaling.items() if k != "rope_type"}}
    return scaling


def check_rope_scaling(scaling) -> tuple[str | None, float]:
    """(kind, factor) of a ``rope_scaling`` setting; (None, 1.0) for None; ValueError if malformed.

    Besides ``{"type": "linear" | "ntk", "factor": s}``, Llama 3's ``{"type": "llama3", "factor": s,
    "low_freq_factor": l, "high_freq_factor": h, "original_max_position_embeddings": L}`` (the type
    may also sit under transformers' key ``rope_type``)."""
    if scaling is None:
        return None, 1.0
    scaling = _as_type_key(scaling)
    if isinstance(scaling, dict) and scaling.get("type") == "llama3":
        if set(scaling) != {"type", *LLAMA3_KEYS}:
            raise ValueError(f"llama3 rope_scaling needs exactly the keys {', '.join(LLAMA3_KEYS)}, got {scaling!r}")
        for key in LLAMA3_KEYS:
            v = scaling[key]
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 < v < math.inf:
                raise ValueError(f"llama3 rope_scaling {key} must be a positive finite number, got {v!r}")
        if not scaling["high_freq_factor"] > scaling["low_freq_factor"]:
            raise ValueError("llama3 rope_scaling high_freq_factor must exceed low_freq_factor, got "
                             f"{scaling['high_freq_factor']} and {scaling['low_freq_factor']}")
        return "llama3", float(scaling["factor"])
    if not isinstance(scaling, dict) or set(scaling) != {"type", "factor"}:
        raise ValueError(f"rope_scaling must be None or {{'type': 'linear' or 'ntk', 'factor': s}}, got {scaling!r}")
    kind, factor = scaling["type"], scaling["factor"]
    if kind not in ROPE_SCALINGS:
        raise ValueError(f"rope_scaling type must be one of {', '.join(ROPE_SCALINGS)}, not {kind!r}")
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or not 1.0 <= factor < math.inf:
        raise ValueError(f"rope_scaling factor must be a finite number >= 1, got {factor!r}")
    return kind, float(factor)


def llama3_inv_freq(inv_freq: np.ndarray, factor: float, low_freq_factor: float, high_freq_factor: float,
                    original_max_position_embeddings: float) -> np.ndarray:
    """Llama 3's frequency scaling (transformers' "llama3" rope type), by wavelength 2 pi / theta_i:

    * wavelengths shorter than L / high_freq_factor (fast, local frequencies): unchanged;
    * longer than L / low_freq_factor (slow, long-range ones): divided by ``factor``, as linear scaling;
    * in between: a blend, theta' = (1 - a) theta / factor + a theta with a = (L / wavelength - low)
      / (high - low), which runs from 0 at the long end to 1 at the short end.

    L = original_max_position_embeddings (8192 for Llama 3.1 and 3.2)."""
    old = float(original_max_position_embeddings)
    wavelen = 2 * math.pi / inv_freq
    smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    blended = (1 - smooth) * inv_freq / factor + smooth * inv_freq
    out = np.where(wavelen > old / low_freq_factor, inv_freq / factor, inv_freq)
    medium = (wavelen >= old / high_freq_factor) & (wavelen <= old / low_freq_factor)
    return np.where(medium, blended, out)


def rope_scaling_from_string(text: str) -> dict | None:
    """``"linear:4"`` -> ``{"type": "linear", "factor": 4.0}``; ``"none"`` -> None (for the CLI)."""
    if text == "none":
        return None
    kind, _, factor = text.partition(":")
    try:
        scaling = {"type": kind, "factor": float(factor)}
    except ValueError:
        raise ValueError(f"expected KIND:FACTOR such as linear:4 or ntk:4, got {text!r}") from None
    check_rope_scaling(scaling)
    return scaling


class RotaryEmbedding:
    """Rotation angles for vectors of size ``head_dim``: ``rope(x, start_pos)`` rotates
    x: (b, H, T, head_dim) as if its tokens sat at positions start_pos .. start_pos + T - 1.

    The pair (x_i, x_{i + hd/2}) of a vector at position p is rotated by the angle p * theta_i,
    theta_i = base^(-2i/hd) ("half split" pairing, as GPT-NeoX and Llama). A rotated query and key
    then have a dot product that depends only on their distance. The angles are computed for
    ``context_length`` positions and extended on demand: RoPE has no table that ends.

    ``scaling`` stretches a model trained at length L to s * L at inference (no training):

    * ``{"type": "linear", "factor": s}``: position interpolation (Chen et al. 2023): the angle of
      position p is that of p / s, so s * L positions fall inside the trained range,
      theta_i' = theta_i / s (every frequency slowed down, also the fast ones that need no help).
    * ``{"type": "ntk", "factor": s}``: "NTK-aware" scaling (bloc97, 2023): a larger base,
      base' = base * s^(hd / (hd - 2)), so the slowest frequency is slowed by exactly s while the
      fastest (theta_0 = 1) is unchanged: nearby tokens keep their resolution.
    * ``{"type": "llama3", "factor": s, "low_freq_factor": ..., ...}``: Llama 3's by-wavelength blend
      of the two (:func:`llama3_inv_freq`), which the published Llama 3.1/3.2 weights were trained with.

    ``base`` is the config's ``rope_theta`` (10,000 in the RoPE paper, 500,000 for Llama 3,
    1,000,000 for Qwen3 and Gemma 3's global layers).
    """

    def __init__(self, head_dim: int, context_length: int, base: float = 10000.0, scaling: dict | None = None):
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        scaling = _as_type_key(scaling)
        kind, factor = check_rope_scaling(scaling)
        if kind == "ntk" and head_dim > 2:
            base = base * factor ** (head_dim / (head_dim - 2))
        inv_freq = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)   # (hd/2,)
        if kind == "linear":
            inv_freq = inv_freq / factor
        elif kind == "llama3":
            inv_freq = llama3_inv_freq(inv_freq, *(scaling[k] for k in LLAMA3_KEYS))
        self.inv_freq, self.scaling = inv_freq, scaling
        self.head_dim, self.context_length = head_dim, context_length
        self._extend(context_length)

    def _extend(self, positions: int) -> None:
        angles = np.outer(np.arange(positions, dtype=np.float64), self.inv_freq)      # (positions, hd/2)
        self.cos, self.sin = np.cos(angles), np.sin(angles)
        self._tables: dict = {}

    def __call__(self, x, start_pos: int = 0):
        t = x.shape[-2]
        if start_pos + t > len(self.cos):      # past the length computed so far: double it
            self._extend(max(start_pos + t, 2 * len(self.cos)))
        tables = self._tables.get(x.dtype)
        if tables is None:   # computed in float64, then kept in each dtype asked for, full width
            tables = self._tables[x.dtype] = (np.concatenate([self.cos, self.cos], -1).astype(x.dtype),
                                              np.concatenate([-self.sin, self.sin], -1).astype(x.dtype))
        cos, sin = tables[0][start_pos:start_pos + t], tables[1][start_pos:start_pos + t]
        return _Rotate.apply(x, cos=cos, sin=sin)


# --------------------------------------------------------------------------------------- ALiBi
def alibi_slopes(n_heads: int) -> np.ndarray:
    """ALiBi's fixed per-head slopes m (float64, shape (n_heads,)), as Press et al. compute them.

    For n a power of two, m_k = 2^(-8k/n), k = 1..n: a geometric sequence from 2^(-8/n) down to
    2^-8 (8 heads: 1/2, 1/4, ..., 1/256). Otherwise the slopes of the largest power of two p below
    n, then every other slope of the 2p list (those not already taken) until there are n.
    """
    if n_heads < 1:
        raise ValueError(f"n_heads must be positive, got {n_heads}")

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * k / n) for k in range(1, n + 1)]

    p = 2 ** int(math.floor(math.log2(n_heads)))
    if p == n_heads:
        return np.array(power_of_two(n_heads))
    return np.concatenate([power_of_two(p), alibi_slopes(2 * p)[0::2][:n_heads - p]])


def alibi_bias(slopes: np.ndarray, start: int, num_tokens: int, num_keys: int, dtype=np.float32) -> np.ndarray:
    """(H, num_tokens, num_keys): -m_h * (i - j) for query i at position start + i and key j at
    position j, and 0 above the diagonal (those keys are masked anyway)."""
    distance = np.arange(start, start + num_tokens)[:, None] - np.arange(num_keys)[None, :]   # (T, T_keys)
    np.maximum(distance, 0, out=distance)
    return (-slopes.astype(dtype)[:, None, None]) * distance.astype(dtype)


class ALiBi:
    """Attention with Linear Biases: a fixed penalty on distance, a different slope per head (no
    parameters, no position embedding). ``alibi(start, T, T_keys, dtype)`` -> (H, T, T_keys) array.
    The last bias is kept: training asks for the same one at every step and every layer."""

    def __init__(self, n_heads: int):
        self.slopes = alibi_slopes(n_heads)
        self._last: tuple | None = None

    def __call__(self, start: int, num_tokens: int, num_keys: int, dtype=np.float32) -> np.ndarray:
        key = (start, num_tokens, num_keys, np.dtype(dtype))
        if self._last is None or self._last[0] != key:
            bias = alibi_bias(self.slopes, start, num_tokens, num_keys, dtype)
            bias.flags.writeable = False
            self._last = (key, bias)
        return self._last[1]


# ------------------------------------------------------------------------------ T5's bias table
def relative_position_bucket(relative_position, bidirectional: bool = True, num_buckets: int = 32,
                             max_distance: int = 128) -> np.ndarray:
    """T5's bucket of each ``relative_position = key - query`` (an int array; same shape out).

    Transcribed from T5 (mesh-tensorflow; ``T5Attention._relative_position_bucket`` in transformers).
    Bidirectional: half the buckets for keys after the query, half for keys before. Causal
    (``bidirectional=False``): keys after the query all fall in bucket 0 with distance 0 (they are
    masked anyway). Of the n buckets left, distances 0 .. n/2 - 1 get one bucket each; larger
    distances share buckets spaced logarithmically up to ``max_distance``, and every distance from
    there on falls into the last bucket.
    """
    exact = num_buckets // 2 if bidirectional else num_buckets
    if exact < 2 or max_distance <= exact // 2:
        raise ValueError(f"T5's buckets need num_buckets >= {4 if bidirectional else 2} and max_distance > "
                         f"{exact // 2} (the distances with a bucket each), got {num_buckets} and {max_distance}")
    rel = np.asarray(relative_position, dtype=np.int64)
    buckets = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        buckets += (rel > 0) * num_buckets
        rel = np.abs(rel)
    else:
        rel = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    # float32, as T5 computes it, so the bucket edges are T5's own
    scaled = np.log(np.maximum(rel, 1).astype(np.float32) / np.float32(max_exact)) \
        / np.float32(math.log(max_distance / max_exact)) * np.float32(num_buckets - max_exact)
    large = np.minimum(max_exact + scaled.astype(np.int64), num_buckets - 1)
    return buckets + np.where(is_small, rel, large)


class T5RelativeBias(nn.Module):
    """T5's relative position bias: one learned scalar per (bucket, head), added to the scores.
    ``bias(start, T, T_keys)`` -> Tensor (H, T, T_keys).

    One table for the whole model (T5 computes it in the first layer and shares it with the rest).
    It starts at zero (T5 draws it at random): training then starts from the same model as "none",
    and the table learns quickly because each entry's gradient sums the scores of every query-key
    pair in its bucket. The parameter name is T5's (``relative_attention_bias.weight``).
    """

    def __init__(self, n_heads: int, num_buckets: int = 32, max_distance: int = 128):
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, n_heads)
        self.relative_attention_bias.weight.data[...] = 0.0
        self._last: tuple | None = None

    def buckets(self, start: int, num_tokens: int, num_keys: int) -> np.ndarray:
        """(T, T_keys) bucket ids for queries at start .. start + T - 1 and keys 0 .. T_keys - 1."""
        key = (start, num_tokens, num_keys)
        if self._last is None or self._last[0] != key:
            relative = np.arange(num_keys)[None, :] - np.arange(start, start + num_tokens)[:, None]
            self._last = (key, relative_position_bucket(relative, bidirectional=False,
                                                         num_buckets=self.num_buckets,
                                                         max_distance=self.max_distance))
        return self._last[1]

    def forward(self, start: int, num_tokens: int, num_keys: int):
        values = self.relative_attention_bias(self.buckets(start, num_tokens, num_keys))   # (T, T_keys, H)
        return values.permute(2, 0, 1)                                                   # (H, T, T_keys)
