"""``SGD``: stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

The update is PyTorch's ``torch.optim.SGD``, step for step (``g`` is the gradient, ``b`` the
momentum buffer, ``mu`` the momentum, ``tau`` the dampening)::

    g = g + weight_decay * p                  # L2 penalty folded into the gradient
    b = g                    on the first step  # (no dampening on the first step)
    b = mu * b + (1 - tau) * g  afterwards
    g = g + mu * b  if nesterov  else  b
    p = p - lr * g
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from minigrad.optim.optimizer import Optimizer, chunked


class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD``.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: the learning rate.
        momentum: momentum factor ``mu`` (0 disables momentum and its state).
        dampening: ``tau``, scales the new gradient into the momentum buffer by ``1 - tau``.
        weight_decay: L2 penalty coefficient, added to the gradient as ``weight_decay * p``.
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).

    State per parameter (only with momentum): ``"momentum_buffer"``, an array of the parameter's
    shape and dtype.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        momentum, dampening = group["momentum"], group["dampening"]
        if not isinstance(momentum, numbers.Real) or not momentum >= 0.0:
            raise ValueError(f"momentum must be a number >= 0, got {momentum!r}")
        if not isinstance(dampening, numbers.Real):
            raise ValueError(f"dampening must be a number, got {dampening!r}")
        if group["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum}, dampening={dampening}")

    def _update_group(self, group: dict[str, Any]) -> None:
        # Python floats: a NumPy float64 scalar would promote the float32 arrays (NumPy 2).
        lr, mu = float(group["lr"]), float(group["momentum"])
        wd, keep = float(group["weight_decay"]), 1.0 - float(group["dampening"])
        nesterov = bool(group["nesterov"])
        for p, grad in self._params_with_grad(group):
            if mu == 0.0:
                for w, g, s in chunked(p.data, grad):
                    if wd != 0.0:
                        np.multiply(w, wd, out=s)
                        g = np.add(g, s, out=s)           # g + wd * p
                    np.multiply(g, lr, out=s)
                    w -= s                                # p - lr * g
                continue

            state = self.state.setdefault(p, {})
            first = "momentum_buffer" not in state
            if first:
                state["momentum_buffer"] = np.empty(p.data.shape, dtype=p.data.dtype)
            for w, g, b, s, t in chunked(p.data, grad, state["momentum_buffer"], scratch=2):
                if wd != 0.0:
                    np.multiply(w, wd, out=s)
                    g = np.add(g, s, out=s)               # g + wd * p
                if first:
                    b[...] = g                            # b = g
                else:
                    b *= mu
                    if keep != 1.0:
                        np.multiply(g, keep, out=t)
                        b += t                            # b = mu * b + (1 - tau) * g
                    else:
                        b += g
                if nesterov:
                    np.multiply(b, mu, out=t)
                    np.add(g, t, out=t)                   # g + mu * b
                    np.multiply(t, lr, out=t)
                else:
                    np.multiply(b, lr, out=t)
                w -= t                                    # p - lr * (update)
