"""Learning-rate schedules: linear warmup + cosine decay (the book's appendix D), and PyTorch's basics.

Two ways to use the book's schedule:

* the plain function, exactly as appendix D writes its training loop::

      for global_step, (x, y) in enumerate(batches):
          lr = warmup_cosine_lr(global_step, peak_lr=1e-3, total_steps=n, warmup_steps=20,
                                initial_lr=1e-5, min_lr=1e-5)
          for group in optimizer.param_groups:
              group["lr"] = lr
          ...

* or a scheduler object that does the assignment and can be checkpointed::

      scheduler = WarmupCosine(optimizer, warmup_steps=20, total_steps=n, initial_lr=1e-5, min_lr=1e-5)
      for x, y in batches:
          ...; optimizer.step(); scheduler.step()

Schedulers follow PyTorch's convention: creating one sets the lr for step 0, and each ``step()``
(called after ``optimizer.step()``) moves to the next step. Every schedule here is a closed-form
function of the step count, so a resumed run gets exactly the lrs of an uninterrupted one.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from minigrad.optim.optimizer import Optimizer


def _check_steps(warmup_steps: int, total_steps: int) -> None:
    if warmup_steps < 0 or total_steps < 0 or warmup_steps > total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps, got warmup_steps={warmup_steps}, "
                         f"total_steps={total_steps}")


def warmup_cosine_lr(step: int, *, peak_lr: float, total_steps: int, warmup_steps: int,
                     initial_lr: float = 0.0, min_lr: float = 0.0) -> float:
    """The learning rate at ``step`` (0-based) of linear warmup followed by cosine decay.

    * ``step < warmup_steps``: rises linearly, ``initial_lr + step * (peak_lr - initial_lr) / warmup_steps``
      (``initial_lr`` at step 0, ``peak_lr`` at ``step == warmup_steps``);
    * afterwards: ``min_lr + (peak_lr - min_lr) * 0.5 * (1 + cos(pi * progress))`` with
      ``progress = (step - warmup_steps) / (total_steps - warmup_steps)``, which falls from
      ``peak_lr`` to ``min_lr`` at ``step == total_steps``;
    * past ``total_steps`` it stays at ``min_lr`` (the book's formula would rise again).
    """
    _check_steps(warmup_steps, total_steps)
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        lr_increment = (peak_lr - initial_lr) / warmup_steps
        return float(initial_lr + step * lr_increment)
    if step >= total_steps:
        return float(min_lr)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return float(min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class LRScheduler:
    """Base class: sets each parameter group's ``"lr"`` from a function of the step count.

    Args:
        optimizer: the optimizer whose groups' learning rates are set.
        last_epoch: the index of the last step taken; -1 (the default) starts a new schedule.
            Each group's lr when the schedule starts is kept as ``group["initial_lr"]`` and is
            the schedule's base (peak) lr for that group (``self.base_lrs``).

    Subclasses implement ``get_lr()``: the list of lrs, one per group, at step ``self.last_epoch``.
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__} needs a minigrad Optimizer, "
                            f"not {type(optimizer).__name__}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise ValueError(f"resuming a schedule at last_epoch={last_epoch} needs 'initial_lr' in "
                                 f"parameter group {i}; load the optimizer's state dict first")
        self.base_lrs = [float(group["initial_lr"]) for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def get_lr(self) -> list[float]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr()")

    def step(self) -> None:
        """Advance to the next step and set every group's lr for it."""
        self.last_epoch += 1
        self._apply(self.get_lr())

    def _apply(self, lrs: Sequence[float]) -> None:
        lrs = [float(lr) for lr in lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def get_last_lr(self) -> list[float]:
        """The lrs (one per parameter group) set by the last ``step()`` or by the constructor."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """The schedule's position and settings as plain data (without the optimizer or functions)."""
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()
                if k != "optimizer" and not callable(v) and k != "lr_lambdas"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` and set the optimizer's lrs to the restored step's values."""
        if "last_epoch" not in state_dict:
            raise ValueError("a scheduler state dict must have 'last_epoch'; pass the result of "
                             "scheduler.state_dict()")
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "optimizer"})
        self._apply(self.get_lr())


class LambdaLR(LRScheduler):
    """lr = base_lr * ``lr_lambda(step)``; ``lr_lambda`` may be one function or one per group."""

    def __init__(self, optimizer: Optimizer,
                 lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]], last_epoch: int = -1):
        n = len(optimizer.param_groups)
        if callable(lr_lambda):
            self.lr_lambdas = [lr_lambda] * n
        else:
            self.lr_lambdas = list(lr_lambda)
            if len(self.lr_lambdas) != n:
                raise ValueError(f"got {len(self.lr_lambdas)} lr_lambda functions for {n} parameter groups")
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * f(self.last_epoch) for base, f in zip(self.base_lrs, self.lr_lambdas)]


class StepLR(LRScheduler):
    """lr = base_lr * ``gamma ** (step // step_size)``: multiply by ``gamma`` every ``step_size`` steps."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        if step_size < 1:
            raise ValueError(f"step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [base * self.gamma ** (self.last_epoch // self.step_size) for base in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * step / T_max)) / 2, PyTorch's closed form.

    Like PyTorch's, the curve continues past ``T_max`` (rising again); use :class:`WarmupCosine`
    with ``warmup_steps=0`` for a decay that stays at its minimum.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if T_max < 1:
            raise ValueError(f"T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        c = 0.5 * (1.0 + math.cos(math.pi * self.last_epoch / self.T_max))
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


class WarmupCosine(LRScheduler):
    """Linear warmup from ``initial_lr`` to the peak lr, then cosine decay to ``min_lr`` (appendix D).

    The peak lr of each parameter group is the lr the group had when the scheduler was created, so
    construct the optimizer with ``lr=peak_lr``. ``initial_lr`` and ``min_lr`` are absolute values,
    the same for every group. See :func:`warmup_cosine_lr` for the formula.
    """

    def __init__(self, optimizer: Optimizer, *, warmup_steps: int, total_steps: int,
                 initial_lr: float = 0.0, min_lr: float = 0.0, last_epoch: int = -1):
        _check_steps(warmup_steps, total_steps)     # before the base class touches the optimizer
        if initial_lr < 0 or min_lr < 0:
            raise ValueError(f"initial_lr and min_lr must be >= 0, got {initial_lr} and {min_lr}")
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        self.initial_lr, self.min_lr = float(initial_lr), float(min_lr)
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [warmup_cosine_lr(self.last_epoch, peak_lr=peak, total_steps=self.total_steps,
                                 warmup_steps=self.warmup_steps, initial_lr=self.initial_lr,
                                 min_lr=self.min_lr) for peak in self.base_lrs]
