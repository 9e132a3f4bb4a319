"""Tests for gpt.data: windows, batches, shuffling, resumption."""
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt.data import DataLoader, GPTDataset, SpreadWindows, create_dataloader, train_val_split

# --------------------------------------------------------------------------------------------------
# Strategies and helpers
# --------------------------------------------------------------------------------------------------


@st.composite
def streams(draw, max_tokens=120):
    """(token_ids, max_length, stride) with at least one window."""
    max_length = draw(st.integers(1, 16))
    stride = draw(st.integers(1, 20))
    n = draw(st.integers(max_length + 1, max(max_length + 1, max_tokens)))
    ids = draw(st.lists(st.integers(0, 50_256), min_size=n, max_size=n))
    return ids, max_length, stride


@st.composite
def loader_settings(draw):
    """A dataset whose token at position p is p (so a window names its own start), plus loader kwargs."""
    max_length = draw(st.integers(1, 6))
    stride = draw(st.integers(1, 6))
    n = draw(st.integers(max_length + 1, 80))
    dataset = GPTDataset(np.arange(n), max_length=max_length, stride=stride)
    kwargs = dict(
        batch_size=draw(st.integers(1, 7)),
        shuffle=draw(st.booleans()),
        drop_last=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )
    return dataset, kwargs


def window_indices(dataset, inputs):
    """Which windows a batch holds, read off their first tokens (for datasets built on arange)."""
    return [int(row[0]) // dataset.stride for row in inputs]


def as_lists(batches):
    """Batches as nested lists, for comparing whole sequences of batches."""
    return [(x.tolist(), y.tolist()) for x, y in batches]


def expected_num_windows(n, max_length, stride):
    """Windows start at 0, stride, 2*stride, ... up to and including n - max_length - 1."""
    return (n - max_length - 1) // stride + 1


# --------------------------------------------------------------------------------------------------
# GPTDataset
# --------------------------------------------------------------------------------------------------


@given(streams())
def test_every_window_and_target_is_a_slice_shifted_by_one(case):
    ids, max_length, stride = case
    dataset = GPTDataset(ids, max_length=max_length, stride=stride)
    assert len(dataset) == expected_num_windows(len(ids), max_length, stride)
    for i in range(len(dataset)):
        x, y = dataset[i]
        start = i * stride
        assert x.dtype == np.int64 and y.dtype == np.int64
        assert x.shape == y.shape == (max_length,)
        assert x.tolist() == ids[start : start + max_length]
        assert y.tolist() == ids[start + 1 : start + 1 + max_length]
        assert x[1:].tolist() == y[:-1].tolist()  # the target is the input shifted by one
    # The last window's target ends inside the stream, and one more window would not fit.
    last = (len(dataset) - 1) * stride
    assert last + max_length + 1 <= len(ids) < last + stride + max_length + 1


@given(streams())
def test_get_batch_gathers_the_same_windows_as_indexing(case):
    ids, max_length, stride = case
    dataset = GPTDataset(ids, max_length=max_length, stride=stride)
    order = np.random.default_rng(len(ids)).permutation(len(dataset))
    x, y = dataset.get_batch(order)
    assert x.dtype == np.int64 and x.shape == y.shape == (len(dataset), max_length)
    for row, i in enumerate(order):
        assert x[row].tolist() == dataset[int(i)][0].tolist()
        assert y[row].tolist() == dataset[int(i)][1].tolist()


@given(st.integers(1, 16), st.integers(0, 100))
def test_windows_tile_the_stream_when_stride_equals_max_length(max_length, extra):
    n = max_length + 1 + extra
    ids = np.random.default_rng(n).integers(0, 1000, size=n)
    dataset = GPTDataset(ids, max_length=max_length, stride=max_length)
    windows = [dataset[i] for i in range(len(dataset))]
    assert len(windows) == (n - 1) // max_length
    # Contiguous and non-overlapping: the windows laid end to end are the start of the stream.
    covered = len(windows) * max_length
    assert np.concatenate([x for x, _ in windows]).tolist() == ids[:covered].tolist()
    assert np.concatenate([y for _, y in windows]).tolist() == ids[1 : covered + 1].tolist()
    assert n - (covered + 1) < max_length  # what is left over could not make another window


def test_dataset_keeps_its_own_read_only_copy():
    ids = np.arange(10)
    dataset = GPTDataset(ids, max_length=3, stride=2)
    ids[:] = -1
    x, y = dataset[1]
    assert x.tolist() == [2, 3, 4] and y.tolist() == [3, 4, 5]
    assert not x.flags.writeable
    assert dataset[-1][0].tolist() == dataset[len(dataset) - 1][0].tolist()
    with pytest.raises(IndexError):
        dataset[len(dataset)]


@given(st.integers(1, 40), st.data())
def test_too_short_stream_says_how_many_tokens_it_has_and_needs(max_length, data):
    n = data.draw(st.integers(0, max_length))
    with pytest.raises(ValueError) as info:
        GPTDataset(list(range(n)), max_length=max_length, stride=1)
    message = str(info.value)
    assert f"has {n} tokens" in message and f"at least {max_length + 1}" in message


@pytest.mark.parametrize("name", ["max_length", "stride"])
@pytest.mark.parametrize("value", [0, -3, 2.5, True, None])
def test_dataset_rejects_non_positive_sizes(name, value):
    kwargs = dict(max_length=4, stride=2)
    kwargs[name] = value
    with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
        GPTDataset(list(range(20)), **kwargs)


@pytest.mark.parametrize(
    "ids, message",
    [([[1, 2, 3], [4, 5, 6]], "1-D"), ([0.5, 1.5, 2.5], "integers"), ([1, -2, 3], "non-negative")],
)
def test_dataset_rejects_bad_token_ids(ids, message):
    with pytest.raises(ValueError, match=message):
        GPTDataset(ids, max_length=1, stride=1)


# --------------------------------------------------------------------------------------------------
# DataLoader: batching, drop_last, shuffling
# --------------------------------------------------------------------------------------------------


@given(loader_settings())
def test_unshuffled_batches_follow_the_windows_in_order(setting):
    dataset, kwargs = setting
    kwargs["shuffle"] = False
    loader = DataLoader(dataset, **kwargs)
    batches = list(loader)
    n, b = len(dataset), kwargs["batch_size"]
    assert len(batches) == len(loader) == (n // b if kwargs["drop_last"] else -(-n // b))
    seen = [i for x, _ in batches for i in window_indices(dataset, x)]
    assert seen == list(range(len(seen)))
    for x, y in batches:
        assert x.dtype == np.int64 and y.dtype == np.int64
        assert x.shape == y.shape and x.shape[1] == dataset.max_length
        assert (x + 1 == y).all()  # on an arange stream the target is each token plus one


@given(loader_settings())
def test_drop_last(setting):
    dataset, kwargs = setting
    batches = list(DataLoader(dataset, **kwargs))
    n, b = len(dataset), kwargs["batch_size"]
    sizes = [x.shape[0] for x, _ in batches]
    if kwargs["drop_last"]:
        assert sizes == [b] * (n // b)
    else:
        assert sizes == [b] * (n // b) + ([n % b] if n % b else [])


@given(loader_settings())
def test_seeded_shuffle_is_a_permutation_of_the_unshuffled_windows(setting):
    dataset, kwargs = setting
    kwargs["shuffle"] = True
    shuffled = [i for x, _ in DataLoader(dataset, **kwargs) for i in window_indices(dataset, x)]
    assert len(set(shuffled)) == len(shuffled)  # no window twice
    if kwargs["drop_last"]:
        b = kwargs["batch_size"]
        assert len(shuffled) == len(dataset) // b * b
    else:
        assert sorted(shuffled) == list(range(len(dataset)))  # every window exactly once
    # Each shuffled batch holds exactly the windows its indices name.
    for x, y in DataLoader(dataset, **kwargs):
        for row, i in enumerate(window_indices(dataset, x)):
            assert x[row].tolist() == dataset[i][0].tolist() and y[row].tolist() == dataset[i][1].tolist()


@given(loader_settings())
def test_same_seed_same_order_every_epoch(setting):
    dataset, kwargs = setting
    a, b = DataLoader(dataset, **kwargs), DataLoader(dataset, **kwargs)
    for _ in range(3):
        assert as_lists(a) == as_lists(b)


def test_each_epoch_draws_a_fresh_permutation_from_the_loaders_own_generator():
    dataset = GPTDataset(np.arange(200), max_length=3, stride=3)
    loader = DataLoader(dataset, batch_size=1, shuffle=True, seed=7)
    first = [i for x, _ in loader for i in window_indices(dataset, x)]
    np.random.seed(0)  # the global generator must not matter
    second = [i for x, _ in loader for i in window_indices(dataset, x)]
    assert first != second and sorted(first) == sorted(second) == list(range(len(dataset)))
    np.random.seed(12345)
    again = DataLoader(dataset, batch_size=1, shuffle=True, seed=7)
    assert [i for x, _ in again for i in window_indices(dataset, x)] == first
    other_seed = DataLoader(dataset, batch_size=1, shuffle=True, seed=8)
    assert [i for x, _ in other_seed for i in window_indices(dataset, x)] != first


@given(loader_settings())
def test_batches_are_the_same_without_the_fast_path_or_with_a_collate_fn(setting):
    dataset, kwargs = setting

    class PlainDataset:  # only __len__ and __getitem__, as a PyTorch map-style dataset
        def __len__(self):
            return len(dataset)

        def __getitem__(self, i):
            return dataset[i]

    def collate(items):
        return np.stack([x for x, _ in items]), np.stack([y for _, y in items])

    expected = as_lists(DataLoader(dataset, **kwargs))
    assert as_lists(DataLoader(PlainDataset(), **kwargs)) == expected
    assert as_lists(DataLoader(dataset, collate_fn=collate, **kwargs)) == expected


@pytest.mark.parametrize("value", [0, -1, 1.0, None])
def test_loader_rejects_non_positive_batch_size(value):
    dataset = GPTDataset(np.arange(20), max_length=2, stride=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(dataset, batch_size=value)


# --------------------------------------------------------------------------------------------------
# DataLoader: exact resumption
# --------------------------------------------------------------------------------------------------


def run(loader, start_epoch, num_epochs, stop_after=None):
    """A training loop over epochs; returns its batches and, if it stops early, the loader state."""
    seen = []
    for _ in range(start_epoch, num_epochs):
        for batch in loader:
            seen.append(batch)
            if len(seen) == stop_after:
                return seen, json.loads(json.dumps(loader.state_dict()))  # as a checkpoint stores it
    return seen, None


def restored(dataset, kwargs, state):
    """A new loader given a saved state; seeded differently, so only the state can make it agree."""
    loader = DataLoader(dataset, **{**kwargs, "seed": kwargs["seed"] + 1})
    loader.load_state_dict(state)
    return loader


@given(loader_settings(), st.integers(1, 3), st.data())
def test_resuming_from_state_dict_gives_the_same_batches(setting, num_epochs, data):
    dataset, kwargs = setting
    original = DataLoader(dataset, **kwargs)
    reference, _ = run(original, 0, num_epochs)
    if not reference:
        return  # drop_last with fewer windows than a batch: nothing to resume
    stop = data.draw(st.integers(1, len(reference)), label="stop after batch")
    before, state = run(DataLoader(dataset, **kwargs), 0, num_epochs, stop_after=stop)
    resumed = restored(dataset, kwargs, state)
    after, _ = run(resumed, state["epoch"], num_epochs)  # without evaluations, every pass is an epoch
    assert as_lists(before + after) == as_lists(reference)
    assert resumed.state_dict() == original.state_dict()  # and it ends in the same state


@given(loader_settings())
def test_resuming_between_epochs(setting):
    dataset, kwargs = setting
    reference, _ = run(DataLoader(dataset, **kwargs), 0, 3)
    loader = DataLoader(dataset, **kwargs)
    first, _ = run(loader, 0, 1)
    state = json.loads(json.dumps(loader.state_dict()))
    assert state["epoch"] == 1 and state["position"] == 0
    rest, _ = run(restored(dataset, kwargs, state), 1, 3)
    assert as_lists(first + rest) == as_lists(reference)


class Interrupted(Exception):
    """Stands in for the KeyboardInterrupt of Ctrl-C."""


class BookLoop:
    """The book's training loop over a loader, minus the model: it records which batches it reads.

    Every eval_freq steps it also evaluates on eval_iter batches of the same loader, in a nested loop
    that breaks off, as the book's ``evaluate_model`` / ``calc_loss_loader`` do. It keeps its own epoch
    and step, as a trainer's checkpoint does (the loader counts every pass, evaluations included).
    """

    def __init__(self, loader, num_epochs, eval_freq, eval_iter, epoch=0, step=0):
        self.loader, self.num_epochs, self.eval_freq, self.eval_iter = loader, num_epochs, eval_freq, eval_iter
        self.epoch, self.step = epoch, step
        self.trained, self.evaluated = [], {}  # evaluated: step -> batches

    def evaluate(self, interrupt_at=None):
        batches = self.evaluated.setdefault(self.step, [])
        for i, batch in enumerate(self.loader):
            if i >= self.eval_iter:
                break
            batches.append(batch)
            if i == interrupt_at:
                raise Interrupted

    def run(self, stop_after=None, interrupt=None):
        """Train; at step stop_after return the loader state, or raise Interrupted ("loop": after
        the step, "eval": in the middle of that step's evaluation, if it has one)."""
        for self.epoch in range(self.epoch, self.num_epochs):
            for batch in self.loader:
                self.trained.append(batch)
                self.step += 1
                stopping = self.step == stop_after
                if self.step % self.eval_freq == 0:
                    self.evaluate(interrupt_at=0 if stopping and interrupt == "eval" else None)
                if stopping:
                    if interrupt:
                        raise Interrupted
                    return json.loads(json.dumps(self.loader.state_dict()))
        self.epoch = self.num_epochs
        return None


@given(
    loader_settings(), st.integers(1, 3), st.integers(1, 4), st.integers(1, 3),
    st.sampled_from([None, "loop", "eval"]), st.data(),
)
def test_resuming_a_loop_that_evaluates_on_the_same_loader(setting, num_epochs, eval_freq, eval_iter, interrupt, data):
    dataset, kwargs = setting
    loop = dict(num_epochs=num_epochs, eval_freq=eval_freq, eval_iter=eval_iter)
    reference = BookLoop(DataLoader(dataset, **kwargs), **loop)
    reference.run()
    if not reference.trained:
        return
    stop = data.draw(st.integers(1, len(reference.trained)), label="stop after step")
    first = BookLoop(DataLoader(dataset, **kwargs), **loop)
    try:
        state = first.run(stop_after=stop, interrupt=interrupt)
    except Interrupted:  # a trainer's Ctrl-C handler: the loops are broken, the state is saved
        assert interrupt is not None
        state = json.loads(json.dumps(first.loader.state_dict()))
    second = BookLoop(restored(dataset, kwargs, state), epoch=first.epoch, step=first.step, **loop)
    second.run()
    assert as_lists(first.trained + second.trained) == as_lists(reference.trained)
    assert second.loader.state_dict() == reference.loader.state_dict()
    evaluated = {**first.evaluated, **second.evaluated}
    assert evaluated.keys() == reference.evaluated.keys()
    for step, batches in evaluated.items():
        if interrupt == "eval" and step == stop:  # cut short: what it read is the start of the full one
            assert as_lists(batches) == as_lists(reference.evaluated[step][: len(batches)])
        else:
            assert as_lists(batches) == as_lists(reference.evaluated[step])


def test_state_follows_the_outermost_pass():
    dataset = GPTDataset(np.arange(50), max_length=4, stride=4)  # 12 windows
    loader = DataLoader(dataset, batch_size=5, shuffle=True, drop_last=False, seed=1)  # 3 batches
    assert (loader.state_dict()["epoch"], loader.state_dict()["position"]) == (0, 0)
    outer = iter(loader)
    next(outer), next(outer)
    state = loader.state_dict()
    assert json.loads(json.dumps(state)) == state
    assert (state["epoch"], state["position"]) == (0, 2) and state["epoch_rng_state"] is not None
    nested = iter(loader)  # while `outer` is open: a nested pass, which does not move the position
    next(nested)
    assert (loader.state_dict()["epoch"], loader.state_dict()["position"]) == (0, 2)
    assert loader.state_dict()["passes_started"] == 2
    nested.close()
    outer.close()  # broken off, as by Ctrl-C: still the pass in progress until the next iter()
    assert (loader.state_dict()["epoch"], loader.state_dict()["position"]) == (0, 2)
    following = iter(loader)
    next(following)
    assert (loader.state_dict()["epoch"], loader.state_dict()["position"]) == (2, 1)
    list(following)  # run to the end: no pass in progress; the next one will be pass 3
    state = loader.state_dict()
    assert (state["epoch"], state["position"], state["epoch_rng_state"]) == (3, 0, None)


def test_a_pass_broken_off_by_a_for_loop_is_closed_by_the_garbage_collector():
    dataset = GPTDataset(np.arange(50), max_length=4, stride=4)
    loader = DataLoader(dataset, batch_size=2, shuffle=True, seed=1)
    for _ in loader:
        break  # the iterator is dropped here
    for i, _ in enumerate(loader):  # so this pass is outermost, not nested
        if i == 1:
            break
    assert (loader.state_dict()["epoch"], loader.state_dict()["position"]) == (1, 2)


def test_loading_a_state_for_other_settings_or_garbage_is_a_clear_error():
    dataset = GPTDataset(np.arange(50), max_length=4, stride=4)
    state = DataLoader(dataset, batch_size=2, shuffle=True, seed=0).state_dict()
    with pytest.raises(ValueError, match="batch_size=2 but this loader has batch_size=3"):
        DataLoader(dataset, batch_size=3, shuffle=True).load_state_dict(state)
    other = GPTDataset(np.arange(60), max_length=4, stride=4)
    with pytest.raises(ValueError, match="num_windows"):
        DataLoader(other, batch_size=2, shuffle=True).load_state_dict(state)
    with pytest.raises(ValueError, match="not a data loader state"):
        DataLoader(dataset, batch_size=2, shuffle=True).load_state_dict({"epoch": 0})
    for bad in ["NoSuchGenerator", "seed"]:  # np.random.seed exists but is not a bit generator
        broken = {**state, "rng_state": {"bit_generator": bad}}
        with pytest.raises(ValueError, match="random-generator state"):
            DataLoader(dataset, batch_size=2, shuffle=True).load_state_dict(broken)
    with pytest.raises(ValueError, match="position 99"):
        DataLoader(dataset, batch_size=2, shuffle=True).load_state_dict(
            {**state, "position": 99, "epoch_rng_state": state["rng_state"]}
        )


# --------------------------------------------------------------------------------------------------
# create_dataloader and train_val_split
# --------------------------------------------------------------------------------------------------


class CharTokenizer:
    """One token per character (its code point); remembers what encode was asked to allow."""

    def __init__(self):
        self.allowed_special = None

    def encode(self, text, allowed_special=frozenset()):
        self.allowed_special = allowed_special
        return [ord(c) for c in text]


@given(st.text(st.characters(max_codepoint=1000), min_size=2, max_size=200), st.integers(1, 8), st.integers(1, 8))
def test_create_dataloader_windows_the_encoded_text(text, max_length, stride):
    tokenizer = CharTokenizer()
    if len(text) < max_length + 1:
        with pytest.raises(ValueError, match=f"has {len(text)} tokens but max_length={max_length}"):
            create_dataloader(text, tokenizer, max_length=max_length, stride=stride)
        return
    loader = create_dataloader(text, tokenizer, batch_size=1, max_length=max_length, stride=stride, shuffle=False)
    assert tokenizer.allowed_special == {"<|endoftext|>"}  # as the book encodes
    assert len(loader) == expected_num_windows(len(text), max_length, stride)
    for i, (x, y) in enumerate(loader):
        start = i * stride
        assert "".join(map(chr, x[0])) == text[start : start + max_length]
        assert "".join(map(chr, y[0])) == text[start + 1 : start + 1 + max_length]


def test_create_dataloader_defaults_are_the_books():
    loader = create_dataloader("x" * 1000, CharTokenizer())
    assert (loader.batch_size, loader.dataset.max_length, loader.dataset.stride) == (4, 256, 128)
    assert loader.shuffle and loader.drop_last
    assert as_lists(loader) == as_lists(create_dataloader("x" * 1000, CharTokenizer()))  # seeded


@given(st.text(max_size=300), st.floats(0.01, 0.99))
def test_train_val_split_cuts_by_characters(text, ratio):
    train, val = train_val_split(text, train_ratio=ratio)
    assert train + val == text
    assert len(train) == int(ratio * len(text))


@pytest.mark.parametrize("ratio", [0, 1, 1.5, -0.1, "0.9"])
def test_train_val_split_rejects_bad_ratios(ratio):
    with pytest.raises(ValueError, match="train_ratio"):
        train_val_split("some text", train_ratio=ratio)


# --------------------------------------------------------------------------------------------------
# The book's figures on the-verdict.txt with GPT-2's tokenizer (reference data)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpt2_and_verdict(reference_data):
    tokenizer_module = pytest.importorskip("gpt.tokenizer")
    tokenizer = tokenizer_module.BPETokenizer.from_gpt2_files(
        reference_data / "gpt2" / "encoder.json", reference_data / "gpt2" / "vocab.bpe"
    )
    text = (reference_data / "the-verdict.txt").read_text(encoding="utf-8")
    return tokenizer, text


def test_book_first_batch(gpt2_and_verdict):
    tokenizer, text = gpt2_and_verdict
    loader = create_dataloader(text, tokenizer, batch_size=1, max_length=4, stride=1, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs.tolist() == [[40, 367, 2885, 1464]]
    assert targets.tolist() == [[367, 2885, 1464, 1807]]


def test_book_train_and_validation_loaders(gpt2_and_verdict):
    tokenizer, text = gpt2_and_verdict
    train_text, val_text = train_val_split(text, train_ratio=0.90)
    common = dict(batch_size=2, max_length=256, stride=256)
    train_loader = create_dataloader(train_text, tokenizer, drop_last=True, shuffle=True, seed=123, **common)
    val_loader = create_dataloader(val_text, tokenizer, drop_last=False, shuffle=False, **common)
    train_batches, val_batches = list(train_loader), list(val_loader)
    assert len(train_loader) == len(train_batches) == 9
    assert len(val_loader) == len(val_batches) == 1
    assert sum(x.size for x, _ in train_batches) == 4608
    assert sum(x.size for x, _ in val_batches) == 512
    assert all(x.shape == y.shape == (2, 256) for x, y in train_batches + val_batches)


# --------------------------------------------------------------------------------------------------
# Compact streams: uint16/uint32 arrays and memmaps are used in place
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_a_memmap_of_compact_ids_is_used_in_place_and_batches_as_an_int64_copy_would(tmp_path, dtype):
    ids = np.random.default_rng(0).integers(0, 60000, size=500).astype(dtype)
    ids.tofile(tmp_path / "ids.bin")
    mapped = np.memmap(tmp_path / "ids.bin", dtype=dtype, mode="r")
    ds, reference = GPTDataset(mapped, 8, 5), GPTDataset(ids.astype(np.int64), 8, 5)
    assert np.shares_memory(ds.token_ids, mapped) and ds.token_ids.dtype == dtype     # neither copied nor widened
    assert len(ds) == len(reference)
    for a, b in zip(ds.get_batch([0, 7, len(ds) - 1]), reference.get_batch([0, 7, len(ds) - 1])):
        assert a.dtype == np.int64 and np.array_equal(a, b)
    for a, b in zip(ds[3], reference[3]):
        assert a.dtype == np.int64 and np.array_equal(a, b)


def test_a_compact_array_is_not_copied_and_the_callers_array_stays_writable():
    ids = np.arange(50, dtype=np.uint16)
    ds = GPTDataset(ids, 4, 4)
    assert np.shares_memory(ds.token_ids, ids) and not ds.token_ids.flags.writeable
    assert ids.flags.writeable


def test_a_shuffled_pass_visits_the_windows_in_the_order_of_rng_permutation():
    # the loader keeps its order as uint32; the order must still be Generator.permutation's
    ds = GPTDataset(np.arange(2000), 4, 3)
    loader = DataLoader(ds, batch_size=5, shuffle=True, drop_last=False, seed=11)
    rng = np.random.default_rng(11)
    for _ in range(2):
        expected = rng.permutation(len(ds))
        got = np.concatenate([inputs[:, 0] // 3 for inputs, _ in loader])
        assert np.array_equal(got, expected)


@given(st.integers(2, 400), st.integers(1, 500))
def test_spread_windows_span_the_dataset_evenly(n_windows, count):
    ds = GPTDataset(np.arange(n_windows * 4 + 1), max_length=4, stride=4)
    view = SpreadWindows(ds, count)
    idx = view.indices
    assert len(view) == len(idx) == min(count, n_windows)
    assert idx[0] == 0 and (len(idx) == 1 or idx[-1] == n_windows - 1)
    assert np.all(np.diff(idx) >= 1)                                        # distinct, in order
    if len(idx) > 2:
        gaps = np.diff(idx)
        assert gaps.max() - gaps.min() <= 1                                  # evenly spread
    x, y = view.get_batch([0, len(view) - 1])
    assert np.array_equal(x, ds.get_batch([idx[0], idx[-1]])[0]) and np.array_equal(view[len(view) - 1][1], y[1])
    batches = list(DataLoader(view, batch_size=3, shuffle=False, drop_last=False))
    assert np.array_equal(np.concatenate([b[0] for b in batches])[:, 0], idx * 4)
