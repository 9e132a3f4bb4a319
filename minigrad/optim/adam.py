"""``Adam`` and ``AdamW``: adaptive moment estimation, with L2 or decoupled weight decay.

The book trains with ``torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)``
(chapter 5). These classes apply PyTorch's update equations in the same order, so the same
gradients give the same parameters to float32 rounding. At step ``t`` (counted from 1), with
gradient ``g``, first moment ``m`` and second moment ``v`` (both start at 0)::

    p = p * (1 - lr * weight_decay)          # AdamW only: decoupled weight decay
    g = g + weight_decay * p                 # Adam only: L2 penalty folded into the gradient
    m = m + (1 - beta1) * (g - m)            # = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    step_size = lr / (1 - beta1 ** t)
    denom = sqrt(v) / sqrt(1 - beta2 ** t) + eps
    p = p - step_size * m / denom

Everything runs in place, in the parameter's dtype, one cache-sized chunk at a time; ``m`` and
``v`` are the only parameter-sized memory the optimizer adds.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from minigrad.optim.optimizer import Optimizer, chunked


class Adam(Optimizer):
    """Adam with L2 weight decay added to the gradient, as ``torch.optim.Adam``.

    Args:
        params: parameters or parameter groups (see :class:`Optimizer`).
        lr: the learning rate.
        betas: decay rates ``(beta1, beta2)`` of the first and second moment estimates.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 coefficient (AdamW applies it decoupled from the gradient instead).

    State per parameter: ``"step"`` (int, updates so far), ``"exp_avg"`` (m) and
    ``"exp_avg_sq"`` (v), arrays of the parameter's shape and dtype.
    """

    _decoupled_weight_decay = False
    _required_state = ("step", "exp_avg", "exp_avg_sq")

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)

    def _check_options(self, group: dict[str, Any]) -> None:
        super()._check_options(group)
        betas = group["betas"]
        if (not isinstance(betas, (tuple, list)) or len(betas) != 2
                or not all(isinstance(b, numbers.Real) and 0.0 <= b < 1.0 for b in betas)):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        eps = group["eps"]
        if not isinstance(eps, numbers.Real) or not eps >= 0.0:
            raise ValueError(f"eps must be a number >= 0, got {eps!r}")

    def _update_group(self, group: dict[str, Any]) -> None:
        # Python floats throughout: a NumPy float64 scalar would promote float32 arrays (NumPy 2).
        lr, eps, wd = float(group["lr"]), float(group["eps"]), float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        decay_factor = 1.0 - lr * wd  # AdamW
        for p, grad in self._params_with_grad(group):
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {
                    "step": 0,
                    "exp_avg": np.zeros(p.data.shape, dtype=p.data.dtype),
                    "exp_avg_sq": np.zeros(p.data.shape, dtype=p.data.dtype),
                }
            state["step"] += 1
            t = state["step"]
            step_size = lr / (1.0 - beta1 ** t)
            bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** t)

            for w, g, m, v, s, u in chunked(p.data, grad, state["exp_avg"], state["exp_avg_sq"], scratch=2):
                if wd != 0.0:
                    if self._decoupled_weight_decay:
                        w *= decay_factor                  # p * (1 - lr * wd)
                    else:
                        np.multiply(w, wd, out=u)
                        g = np.add(g, u, out=u)            # g + wd * p
                np.subtract(g, m, out=s)
                s *= 1.0 - beta1
                m += s                                     # m + (1 - beta1) * (g - m)
                np.multiply(g, 1.0 - beta2, out=s)
                s *= g
                v *= beta2
                v += s                                     # beta2 * v + (1 - beta2) * g * g
                np.sqrt(v, out=s)
                s /= bias_correction2_sqrt
                s += eps                                   # denom
                np.multiply(m, step_size, out=u)           # (g, kept in u, is no longer needed)
                np.divide(u, s, out=s)
                w -= s                                     # p - step_size * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``.

    Each step first shrinks the parameter, ``p *= 1 - lr * weight_decay``, then applies the Adam
    update to the unmodified gradient. Same arguments and state as :class:`Adam`; the default
    ``weight_decay`` is 0.01 (the book uses 0.1).
    """

    _decoupled_weight_decay = True

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
