"""Seeding. ``manual_seed(s)`` resets the generator behind ``randn``/``rand``, parameter
initialisation and new Dropout layers, so a run is reproducible from one number."""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)
_seed_sequence = np.random.SeedSequence(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Seed minigrad's default generator (and the source of new Dropout generators); returns it."""
    global _generator, _seed_sequence
    _seed_sequence = np.random.SeedSequence(seed)
    _generator = np.random.default_rng(_seed_sequence.spawn(1)[0])
    return _generator


def default_generator() -> np.random.Generator:
    """The generator used when a function is not given one explicitly."""
    return _generator


def new_generator() -> np.random.Generator:
    """A fresh, independent generator derived from the last ``manual_seed`` (used by each Dropout)."""
    return np.random.default_rng(_seed_sequence.spawn(1)[0])
