"""Input/target windows for next-token prediction (chapter 2, section 2.6; used again in chapter 5).

A language model learns to predict every next token of a text. The book cuts the token stream into
windows of ``max_length`` tokens that start ``stride`` tokens apart; the target of each window is
the same window shifted one token to the right::

    token stream   40  367 2885 1464 1807 3619  402  271 ...
    window 0       40  367 2885 1464                      (stride 1, max_length 4)
    target 0           367 2885 1464 1807
    window 1           367 2885 1464 1807
    target 1               2885 1464 1807 3619

``GPTDataset`` is the book's ``GPTDatasetV1``, ``DataLoader`` stands in for PyTorch's
``torch.utils.data.DataLoader`` (batching, shuffling, ``drop_last``), and ``create_dataloader`` is the
book's ``create_dataloader_v1`` without worker processes. Beyond the book: the loader can save and
restore its position (``state_dict`` / ``load_state_dict``) so that a resumed training run sees exactly
the batches an uninterrupted one would have seen.
"""
from __future__ import annotations

import copy
import numbers
import weakref
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["GPTDataset", "SpreadWindows", "DataLoader", "create_dataloader", "train_val_split", "GPTDatasetV1",
           "create_dataloader_v1"]

ENDOFTEXT = "<|endoftext|>"


def _positive_int(name: str, value: Any) -> int:
    """``value`` as an int, or a ValueError saying that ``name`` must be a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------------------------------
# The dataset: sliding windows over one token stream
# --------------------------------------------------------------------------------------------------


class GPTDataset:
    """Sliding windows over a token stream: the book's ``GPTDatasetV1``, taking token ids.

    Window ``i`` starts at ``i * stride``; windows are made while a full window plus its one-token
    shifted target fits, i.e. for every start in ``range(0, len(token_ids) - max_length, stride)``.
    With ``stride == max_length`` the windows tile the stream without overlap; with a smaller stride
    they overlap (the book's ``stride=1`` example).

    The stream is stored once as a read-only int64 array; windows are views into it (``__getitem__``)
    or gathered with one fancy-indexing operation per batch (``get_batch``), never copied into
    per-window Python lists as the book does.

    Beyond the book: an array of unsigned integers of at most 32 bits (``uint16``/``uint32``, e.g. an
    ``np.memmap`` of token files from ``python -m gpt prepare``) is used as it is, neither copied nor
    scanned (no id can be negative; that ids fit the vocabulary is the caller's business), so a
    stream larger than memory stays on disk: only the windows of a batch are read, into int64.
    Such an array must not change while the dataset uses it.

    Args:
        token_ids: the token stream, a 1-D sequence of non-negative integers [n_tokens].
        max_length: tokens per window (the model's context length during training).
        stride: distance between the starts of consecutive windows.
    """

    def __init__(self, token_ids: Sequence[int] | np.ndarray, max_length: int, stride: int):
        self.max_length = _positive_int("max_length", max_length)
        self.stride = _positive_int("stride", stride)
        compact = isinstance(token_ids, np.ndarray) and token_ids.dtype.kind == "u" and token_ids.dtype.itemsize <= 4
        ids = token_ids.view(np.ndarray) if compact else np.asarray(token_ids)  # a memmap stays mapped
        if ids.size == 0:
            ids = ids.astype(np.int64)
        if ids.ndim != 1:
            raise ValueError(f"token_ids must be a 1-D sequence of token ids, got shape {ids.shape}")
        if ids.dtype.kind not in "iu":
            raise ValueError(f"token_ids must be integers, got dtype {ids.dtype}")
        if not compact and ids.size and ids.min() < 0:
            raise ValueError(f"token_ids must be non-negative, found {ids.min()}")
        needed = self.max_length + 1
        if ids.size < needed:
            raise ValueError(
                f"the text has {ids.size} tokens but max_length={self.max_length} needs at least "
                f"{needed} (one window plus its shifted target); use a longer text or a smaller "
                f"max_length"
            )
        if compact:  # uint16/uint32 (a memmap: a file) used in place, read-only through this view
            self.token_ids = ids  # [n_tokens], a view of its own: the flag below leaves the caller's alone
        else:  # an own copy (the caller may keep changing theirs), read-only so that views stay honest
            self.token_ids = np.array(ids, dtype=np.int64)  # [n_tokens]
        self.token_ids.flags.writeable = False
        self._num_windows = len(range(0, ids.size - self.max_length, self.stride))
        self._offsets = np.arange(self.max_length, dtype=np.int64)  # [max_length]

    def __len__(self) -> int:
        """Number of windows: ``len(range(0, n_tokens - max_length, stride))``."""
        return self._num_windows

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``idx`` and its target: two read-only int64 views of shape [max_length] (int64
        copies when the stream is stored as uint16/uint32)."""
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise TypeError(f"GPTDataset indices must be integers, got {type(idx).__name__}")
        n = self._num_windows
        if not -n <= idx < n:
            raise IndexError(f"window index {idx} is out of range for {n} windows")
        start = (int(idx) % n) * self.stride
        end = start + self.max_length
        ids = self.token_ids
        if ids.dtype != np.int64:
            return ids[start:end].astype(np.int64), ids[start + 1 : end + 1].astype(np.int64)
        return ids[start:end], ids[start + 1 : end + 1]

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The windows ``indices`` stacked: inputs and targets, int64 arrays [batch, max_length].

        One gather per batch: ``positions[b, t] = indices[b] * stride + t``.
        """
        idx = np.asarray(indices, dtype=np.int64)  # [batch]
        if idx.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {idx.shape}")
        if idx.size and (idx.min() < 0 or idx.max() >= self._num_windows):
            raise IndexError(f"window indices must lie in [0, {self._num_windows}), got {idx}")
        positions = idx[:, None] * self.stride + self._offsets  # [batch, max_length]
        return (self.token_ids[positions].astype(np.int64, copy=False),
                self.token_ids[positions + 1].astype(np.int64, copy=False))


class SpreadWindows:
    """``count`` windows of a dataset spread evenly over it, first to last (beyond the book).

    An evaluation that reads a few batches of an unshuffled loader sees only the start of the
    stream: for token files of a large corpus (``python -m gpt prepare``), one spot of ``val.bin``.
    This view picks windows ``round(linspace(0, n - 1, count))`` instead (all of them when
    ``count >= n``): the same ones every time, so evaluations compare and a resumed run stays
    bit-exact, and it costs only the ``count`` indices [count].
    """

    def __init__(self, dataset: GPTDataset, count: int):
        self.dataset = dataset
        n = len(dataset)
        count = min(_positive_int("count", count), n)
        self.indices = np.unique(np.floor(np.linspace(0, n - 1, count) + 0.5).astype(np.int64))  # [count]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, idx: int) -> tuple[np.ndarray, np.ndarray]:
        return self.dataset[int(self.indices[idx])]

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The windows ``indices`` (of this view) stacked: inputs and targets [batch, max_length]."""
        return self.dataset.get_batch(self.indices[np.asarray(indices, dtype=np.int64)])


# --------------------------------------------------------------------------------------------------
# The loader: batches, shuffling, and a position that survives a checkpoint
# --------------------------------------------------------------------------------------------------


class _Pass:
    """Bookkeeping for one pass over the data (one ``iter()``): where it is and how it was shuffled."""

    __slots__ = ("epoch", "start_state", "position", "finished", "closed")

    def __init__(self, epoch: int, start_state: dict, position: int = 0):
        self.epoch = epoch  # which pass this is: the number of passes started before it
        self.start_state = start_state  # the generator's state just before this pass drew its order
        self.position = position  # batches already handed out
        self.finished = False  # ran to the end (StopIteration)
        self.closed = False  # its iterator is exhausted, closed or garbage-collected


class DataLoader:
    """Batches from a dataset, optionally shuffled: a small stand-in for PyTorch's ``DataLoader``.

    Iterating yields ``(inputs, targets)`` int64 arrays of shape [batch_size, max_length] (the last
    batch is smaller when ``drop_last=False`` and the windows do not divide evenly). Every ``iter()``
    is one pass ("epoch") and, with ``shuffle=True``, draws a fresh permutation of the windows from the
    loader's own ``np.random.Generator`` (seeded by ``seed``), so the same seed gives the same order
    pass after pass, independently of NumPy's global random state.

    Resuming (beyond the book): ``state_dict()`` records the generator, how many passes have started,
    and how far the pass in progress has got; a loader of the same data given that state with
    ``load_state_dict()`` continues with exactly the batches the original would have produced: its
    next ``iter()`` finishes the interrupted pass, and later passes shuffle identically.

    Which pass is "in progress" when a training loop also evaluates on a few batches of the same
    loader (the book's ``evaluate_model`` does, in a nested loop that breaks off)? The loader follows
    the outermost pass: an ``iter()`` while another pass's iterator is still open is a nested pass
    and leaves the position alone. The outermost pass stays the pass in progress until it runs to the
    end or a later outermost ``iter()`` replaces it, even once its iterator is gone, so a checkpoint
    taken after Ctrl-C broke the training loop still records where it stopped. (The flip side: a
    few batches read outside any training loop, say an evaluation between epochs, count as the pass
    in progress until the next ``iter()``; save checkpoints from inside the training loop.) An
    iterator is open until it is exhausted, closed (``close()``) or garbage-collected, which CPython
    does as soon as a ``for`` loop breaks off.

    Args:
        dataset: anything with ``__len__`` and ``__getitem__``; a ``get_batch(indices)`` method, as
            ``GPTDataset`` has, is used when present to gather a whole batch at once.
        batch_size: windows per batch.
        shuffle: visit the windows in a new random order on every pass.
        drop_last: drop the final batch of a pass if it has fewer than ``batch_size`` windows.
        seed: seed of the loader's generator (None: fresh entropy from the OS).
        collate_fn: optional function turning a list of dataset items into a batch (for datasets
            whose items are not pairs of equal-length arrays, e.g. chapter 7's instruction data).
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = True,
        seed: int | None = None,
        collate_fn: Callable[[list], Any] | None = None,
    ):
        self.dataset = dataset
        self.batch_size = _positive_int("batch_size", batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self._rng = np.random.default_rng(seed)
        self._passes_started = 0
        self._current: _Pass | None = None  # the outermost pass: the one state_dict() describes
        self._resume: _Pass | None = None  # set by load_state_dict: the pass the next iter() finishes

    def __len__(self) -> int:
        """Batches per pass."""
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    # -- iteration ---------------------------------------------------------------------------------

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        """The order of the windows for one pass [n_windows]; draws from ``rng`` only when shuffling.

        uint32 while the windows fit (half the memory of int64: a corpus of a billion tokens has
        tens of millions of windows); shuffling it in place draws exactly what ``rng.permutation(n)``
        draws and gives the same order.
        """
        n = len(self.dataset)
        order = np.arange(n, dtype=np.uint32 if n <= np.iinfo(np.uint32).max else np.int64)
        if self.shuffle:
            rng.shuffle(order)
        return order

    def _fetch(self, indices: np.ndarray) -> Any:
        """One batch made of the dataset items ``indices``."""
        if self.collate_fn is not None:
            return self.collate_fn([self.dataset[int(i)] for i in indices])
        if hasattr(self.dataset, "get_batch"):
            return self.dataset.get_batch(indices)
        items = [self.dataset[int(i)] for i in indices]
        return tuple(np.stack(field) for field in zip(*items))

    def __iter__(self) -> "_LoaderIterator":
        if self._resume is not None:
            # Finish the pass that was in progress when the state was saved: rebuild its order from
            # the generator state it started with, leaving the loader's generator where it was.
            p, self._resume = self._resume, None
            order = self._order(np.random.Generator(_bit_generator(p.start_state)))
            self._current = p
        else:
            p = _Pass(self._passes_started, self._rng.bit_generator.state)
            self._passes_started += 1
            order = self._order(self._rng)
            if self._current is None or self._current.closed:
                self._current = p  # outermost; otherwise nested inside the current pass
        it = _LoaderIterator(self, p, order)
        weakref.finalize(it, _close, p)  # runs when the iterator is garbage-collected
        return it

    # -- checkpointing -----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The loader's position, as plain (JSON-serializable) dicts and ints.

        Keys: ``rng_state`` (the generator now), ``passes_started``, and for the pass in progress (the
        outermost one, see the class docstring; the next pass if none is) ``epoch`` (its index),
        ``position`` (batches already yielded) and ``epoch_rng_state`` (the generator when that pass
        drew its order; None when no pass is in progress). ``num_windows``, ``batch_size``,
        ``shuffle`` and ``drop_last`` are recorded so that a state cannot be loaded into a loader
        over different data.

        ``epoch`` counts every ``iter()``: when a training loop also evaluates on this loader, it
        runs ahead of the loop's own epoch count, so a trainer should keep that count itself.
        """
        current = self._resume if self._resume is not None else self._current
        if current is not None and current.finished:
            current = None  # that pass is over: the next iter() starts a new one
        return {
            "epoch": current.epoch if current is not None else self._passes_started,
            "position": current.position if current is not None else 0,
            "epoch_rng_state": copy.deepcopy(current.start_state) if current is not None else None,
            "rng_state": self._rng.bit_generator.state,
            "passes_started": self._passes_started,
            "num_windows": len(self.dataset),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (from ``state_dict()``); the next ``iter()`` resumes that pass.

        Iterators already taken from this loader are detached: they no longer move its position.
        """
        try:
            expected = {
                "num_windows": len(self.dataset),
                "batch_size": self.batch_size,
                "shuffle": self.shuffle,
                "drop_last": self.drop_last,
            }
            for key, value in expected.items():
                if state[key] != value:
                    raise ValueError(
                        f"the saved data loader state has {key}={state[key]!r} but this loader has "
                        f"{key}={value!r}; resume with the same data and settings"
                    )
            epoch, position = int(state["epoch"]), int(state["position"])
            passes_started = int(state["passes_started"])
            rng = np.random.Generator(_bit_generator(state["rng_state"]))
            resume = None
            if state["epoch_rng_state"] is not None:
                if not 0 <= position <= len(self):
                    raise ValueError(f"the saved data loader state has position {position} but a pass here "
                                     f"has {len(self)} batches; resume with the same data and settings")
                _bit_generator(state["epoch_rng_state"])  # validate now rather than at iter()
                resume = _Pass(epoch, copy.deepcopy(state["epoch_rng_state"]), position)
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a data loader state (missing or malformed {err}); pass the dict "
                             "that DataLoader.state_dict() returned") from None
        self._rng = rng
        self._passes_started = passes_started
        self._current = None
        self._resume = resume


def _bit_generator(state: dict) -> np.random.BitGenerator:
    """A bit generator restored from ``state`` (a ``BitGenerator.state`` dict)."""
    try:
        kind = getattr(np.random, state["bit_generator"], None)
        if not (isinstance(kind, type) and issubclass(kind, np.random.BitGenerator)):
            raise ValueError(f"unknown bit generator {state['bit_generator']!r}")
        bit_generator = kind()
        bit_generator.state = state
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"the saved random-generator state is not valid ({err})") from None
    return bit_generator


class _LoaderIterator:
    """One pass of a ``DataLoader``: yields its batches from ``position`` on, recording progress."""

    def __init__(self, loader: DataLoader, p: _Pass, order: np.ndarray):
        self._loader, self._pass, self._order = loader, p, order
        self._num_batches = len(loader)

    def __iter__(self) -> "_LoaderIterator":
        return self

    def __next__(self) -> Any:
        p, size = self._pass, self._loader.batch_size
        if p.position >= self._num_batches:
            p.finished = True
            self.close()
            raise StopIteration
        indices = self._order[p.position * size : (p.position + 1) * size]  # [<= batch_size]
        batch = self._loader._fetch(indices)
        p.position += 1  # a batch handed out counts as consumed
        return batch

    def close(self) -> None:
        """Stop reading this pass: a later ``iter()`` is then an outermost pass, not a nested one."""
        _close(self._pass)


def _close(p: _Pass) -> None:
    p.closed = True


# --------------------------------------------------------------------------------------------------
# The book's helpers
# --------------------------------------------------------------------------------------------------


def first_batches(data_loader, num_batches: int | None = None):
    """The first ``num_batches`` batches of ``data_loader`` (all by default), never drawing one more;
    the loader's iterator is closed when they are used up or the loop is left early."""
    n = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
    batches = iter(data_loader)
    try:
        for _, batch in zip(range(n), batches):      # range first: zip stops before drawing batch n + 1
            yield batch
    finally:
        getattr(batches, "close", lambda: None)()


def create_dataloader(
    text: str,
    tokenizer: Any,
    batch_size: int = 4,
    max_length: int = 256,
    stride: int = 128,
    shuffle: bool = True,
    drop_last: bool = True,
    seed: int | None = 123,
) -> DataLoader:
    """The book's ``create_dataloader_v1`` without worker processes: tokenize, window, batch.

    ``tokenizer`` is anything with ``encode(text, allowed_special=...)`` (GPT-2's BPE or one trained
    by this project); ``<|endoftext|>`` in the text is encoded as the special token, as in the book.
    Yields ``(inputs, targets)`` int64 arrays [batch_size, max_length].
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    token_ids = tokenizer.encode(text, allowed_special={ENDOFTEXT})
    dataset = GPTDataset(token_ids, max_length=max_length, stride=stride)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed)


def train_val_split(text: str, train_ratio: float = 0.9) -> tuple[str, str]:
    """Split a text by characters as the book does: the first ``train_ratio`` for training.

    ``split_idx = int(train_ratio * len(text))``; returns ``(text[:split_idx], text[split_idx:])``.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    if isinstance(train_ratio, bool) or not isinstance(train_ratio, numbers.Real) or not 0 < train_ratio < 1:
        raise ValueError(f"train_ratio must be a number strictly between 0 and 1, got {train_ratio!r}")
    split_idx = int(train_ratio * len(text))
    return text[:split_idx], text[split_idx:]


# The book's names for the same things (chapter 2: GPTDatasetV1, create_dataloader_v1).
GPTDatasetV1 = GPTDataset
create_dataloader_v1 = create_dataloader
