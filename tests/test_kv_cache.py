"""The KV cache (gpt/kv_cache.py): grows on demand, keeps only the window of sliding layers, stores
key/value heads only; each update returns exactly the keys its layer attends over."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minigrad as mg

from gpt.architectures import DecoderConfig, build_model
from gpt.kv_cache import INITIAL_CAPACITY, KVCache


@given(chunks=st.lists(st.integers(1, 40), min_size=1, max_size=12), window=st.sampled_from([None, 1, 2, 5, 17]),
       seed=st.integers(0, 2**32 - 1))
def test_update_returns_the_keys_each_layer_attends_over(chunks, window, seed):
    total = sum(chunks)
    rng = np.random.default_rng(seed)
    keys = rng.standard_normal((2, 3, total, 4)).astype(np.float32)
    values = rng.standard_normal((2, 3, total, 4)).astype(np.float32)
    cache = KVCache(2, 2, 3, 4, max_len=total, windows=[None, window])
    start = 0
    for n in chunks:
        for layer in (0, 1):
            k, v = cache.update(layer, mg.Tensor(keys[:, :, start:start + n]), mg.Tensor(values[:, :, start:start + n]))
            first = cache.key_start(layer)
            assert first == (0 if layer == 0 or window is None else max(0, start - (window - 1)))
            np.testing.assert_array_equal(k.data, keys[:, :, first:start + n])
            np.testing.assert_array_equal(v.data, values[:, :, first:start + n])
        cache.advance()
        start += n
        assert cache.length == start
        # never more than max_len per full layer; a window's memory stays bounded by W - 1 + the chunk
        assert cache.keys[0].shape[2] <= total
        if window is not None:
            assert cache.keys[1].shape[2] <= max(2 * window, 16, 2 * (window - 1 + max(chunks)))


def test_capacity_grows_by_doubling_from_a_small_start():
    cache = KVCache(1, 1, 2, 4, max_len=100_000)
    assert cache.keys[0].shape[2] == INITIAL_CAPACITY
    one = mg.Tensor(np.ones((1, 2, 1, 4), np.float32))
    caps = set()
    for _ in range(1000):
        cache.update(0, one, one)
        cache.advance()
        caps.add(cache.keys[0].shape[2])
    assert caps == {256, 512, 1024}
    small = KVCache(1, 1, 2, 4, max_len=10)
    assert small.keys[0].shape[2] == 10


def test_overflow_is_a_clear_error():
    cache = KVCache(1, 1, 1, 2, max_len=2, windows=[3])
    k = mg.Tensor(np.zeros((1, 1, 2, 2), np.float32))
    cache.update(0, k, k)
    cache.advance()
    with pytest.raises(ValueError, match="holds 2 positions; 2 are used and 1 more do not fit"):
        cache.update(0, k[:, :, :1], k[:, :, :1])
    cache.reset()
    assert cache.length == 0 and cache.key_start(0) == 0


def test_model_caches_hold_kv_heads_and_windows_only():
    """Llama-style GQA (4 heads, 1 key/value head) holds a quarter of a full-head cache; Gemma's
    sliding layers stay at their window however long the text."""
    cfg = DecoderConfig(arch="gemma3", vocab_size=20, context_length=4096, emb_dim=16, n_heads=4, n_kv_heads=1,
                        head_dim=8, n_layers=2, hidden_dim=16, sliding_window=8,
                        layer_types=["sliding_attention", "full_attention"])
    model = build_model(cfg).eval()
    cache = model.new_kv_cache(1)
    assert cache.n_heads == 1 and cache.keys[1].shape == (1, 1, INITIAL_CAPACITY, 8)
    full_heads = KVCache(2, 1, 4, 8, 4096)             # what multi-head attention would keep
    assert 4 * cache.keys[1].nbytes == full_heads.keys[1].nbytes
    ids = np.random.default_rng(0).integers(0, 20, (1, 600))
    with mg.no_grad():
        model(ids[:, :100], kv_cache=cache)
        for t in range(100, 600):
            model(ids[:, t:t + 1], kv_cache=cache)
    assert cache.length == 600
    assert cache.keys[0].shape[2] <= 100 + 7          # the prefill's chunk plus the window, no more
    assert cache.key_start(0) == 600 - 7 and cache.key_start(1) == 0
    assert cache.keys[1].shape[2] == 1024              # the global layer grew by doubling
