"""Chapter 5 and appendix D: training the GPT.

The book's functions, without the ``device`` argument:

* :func:`calc_loss_batch`, :func:`calc_loss_loader`: mean cross-entropy of next-token predictions
  (``calc_loss_loader`` and ``evaluate_model`` take another ``loss_batch`` too: chapter 6's
  classifier uses them with its last-token loss).
* :func:`evaluate_model`, :func:`generate_and_print_sample`: what the loop reports as it goes.
* :func:`train_model_simple`: the chapter-5 loop (AdamW step per batch, evaluate every
  ``eval_freq`` steps), returning ``(train_losses, val_losses, track_tokens_seen)``.
* :func:`train_model`: appendix D's loop (linear warmup, cosine decay, gradient clipping after
  warmup), also returning the learning rates.

And what a long run needs: :class:`Trainer`, the same appendix-D loop with a state that can be
checkpointed and resumed bit for bit (``state_dict`` / ``load_state_dict``), a clean stop between
two steps when asked (Ctrl-C), and a :class:`NonFiniteLossError` instead of training on NaNs.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.optim import clip_grad_norm_, warmup_cosine_lr

from gpt.data import first_batches
from gpt.generate import generate_text_simple, text_to_token_ids, token_ids_to_text


def calc_loss_batch(input_batch, target_batch, model):
    """Mean cross-entropy of ``model``'s next-token logits. inputs, targets: (b, T) int arrays.

    A model that sets ``aux_loss`` in a training forward pass (the mixture-of-experts router's
    load-balancing loss, already weighted by its coefficient) has it added (beyond the book)."""
    logits = model(input_batch)                                  # (b, T, vocab)
    loss = F.cross_entropy(logits.flatten(0, 1), np.asarray(target_batch).reshape(-1))
    aux = getattr(model, "aux_loss", None)
    return loss if aux is None else loss + aux


def calc_loss_loader(data_loader, model, num_batches: int | None = None, loss_batch=None) -> float:
    """Mean of ``loss_batch(inputs, targets, model)`` (default :func:`calc_loss_batch`, next-token
    cross-entropy) over the first ``num_batches`` batches (all by default); NaN when there are
    none, as in the book."""
    loss_batch = loss_batch or calc_loss_batch
    total, n = 0.0, 0
    for input_batch, target_batch in first_batches(data_loader, num_batches):
        total += loss_batch(input_batch, target_batch, model).item()     # summed in the book's order
        n += 1
    return total / n if n else float("nan")


def evaluate_model(model, train_loader, val_loader, eval_iter: int, loss_batch=None) -> tuple[float, float]:
    """Training and validation loss (``loss_batch`` as in :func:`calc_loss_loader`) on ``eval_iter``
    batches each, in eval mode without gradients."""
    model.eval()
    with mg.no_grad():
        train_loss = calc_loss_loader(train_loader, model, eval_iter, loss_batch)
        val_loss = calc_loss_loader(val_loader, model, eval_iter, loss_batch)
    model.train()
    return train_loss, val_loss


def generate_and_print_sample(model, tokenizer, start_context: str, max_new_tokens: int = 50) -> str:
    """Greedily continue ``start_context`` and print it on one line (newlines shown as spaces)."""
    model.eval()
    context_size = model.cfg.context_length
    encoded = text_to_token_ids(start_context, tokenizer)
    token_ids = generate_text_simple(model, encoded, max_new_tokens, context_size)
    decoded = token_ids_to_text(token_ids, tokenizer)
    print(decoded.replace("\n", " "))
    model.train()
    return decoded


def train_model_simple(model, train_loader, val_loader, optimizer, num_epochs: int, eval_freq: int,
                       eval_iter: int, start_context: str, tokenizer):
    """The book's chapter-5 training loop. Returns (train_losses, val_losses, track_tokens_seen)."""
    train_losses, val_losses, track_tokens_seen = [], [], []
    tokens_seen, global_step = 0, -1
    for epoch in range(num_epochs):
        model.train()
        for input_batch, target_batch in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model)
            loss.backward()
            optimizer.step()
            tokens_seen += np.asarray(input_batch).size
            global_step += 1
            if global_step % eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, eval_iter)
                train_losses.append(train_loss)
                val_losses.append(val_loss)
                track_tokens_seen.append(tokens_seen)
                print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                      f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        generate_and_print_sample(model, tokenizer, start_context)
    return train_losses, val_losses, track_tokens_seen


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite. In a training step, that step was not applied; in an
    evaluation, the weights of the step just taken are the cause (they are not checkpointed)."""


@dataclass
class TrainState:
    """Everything about a run's progress that is not in the model, optimizer or data loader."""

    step: int = 0                      # optimizer steps taken
    epoch: int = 0                     # passes over the training data completed
    tokens_seen: int = 0
    elapsed: float = 0.0               # seconds of training, summed over resumed runs
    last_loss: float = float("nan")
    train_losses: list = field(default_factory=list)   # at each evaluation
    val_losses: list = field(default_factory=list)
    track_tokens_seen: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    track_lrs: list = field(default_factory=list)      # every step
    metrics: dict = field(default_factory=dict)        # other measures at each evaluation, name -> list

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainState":
        return cls(**d)


class Trainer:
    """Appendix D's training loop, resumable.

    Each step: set the learning rate (linear warmup from ``initial_lr`` to ``peak_lr`` over
    ``warmup_steps``, then cosine decay to ``min_lr`` at ``total_steps``), compute the loss on one
    batch, backpropagate, clip the gradient norm to ``grad_clip`` (after warmup, as the book does;
    ``clip_during_warmup=True`` clips from the first step), and update. Every ``eval_freq`` steps the
    train and validation losses are estimated on ``eval_iter`` batches.

    ``state_dict()`` holds the step counters, loss history, data-loader position and every random
    generator (the dropout layers' included); with the model's and optimizer's own state dicts it is
    all a resumed run needs to continue exactly as if it had never stopped.
    """

    def __init__(self, model, optimizer, train_loader, val_loader=None, *, total_steps: int,
                 peak_lr: float, warmup_steps: int = 0, initial_lr: float | None = None,
                 min_lr: float = 0.0, grad_clip: float | None = 1.0, clip_during_warmup: bool = False,
                 eval_freq: int = 100, eval_iter: int = 5, eval_first_step: bool = False):
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        if len(train_loader) == 0:
            raise ValueError("the training data gives no batch: use more text or a smaller batch size / context")
        self.model, self.optimizer = model, optimizer
        self.train_loader, self.val_loader = train_loader, val_loader
        self.total_steps, self.peak_lr = total_steps, peak_lr
        self.warmup_steps = min(warmup_steps, total_steps)
        self.initial_lr = peak_lr if initial_lr is None else initial_lr
        self.min_lr, self.grad_clip, self.clip_during_warmup = min_lr, grad_clip, clip_during_warmup
        self.eval_freq, self.eval_iter = max(1, eval_freq), eval_iter
        # the book's loops evaluate after steps 1, 1 + eval_freq, ... (global_step % eval_freq == 0,
        # counted from 0); by default evaluate after steps eval_freq, 2 eval_freq, ... and the last one
        self.eval_first_step = eval_first_step
        self.state = TrainState()
        self._stop_requested = False
        # the pass over the training data in progress; kept between run() calls so that the
        # loader's saved position (its state_dict) is this pass's position
        self._batches = None

    # ------------------------------------------------------------------ the loop
    def lr_at(self, step: int) -> float:
        return warmup_cosine_lr(step, peak_lr=self.peak_lr, total_steps=self.total_steps,
                                warmup_steps=self.warmup_steps, initial_lr=self.initial_lr, min_lr=self.min_lr)

    def request_stop(self) -> None:
        """Ask the loop to stop after the step in progress (safe to call from a signal handler)."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        """Whether :meth:`request_stop` was called since the loop last started."""
        return self._stop_requested

    def evaluate(self) -> tuple[float, float]:
        train_loss, val_loss = evaluate_model(self.model, self.train_loader, self.val_loader or [], self.eval_iter,
                                              lambda inputs, targets, _model: self.compute_loss(inputs, targets))
        return self.record_evaluation(train_loss, val_loss)

    def record_evaluation(self, train_loss: float, val_loss: float, **metrics: float) -> tuple[float, float]:
        """Check an evaluation's losses and append them (and any ``metrics``, by name) to the state."""
        s = self.state
        # The step just taken may have blown the weights up (its own loss was still finite). Stop
        # here, before anyone records or checkpoints these weights as a normal result. (An empty
        # validation loader gives NaN by design; that is not divergence.)
        has_val = self.val_loader is not None and len(self.val_loader) > 0
        for name, value in (("training", train_loss), ("validation", val_loss if has_val else 0.0)):
            if not math.isfinite(value):
                raise NonFiniteLossError(f"the {name} loss became {value} when evaluating after step {s.step}; "
                                         "try a lower learning rate or stronger gradient clipping")
        s.train_losses.append(train_loss)
        s.val_losses.append(val_loss)
        for name, value in metrics.items():
            s.metrics.setdefault(name, []).append(value)
        s.track_tokens_seen.append(s.tokens_seen)
        s.eval_steps.append(s.step)
        return train_loss, val_loss

    def compute_loss(self, input_batch, target_batch):
        """The loss of one batch, for training and evaluation alike (next-token cross-entropy;
        fine-tuning trainers override this)."""
        return calc_loss_batch(input_batch, target_batch, self.model)

    def train_step(self, input_batch, target_batch) -> float:
        s = self.state
        lr = self.lr_at(s.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad()
        loss = self.compute_loss(input_batch, target_batch)
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(f"the training loss became {value} at step {s.step + 1}; "
                                     "try a lower learning rate or stronger gradient clipping")
        loss.backward()
        if self.grad_clip and (self.clip_during_warmup or s.step >= self.warmup_steps):
            clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        s.step += 1
        s.tokens_seen += int(np.asarray(input_batch).size)
        s.track_lrs.append(lr)
        s.last_loss = value
        return value

    def run(self, on_step: Callable[["Trainer", float], None] | None = None,
            on_eval: Callable[["Trainer", float, float], None] | None = None) -> TrainState:
        """Train until ``total_steps`` (or a stop request); returns the state.

        ``on_step(trainer, loss)`` runs after every step, ``on_eval(trainer, train_loss, val_loss)``
        after every evaluation (both may save checkpoints: the state is consistent there).
        """
        s = self.state
        self._stop_requested = False
        self.model.train()
        while s.step < self.total_steps and not self._stop_requested:
            if self._batches is None:
                self._batches = iter(self.train_loader)   # a new pass (or the rest of a resumed one)
            try:
                input_batch, target_batch = next(self._batches)
            except StopIteration:
                self._batches = None
                continue
            started = time.perf_counter()
            loss = self.train_step(input_batch, target_batch)
            s.elapsed += time.perf_counter() - started
            s.epoch = s.step // len(self.train_loader)          # every pass has len(loader) batches
            if self.eval_first_step:
                due = (s.step - 1) % self.eval_freq == 0
            else:
                due = s.step % self.eval_freq == 0 or s.step == self.total_steps
            if due:
                train_loss, val_loss = self.evaluate()
                if on_eval is not None:
                    on_eval(self, train_loss, val_loss)
            if on_step is not None:
                on_step(self, loss)
        return s

    # ------------------------------------------------------------------ resuming
    def state_dict(self) -> dict:
        generators = [m.rng.bit_generator.state for m in self.model.modules() if hasattr(m, "rng")]
        return {
            "train_state": self.state.to_dict(),
            "train_loader": self.train_loader.state_dict(),
            "dropout_rngs": generators,
            "schedule": {"total_steps": self.total_steps, "peak_lr": self.peak_lr,
                         "warmup_steps": self.warmup_steps, "initial_lr": self.initial_lr,
                         "min_lr": self.min_lr, "grad_clip": self.grad_clip,
                         "eval_freq": self.eval_freq, "eval_iter": self.eval_iter},
        }

    def load_state_dict(self, state: dict) -> None:
        self.state = TrainState.from_dict(state["train_state"])
        self.train_loader.load_state_dict(state["train_loader"])
        self._batches = None
        layers = [m for m in self.model.modules() if hasattr(m, "rng")]
        if len(layers) != len(state["dropout_rngs"]):
            raise ValueError(f"the checkpoint has {len(state['dropout_rngs'])} dropout generators, "
                             f"the model {len(layers)}")
        for m, g in zip(layers, state["dropout_rngs"]):
            m.rng.bit_generator.state = g


def train_model(model, train_loader, val_loader, optimizer, n_epochs: int, eval_freq: int, eval_iter: int,
                start_context: str, tokenizer, warmup_steps: int, initial_lr: float = 3e-05,
                min_lr: float = 1e-6, grad_clip: float = 1.0):
    """Appendix D's ``train_model``: warmup, cosine decay and clipping over ``n_epochs`` epochs.

    The peak learning rate is the optimizer's own ``lr``. Returns
    (train_losses, val_losses, track_tokens_seen, track_lrs).
    """
    peak_lr = optimizer.param_groups[0]["lr"]
    steps_per_epoch = len(train_loader)
    trainer = Trainer(model, optimizer, train_loader, val_loader, total_steps=n_epochs * steps_per_epoch,
                      peak_lr=peak_lr, warmup_steps=warmup_steps, initial_lr=initial_lr, min_lr=min_lr,
                      grad_clip=grad_clip, eval_freq=eval_freq, eval_iter=eval_iter, eval_first_step=True)

    def report(t: Trainer, train_loss: float, val_loss: float) -> None:
        global_step = t.state.step - 1                      # the book counts steps from 0
        print(f"Ep {global_step // steps_per_epoch + 1} (Iter {global_step:06d}): "
              f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")

    def end_of_epoch(t: Trainer, loss: float) -> None:
        if t.state.step % steps_per_epoch == 0:
            generate_and_print_sample(model, tokenizer, start_context)

    state = trainer.run(on_step=end_of_epoch, on_eval=report)
    return state.train_losses, state.val_losses, state.track_tokens_seen, state.track_lrs


# ---------------------------------------------------------------------- evaluation at any length
def evaluate_at_length(model, token_ids, context_length: int, stride: int | None = None,
                       batch_size: int = 8) -> dict:
    """Next-token loss of ``model`` on ``token_ids`` read in windows of ``context_length`` tokens
    (beyond the book), which may be longer than the length the model was trained at when its
    positions allow it (``cfg.extrapolates``: rope, alibi, t5, none; learned positions refuse).

    ``stride`` None (or = context_length): non-overlapping windows; every target they cover is
    scored once (the last targets, fewer than a window's worth, are left out), and ``per_position[p]`` is the mean loss at position p of a window, over all windows (how the
    loss falls as a token has more context, and whether it rises again past the trained length).
    ``stride`` S < context_length: windows start every S tokens and each scores only the targets
    the previous one did not (its last S; all of the first), so most targets see at least
    context_length - S tokens before them (the "sliding window" perplexity); no per_position then.

    Returns {"loss", "tokens" (targets scored), "windows", "per_position" ((context_length,) float64 or None)}.
    """
    cfg = model.cfg
    if context_length > cfg.context_length and not cfg.extrapolates:
        raise ValueError(f"this model has learned positions for {cfg.context_length} tokens; it cannot read "
                         f"windows of {context_length} (rope, alibi, t5 and none can)")
    stride = context_length if stride is None else stride
    if not 0 < stride <= context_length:
        raise ValueError(f"stride must be between 1 and the window ({context_length}), got {stride}")
    ids = np.asarray(token_ids)        # a memory map stays one: each batch is gathered as int64 below
    if len(ids) < context_length + 1:
        raise ValueError(f"the text has {len(ids)} tokens; windows of {context_length} need at least {context_length + 1}")
    starts = np.arange(0, len(ids) - context_length, stride)                       # (n,)
    offsets = np.arange(context_length)
    scored = np.ones((len(starts), context_length), dtype=bool)
    scored[1:, :context_length - stride] = False                                   # seen by the window before
    totals = np.zeros(context_length)
    was_training = model.training
    model.eval()
    try:
        with mg.no_grad():
            for b in range(0, len(starts), batch_size):
                rows = starts[b:b + batch_size, None] + offsets                      # (bs, T) indices
                logits = model(ids[rows].astype(np.int64)).data                      # (bs, T, V)
                targets = ids[rows + 1].astype(np.int64)
                m = logits.max(axis=-1, keepdims=True)
                lse = np.log(np.exp(logits - m).sum(axis=-1)) + m[..., 0]           # log-sum-exp per token
                nll = lse - np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
                totals += np.where(scored[b:b + batch_size], nll, 0.0).sum(axis=0)
    finally:
        model.train(was_training)
    counts = scored.sum(axis=0)
    return {"loss": float(totals.sum() / counts.sum()), "tokens": int(counts.sum()), "windows": len(starts),
            "per_position": totals / counts if stride == context_length else None}
