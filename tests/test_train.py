"""Tests for gpt.train: the book's chapter-5 loss helpers and loop, and the appendix-D Trainer
(warmup, cosine decay, clipping after warmup, reproducibility, non-finite losses).

Everything runs on tiny models (two layers, 16-token context, a vocabulary of tens) and short
token streams, so each test takes a fraction of a second.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.optim import AdamW

import gpt.train as train_mod
from gpt.data import DataLoader, GPTDataset, first_batches
from gpt.model import GPTConfig, GPTModel
from gpt.train import (
    NonFiniteLossError,
    Trainer,
    calc_loss_batch,
    calc_loss_loader,
    evaluate_model,
    train_model_simple,
)

CTX = 16


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def tiny_model(vocab_size=40, seed=0, drop_rate=0.0, **overrides):
    mg.manual_seed(seed)
    cfg = GPTConfig.from_preset("tiny", vocab_size=vocab_size, context_length=CTX, emb_dim=32,
                                drop_rate=drop_rate, **overrides)
    return GPTModel(cfg)


def repetitive_stream(n_tokens=400, vocab_size=40, period=7):
    """A stream that repeats a short pattern: easy to learn, so the loss must fall quickly."""
    pattern = (np.arange(period) * 5 + 3) % vocab_size
    return np.resize(pattern, n_tokens).astype(np.int64)


def random_stream(n_tokens=400, vocab_size=40, seed=0):
    return np.random.default_rng(seed).integers(0, vocab_size, n_tokens)


def loader(ids, batch_size=2, stride=CTX, shuffle=True, seed=0, drop_last=True):
    return DataLoader(GPTDataset(ids, CTX, stride), batch_size=batch_size, shuffle=shuffle,
                      drop_last=drop_last, seed=seed)


def numpy_cross_entropy(logits, targets):
    """Mean of -log softmax(logits)[target] over all positions, in float64. logits (b, T, V)."""
    z = logits.astype(np.float64).reshape(-1, logits.shape[-1])
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(z)), np.asarray(targets).reshape(-1)].mean())


class CountingLoader:
    """Wraps a loader and fails loudly if one pass yields more batches than ``len()`` promises
    (so that a broken loader makes the epoch-based loop fail instead of running forever)."""

    def __init__(self, inner):
        self.inner = inner

    def __len__(self):
        return len(self.inner)

    def __iter__(self):
        for i, batch in enumerate(self.inner):
            if i >= len(self.inner):
                raise AssertionError(f"the loader yielded more than its {len(self.inner)} batches in one pass")
            yield batch


class CharTokenizer:
    """Just enough tokenizer for generate_and_print_sample: token id i is the letter chr(97 + i)."""

    def encode(self, text, allowed_special=()):
        return [(ord(c) - 97) % 26 for c in text]

    def decode(self, ids):
        return "".join(chr(97 + int(i) % 26) for i in ids)


# --------------------------------------------------------------------------------------------------
# calc_loss_batch, calc_loss_loader, evaluate_model
# --------------------------------------------------------------------------------------------------


@settings(max_examples=10)
@given(batch=st.integers(1, 3), seq=st.integers(1, CTX), vocab=st.integers(2, 60), seed=st.integers(0, 2**16))
def test_calc_loss_batch_is_the_cross_entropy_of_the_models_logits(batch, seq, vocab, seed):
    model = tiny_model(vocab, seed=seed)
    rng = np.random.default_rng(seed)
    inputs = rng.integers(0, vocab, (batch, seq))
    targets = rng.integers(0, vocab, (batch, seq))
    loss = calc_loss_batch(inputs, targets, model)
    assert loss.shape == () and loss.data.dtype == np.float32
    with mg.no_grad():
        logits = model(inputs).data                                   # (b, T, V)
    assert loss.item() == pytest.approx(numpy_cross_entropy(logits, targets), rel=1e-5, abs=1e-6)


def test_calc_loss_batch_is_differentiable():
    model = tiny_model()
    ids = random_stream(CTX + 1)
    calc_loss_batch(ids[None, :-1], ids[None, 1:], model).backward()
    assert all(p.grad is not None and np.isfinite(p.grad).all() for p in model.parameters())
    assert np.abs(model.out_head.weight.grad).sum() > 0


def test_calc_loss_loader_is_the_mean_over_batches_with_a_num_batches_limit():
    model = tiny_model()
    data = loader(random_stream(300), batch_size=3, shuffle=False, drop_last=False)
    with mg.no_grad():
        per_batch = [calc_loss_batch(x, y, model).item() for x, y in data]
        assert len(per_batch) == len(data) >= 4
        assert calc_loss_loader(data, model) == pytest.approx(np.mean(per_batch), rel=1e-6)
        assert calc_loss_loader(data, model, num_batches=2) == pytest.approx(np.mean(per_batch[:2]), rel=1e-6)
        assert calc_loss_loader(data, model, num_batches=1) == pytest.approx(per_batch[0], rel=1e-6)
        # more batches asked for than there are: all of them, as in the book
        assert calc_loss_loader(data, model, num_batches=10 * len(data)) == pytest.approx(np.mean(per_batch), rel=1e-6)


def test_calc_loss_loader_of_an_empty_loader_is_nan():
    model = tiny_model()
    assert math.isnan(calc_loss_loader([], model))
    # a real loader with fewer windows than one batch and drop_last=True has no batch either
    empty = loader(random_stream(3 * CTX + 1), batch_size=8)
    assert len(empty) == 0
    assert math.isnan(calc_loss_loader(empty, model, num_batches=5))


def test_calc_loss_loader_of_zero_batches_is_nan():
    model = tiny_model()
    data = loader(random_stream(300), batch_size=3, shuffle=False)
    assert len(data) > 0 and math.isnan(calc_loss_loader(data, model, num_batches=0))


def test_first_batches_draws_no_batch_beyond_the_last_and_closes_the_iterator():
    drawn, closed, handed_out = [], [], []

    class Loader:
        def __len__(self):
            return 5

        def __iter__(self):
            def batches():
                try:
                    for i in range(5):
                        drawn.append(i)
                        yield i
                finally:
                    closed.append(True)
            handed_out.append(batches())    # kept alive here: only an explicit close() can close it
            return handed_out[-1]

    assert list(first_batches(Loader(), 2)) == [0, 1] and drawn == [0, 1] and closed == [True]
    assert list(first_batches(Loader(), None)) == [0, 1, 2, 3, 4] and closed == [True, True]
    for _ in first_batches(Loader(), 4):
        break                                           # leaving early closes it too
    assert closed == [True, True, True]


def test_evaluate_model_uses_eval_mode_without_a_graph_and_restores_train_mode(monkeypatch):
    model = tiny_model(drop_rate=0.5)
    train_loader = loader(random_stream(200, seed=1), shuffle=False)
    val_loader = loader(random_stream(100, seed=2), shuffle=False)
    losses_seen = []
    real = train_mod.calc_loss_batch

    def spy(x, y, m):
        loss = real(x, y, m)
        losses_seen.append((loss, m.training, [sub.training for sub in m.modules()]))
        return loss

    monkeypatch.setattr(train_mod, "calc_loss_batch", spy)
    model.train()
    first = evaluate_model(model, train_loader, val_loader, eval_iter=2)
    assert len(losses_seen) == 4                       # eval_iter batches of each loader
    for loss, training, sub_modes in losses_seen:
        assert not training and not any(sub_modes)    # dropout off everywhere
        assert loss.grad_fn is None and not loss.requires_grad
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    # eval mode means no dropout: evaluating again gives the very same numbers
    assert evaluate_model(model, train_loader, val_loader, eval_iter=2) == first
    with mg.no_grad():
        model.eval()
        expected = (calc_loss_loader(train_loader, model, 2), calc_loss_loader(val_loader, model, 2))
    assert first == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------------------------------
# train_model_simple: the book's loop
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eval_freq", [1, 3, 5])
def test_train_model_simple_eval_cadence_tokens_seen_and_falling_loss(eval_freq, capsys):
    vocab = 26
    model = tiny_model(vocab)
    ids = repetitive_stream(CTX * 12 + 1, vocab)
    train_loader = CountingLoader(loader(ids, batch_size=2))        # 6 batches of 2 x 16 per epoch
    val_loader = CountingLoader(loader(repetitive_stream(CTX * 2 + 1, vocab), batch_size=2, shuffle=False,
                                       drop_last=False))
    optimizer = AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    num_epochs = 3
    train_losses, val_losses, tokens_seen = train_model_simple(
        model, train_loader, val_loader, optimizer, num_epochs=num_epochs, eval_freq=eval_freq,
        eval_iter=2, start_context="abc", tokenizer=CharTokenizer())

    steps = num_epochs * len(train_loader)
    eval_steps = [s for s in range(steps) if s % eval_freq == 0]      # global_step starts at 0
    assert len(train_losses) == len(val_losses) == len(tokens_seen) == len(eval_steps)
    assert tokens_seen == [(s + 1) * 2 * CTX for s in eval_steps]
    assert all(isinstance(v, float) and math.isfinite(v) for v in train_losses + val_losses)
    # the printed lines name the same steps, and a sample is printed after each epoch
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if line.startswith("Ep ")] == [
        f"Ep {s // len(train_loader) + 1} (Step {s:06d}): Train loss {tr:.3f}, Val loss {va:.3f}"
        for s, tr, va in zip(eval_steps, train_losses, val_losses)]
    samples = [line for line in out if not line.startswith("Ep ")]
    assert len(samples) == num_epochs and all(s.startswith("abc") for s in samples)
    # a repeating pattern is learnt: the loss falls well below its starting value
    assert train_losses[-1] < 0.5 * train_losses[0]
    assert val_losses[-1] < 0.5 * val_losses[0]


# --------------------------------------------------------------------------------------------------
# Trainer: reproducibility, schedule, clipping, non-finite losses
# --------------------------------------------------------------------------------------------------


def make_trainer(seed=0, total_steps=12, drop_rate=0.1, loader_seed=None, **kwargs):
    model = tiny_model(seed=seed, drop_rate=drop_rate)
    train_loader = loader(random_stream(CTX * 10 + 1, seed=7), batch_size=2,
                          seed=seed if loader_seed is None else loader_seed)
    val_loader = loader(random_stream(CTX * 4 + 1, seed=8), batch_size=2, shuffle=False)
    optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    options = dict(total_steps=total_steps, peak_lr=5e-3, warmup_steps=3, initial_lr=1e-4, min_lr=1e-4,
                   eval_freq=4, eval_iter=2)
    options.update(kwargs)
    return Trainer(model, optimizer, train_loader, val_loader, **options)


def run_recording_losses(trainer):
    losses = []
    trainer.run(on_step=lambda t, loss: losses.append(loss))
    return losses


def test_same_seed_gives_the_same_losses_bit_for_bit():
    a, b = make_trainer(seed=3), make_trainer(seed=3)
    losses_a, losses_b = run_recording_losses(a), run_recording_losses(b)
    assert len(losses_a) == 12
    assert losses_a == losses_b                                          # exact float equality
    assert a.state.train_losses == b.state.train_losses and a.state.val_losses == b.state.val_losses
    for (name, pa), (_, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert np.array_equal(pa, pb), name
    # and the seed matters: another seed (model init, dropout masks, shuffling) gives other losses
    assert run_recording_losses(make_trainer(seed=4)) != losses_a
    # so does the data order alone
    assert run_recording_losses(make_trainer(seed=3, loader_seed=99)) != losses_a


def test_trainer_state_counts_steps_epochs_tokens_and_evaluations():
    t = make_trainer(total_steps=12, eval_freq=4)
    state = t.run()
    assert state.step == 12 and state.tokens_seen == 12 * 2 * CTX
    assert state.epoch == 12 // len(t.train_loader)
    assert state.eval_steps == [4, 8, 12]
    assert state.track_tokens_seen == [s * 2 * CTX for s in (4, 8, 12)]
    assert len(state.track_lrs) == 12
    assert all(math.isfinite(v) for v in state.train_losses + state.val_losses)


@pytest.mark.parametrize("total, warmup", [(20, 5), (12, 1), (9, 0), (6, 6)])
def test_trainer_learning_rates_follow_warmup_then_cosine(total, warmup):
    initial, peak, low = 1e-4, 1e-2, 1e-3
    t = make_trainer(total_steps=total, warmup_steps=warmup, initial_lr=initial, peak_lr=peak, min_lr=low)
    used = []                                           # the lr of every group when the optimizer steps
    real_step = t.optimizer.step

    def step_spy():
        used.append({g["lr"] for g in t.optimizer.param_groups})
        real_step()

    t.optimizer.step = step_spy
    lrs = t.run().track_lrs
    assert used == [{lr} for lr in lrs]                 # track_lrs is what the optimizer really used
    assert len(lrs) == total
    if warmup:
        assert lrs[0] == initial                        # step 0: the initial lr
        assert all(x < y for x, y in zip(lrs[:warmup], lrs[1:warmup + 1]))
    if warmup < total:
        assert lrs[warmup] == pytest.approx(peak, rel=1e-12)   # warmup done: the peak
        assert all(x > y for x, y in zip(lrs[warmup:], lrs[warmup + 1:]))
        # the last step is one cosine step away from the minimum
        progress = (total - 1 - warmup) / (total - warmup)
        assert lrs[-1] == pytest.approx(low + (peak - low) * 0.5 * (1 + math.cos(math.pi * progress)), rel=1e-12)
        assert low < lrs[-1] < low + 0.05 * (peak - low)
    assert all(low <= lr <= peak * (1 + 1e-12) for lr in lrs[warmup:])


def grad_norm(parameters):
    return math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in parameters if p.grad is not None))


@pytest.mark.parametrize("clip_during_warmup", [False, True])
def test_gradients_are_clipped_after_warmup_by_default(clip_during_warmup, monkeypatch):
    max_norm, warmup = 1e-3, 4                        # far below the real norms, so clipping always bites
    t = make_trainer(total_steps=8, warmup_steps=warmup, grad_clip=max_norm, clip_during_warmup=clip_during_warmup)
    clipped_at, norms = [], []
    real_clip = train_mod.clip_grad_norm_

    def clip_spy(params, max_norm_arg, *args, **kwargs):
        clipped_at.append(t.state.step)
        assert max_norm_arg == max_norm
        return real_clip(params, max_norm_arg, *args, **kwargs)

    monkeypatch.setattr(train_mod, "clip_grad_norm_", clip_spy)
    real_step = t.optimizer.step

    def step_spy():                                    # the gradient norm the optimizer is given
        norms.append(grad_norm(t.model.parameters()))
        real_step()

    t.optimizer.step = step_spy
    t.run()
    first_clipped = 0 if clip_during_warmup else warmup
    assert clipped_at == list(range(first_clipped, 8))
    for step, norm in enumerate(norms):
        if step >= first_clipped:
            assert norm <= max_norm * (1 + 1e-4)
        else:
            assert norm > 10 * max_norm                 # unclipped during warmup


def test_no_clipping_when_grad_clip_is_none(monkeypatch):
    calls = []
    monkeypatch.setattr(train_mod, "clip_grad_norm_", lambda *a, **k: calls.append(a))
    make_trainer(total_steps=5, warmup_steps=1, grad_clip=None).run()
    assert calls == []


def test_a_nan_loss_raises_and_the_step_is_not_applied(monkeypatch):
    t = make_trainer(total_steps=10, eval_freq=100)
    real = train_mod.calc_loss_batch
    calls = {"n": 0}

    def nan_on_the_fourth_training_batch(x, y, model):
        loss = real(x, y, model)
        if model.training:
            calls["n"] += 1
            if calls["n"] == 4:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(train_mod, "calc_loss_batch", nan_on_the_fourth_training_batch)
    weights_before = {}

    def remember(trainer, loss):
        weights_before.update({k: v.copy() for k, v in trainer.model.state_dict().items()})

    with pytest.raises(NonFiniteLossError, match="step 4"):
        t.run(on_step=remember)
    assert t.state.step == 3
    for k, v in t.model.state_dict().items():
        assert np.array_equal(v, weights_before[k]), k


def test_diverging_weights_are_caught_at_the_evaluation_that_sees_them(monkeypatch):
    """A step that blows the weights up makes the *next* loss NaN; an evaluation right after that
    step must not report it as an ordinary result (the CLI would save it as a good checkpoint)."""
    t = make_trainer(total_steps=10, warmup_steps=0, eval_freq=2, grad_clip=None)
    monkeypatch.setattr(Trainer, "lr_at", lambda self, step: 1e30 if step == 3 else 1e-3)
    evaluated = []
    with pytest.raises(NonFiniteLossError), np.errstate(all="ignore"):
        t.run(on_eval=lambda tr, a, b: evaluated.append((tr.state.step, a, b)))
    assert [step for step, _, _ in evaluated] == [2]
    assert all(math.isfinite(a) and math.isfinite(b) for _, a, b in evaluated)


def test_trainer_rejects_bad_settings():
    with pytest.raises(ValueError, match="total_steps"):
        make_trainer(total_steps=0)
    model = tiny_model()
    empty = loader(random_stream(3 * CTX + 1), batch_size=8)
    with pytest.raises(ValueError, match="no batch"):
        Trainer(model, AdamW(model.parameters()), empty, total_steps=3, peak_lr=1e-3)
