"""``minigrad.optim``: optimizers, gradient clipping and learning-rate schedules.

    from minigrad.optim import AdamW, WarmupCosine, clip_grad_norm_
    opt = AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)   # the book's chapter 5 settings
    loss.backward()
    clip_grad_norm_(model.parameters(), max_norm=1.0)
    opt.step()
    opt.zero_grad()

The update equations are PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``), so the same gradients
give the same parameters to float32 rounding; every update runs in place in the parameter's dtype.
"""
from minigrad.optim.adam import Adam, AdamW
from minigrad.optim.clip import clip_grad_norm_
from minigrad.optim.lr_scheduler import (
    CosineAnnealingLR,
    LambdaLR,
    LRScheduler,
    StepLR,
    WarmupCosine,
    warmup_cosine_lr,
)
from minigrad.optim.optimizer import Optimizer
from minigrad.optim.sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_",
    "LRScheduler", "LambdaLR", "StepLR", "CosineAnnealingLR", "WarmupCosine", "warmup_cosine_lr",
]
