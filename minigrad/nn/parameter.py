"""``Parameter``: a leaf tensor that a Module registers as learnable."""
from __future__ import annotations

from minigrad.tensor import Tensor


class Parameter(Tensor):
    """A tensor that requires grad by default and is found by ``Module.parameters()``."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, name: str | None = None):
        super().__init__(data, requires_grad=requires_grad, name=name)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
