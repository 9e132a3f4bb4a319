"""Kept so that ``from gpt.rope import RotaryEmbedding`` still works: RoPE lives in :mod:`gpt.positions`."""
from gpt.positions import RotaryEmbedding  # noqa: F401
