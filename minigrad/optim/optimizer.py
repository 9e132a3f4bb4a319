"""``Optimizer``: the base class of SGD, Adam and AdamW (parameter groups, state, checkpoints).

An optimizer holds a list of *parameter groups*. Each group is a dict with the key ``"params"`` (a
list of parameters) and the group's options (``"lr"``, ``"weight_decay"``, ...); options a group does
not set come from the optimizer's defaults. The usual reason for two groups is to exempt biases and
LayerNorm weights from weight decay::

    decay    = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = AdamW([{"params": decay, "weight_decay": 0.1},
                 {"params": no_decay, "weight_decay": 0.0}], lr=4e-4)

Per-parameter state (moment estimates, step counts) lives in ``opt.state[param]``, a dict of NumPy
arrays and numbers. ``state_dict()`` turns it into plain data keyed by the parameter's position
(0, 1, 2, ... across all groups, as PyTorch does), so a checkpoint does not depend on object ids.

Every update works in place on ``param.data`` with NumPy ufuncs (``out=``) and touches a parameter
one cache-sized chunk at a time (:func:`chunked`): with GPT-2's 163M parameters this roughly halves
the time of an AdamW step compared with whole-array operations, and needs no parameter-sized
temporaries.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterator

import numpy as np

from minigrad.grad_mode import enable_grad
from minigrad.tensor import Tensor

#: Elements per chunk in :func:`chunked`: 64K float32 values (256 KiB) per array, so the arrays of
#: one update step (parameter, gradient, moments, scratch) stay in the CPU's L2 cache.
CHUNK_SIZE = 1 << 16


def chunked(*arrays: np.ndarray, scratch: int = 1) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield matching pieces of same-shaped arrays, followed by ``scratch`` work buffers.

    When every array is C-contiguous the pieces are 1-D views of at most ``CHUNK_SIZE`` elements, so
    in-place updates on a piece write straight into the arrays; otherwise the whole arrays come back
    in one piece. The scratch buffers have the piece's shape and the first array's dtype, and are
    reused from piece to piece (never assume they hold anything on entry).
    """
    first = arrays[0]
    if all(a.flags.c_contiguous for a in arrays):
        n = first.size
        buffers = [np.empty(min(n, CHUNK_SIZE), dtype=first.dtype) for _ in range(scratch)]
        flats = [a.reshape(-1) for a in arrays]  # views: the arrays are contiguous
        for start in range(0, n, CHUNK_SIZE):
            stop = min(start + CHUNK_SIZE, n)
            yield (*(f[start:stop] for f in flats), *(b[: stop - start] for b in buffers))
    else:
        yield (*arrays, *(np.empty(first.shape, dtype=first.dtype) for _ in range(scratch)))


def _as_param_list(params, where: str) -> list[Tensor]:
    """Turn a tensor or an iterable of tensors into a list, rejecting what an optimizer cannot update."""
    if isinstance(params, Tensor):
        return [params]
    if isinstance(params, (set, frozenset)):
        raise TypeError(f"{where}: parameters must be an ordered sequence (a list), not a set, "
                        "so that checkpoints map to the same parameters; use list(...)")
    if isinstance(params, dict):
        raise TypeError(f"{where}: got a dict; pass model.parameters() or a list of parameter groups")
    try:
        params = list(params)
    except TypeError:
        raise TypeError(f"{where}: parameters must be an iterable of tensors, "
                        f"not {type(params).__name__}") from None
    for i, p in enumerate(params):
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], Tensor):
            raise TypeError(f"{where}: item {i} is a (name, parameter) pair; pass model.parameters(), "
                            "not model.named_parameters()")
        if not isinstance(p, Tensor):
            raise TypeError(f"{where}: item {i} is a {type(p).__name__}, not a Tensor/Parameter")
        if not p.is_leaf:
            raise ValueError(f"{where}: item {i} is not a leaf tensor (it was computed by an "
                             "operation); optimize the parameters it was computed from instead")
        if p.dtype.kind != "f":
            raise TypeError(f"{where}: item {i} has dtype {p.dtype}; only floating-point tensors "
                            "can be optimized")
    return params


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and checkpointing.

    Args:
        params: an iterable of parameters (e.g. ``model.parameters()``), or an iterable of dicts,
            each with ``"params"`` and optional per-group options that override ``defaults``.
        defaults: the options a group gets when it does not set them (``{"lr": 1e-3, ...}``).

    Subclasses implement ``_update_group(group)`` (one update of every parameter in a group that
    has a gradient) and may override ``_check_options(group)`` to validate a group's options.
    """

    #: State keys every non-empty per-parameter state must have (checked by ``load_state_dict``).
    _required_state: tuple[str, ...] = ()

    def __init__(self, params, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}  # Tensor hashes by identity
        if isinstance(params, (Tensor, set, frozenset, dict)):
            params = _as_param_list(params, type(self).__name__)  # wraps a tensor; rejects the others
        try:
            groups = list(params)
        except TypeError:
            raise TypeError(f"{type(self).__name__}: params must be an iterable of tensors or of dicts, "
                            f"not {type(params).__name__}") from None
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list; "
                             "does the model have parameters with requires_grad=True?")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i} ({len(group['params'])} tensors)")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"

    # ------------------------------------------------------------------ groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (``{"params": [...], "lr": ..., ...}``) to be optimized.

        Options the group does not set are taken from the optimizer's defaults. Use this to start
        training parameters unfrozen mid-way (e.g. the LoRA layers of chapter 6 / appendix E).
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"a parameter group must be a dict with a 'params' key, "
                            f"not {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a parameter group needs a 'params' key holding its parameters")
        where = f"{type(self).__name__} parameter group {len(self.param_groups)}"
        group = dict(param_group)
        group["params"] = _as_param_list(group["params"], where)
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_options(group)

        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(group["params"]):
            if id(p) in seen:
                raise ValueError(f"{where}: item {i} appears more than once (in this group or "
                                 "another); each parameter may be in only one group, once")
            seen.add(id(p))
        self.param_groups.append(group)

    def _check_options(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an invalid option value in ``group`` (subclasses extend this)."""
        lr = group.get("lr")
        if not isinstance(lr, numbers.Real) or not lr >= 0.0:
            raise ValueError(f"learning rate must be a number >= 0, got lr={lr!r}")
        wd = group.get("weight_decay", 0.0)
        if not isinstance(wd, numbers.Real) or not wd >= 0.0:
            raise ValueError(f"weight_decay must be a number >= 0, got {wd!r}")

    # ------------------------------------------------------------------ the update
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters: to ``None`` (the default, frees memory) or to 0."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.fill(0)

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient, in place; return ``closure()`` if given.

        ``closure`` re-evaluates the model and returns the loss (only some optimizers need it); it
        is called with gradient recording on.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update_group(group)
        return loss

    def _update_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _update_group(group)")

    @staticmethod
    def _params_with_grad(group: dict[str, Any]) -> Iterator[tuple[Tensor, np.ndarray]]:
        """The (parameter, gradient) pairs of a group that an update should touch."""
        for p in group["params"]:
            if p.grad is None or not p.requires_grad:
                continue
            g = p.grad
            if not isinstance(g, np.ndarray):
                raise TypeError(f".grad must be a NumPy array, got {type(g).__name__}")
            if g.shape != p.data.shape or g.dtype != p.data.dtype:
                raise ValueError(f"a parameter of shape {p.data.shape} and dtype {p.data.dtype} has a "
                                 f"gradient of shape {g.shape} and dtype {g.dtype}; they must match")
            yield p, g

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state as plain data, for a checkpoint.

        Returns ``{"state": {index: {name: array or number}}, "param_groups": [options...]}``
        where ``index`` counts parameters across groups in order and each group's ``"params"`` is
        its list of indices. Arrays are copies: later steps do not change a saved state dict.
        """
        index_of: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            options = {k: v for k, v in group.items() if k != "params"}
            indices = []
            for p in group["params"]:
                index_of[id(p)] = len(index_of)
                indices.append(index_of[id(p)])
            options["params"] = indices
            groups.append(options)
        state = {
            index_of[id(p)]: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
            for p, s in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved, for an optimizer over the same parameters.

        The groups must match in number and size, and every saved array must have its parameter's
        shape; otherwise ValueError says what differs and nothing is changed. Group options (lr,
        weight_decay, ...) are restored too. Arrays are copied and cast to the parameter's dtype.
        """
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("an optimizer state dict must be a dict with 'state' and 'param_groups' "
                             "keys, as returned by Optimizer.state_dict()")
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"the state dict has {len(saved_groups)} parameter group(s) but this optimizer "
                             f"has {len(self.param_groups)}; build the optimizer with the same groups")
        param_of: dict[int, Tensor] = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            saved_params = list(saved.get("params", ()))
            if len(saved_params) != len(group["params"]):
                raise ValueError(f"parameter group {i} has {len(saved_params)} parameter(s) in the state "
                                 f"dict but {len(group['params'])} in this optimizer; build the "
                                 "optimizer over the same model and groups")
            for index, p in zip(saved_params, group["params"]):
                param_of[int(index)] = p

        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, saved in dict(state_dict["state"]).items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"state dict key {key!r} is not a parameter index") from None
            if index not in param_of:
                raise ValueError(f"the state dict has state for parameter {index}, which is in none of "
                                 "its parameter groups")
            p = param_of[index]
            missing = [k for k in self._required_state if k not in saved]
            if missing:
                raise ValueError(f"the state of parameter {index} lacks {missing}; was it saved by "
                                 f"a different optimizer than {type(self).__name__}?")
            new_state[p] = {name: self._load_value(value, p, index, name) for name, value in saved.items()}

        for saved, group in zip(saved_groups, self.param_groups):
            options = {k: v for k, v in saved.items() if k != "params"}
            if isinstance(options.get("betas"), list):  # a JSON round trip turns tuples into lists
                options["betas"] = tuple(options["betas"])
            self._check_options({**group, **options})
            group.update(options)
        self.state = new_state

    @staticmethod
    def _load_value(value, p: Tensor, index: int, name: str):
        """A saved state entry as the optimizer keeps it: arrays copied in ``p``'s dtype, numbers as is."""
        if isinstance(value, (np.ndarray, np.generic)) and np.ndim(value) == 0:
            return value.item()  # a step count saved as a 0-d array
        if isinstance(value, np.ndarray):
            if value.shape != p.data.shape:
                raise ValueError(f"state {name!r} of parameter {index} has shape {value.shape} but the "
                                 f"parameter has shape {p.data.shape}; the model does not match the "
                                 "checkpoint")
            return np.array(value, dtype=p.data.dtype, order="C", copy=True)
        return value
