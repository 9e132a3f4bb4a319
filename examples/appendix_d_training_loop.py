"""Appendix D, "Adding bells and whistles to the training loop".

    D.1  learning-rate warmup: start small, rise linearly to the peak
    D.2  cosine decay: fall from the peak to a minimum along half a cosine
    D.3  gradient clipping: rescale the gradients when their combined norm exceeds 1
    D.4  the modified training function, train_model, on a small GPT

The schedule is computed twice: with the book's loop written out, and with
``minigrad.optim.warmup_cosine_lr``, which the training loop uses. The learning-rate curve is saved
as a PNG when matplotlib is installed and --out is given, and drawn in the terminal otherwise.

    python examples/appendix_d_training_loop.py [--out DIR]     (well under a minute)
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from _common import Stopwatch, ascii_plot, matplotlib_pyplot, parse_args, reference_file, section

import minigrad as mg
from minigrad.optim import AdamW, clip_grad_norm_, warmup_cosine_lr

from gpt.data import create_dataloader, train_val_split
from gpt.model import GPTConfig, GPTModel, count_parameters
from gpt.tokenizer import BPETokenizer
from gpt.train import calc_loss_batch, train_model


def load_text(args) -> tuple[str, str]:
    verdict = reference_file(args, "the-verdict.txt")
    if verdict is not None:
        return verdict.read_text(encoding="utf-8"), "the-verdict.txt"
    from gpt.corpus import default_corpus
    return default_corpus(max_chars=20_000), "the embedded corpus (first 20,000 characters)"


def show_curve(name: str, steps, lrs, out_dir: Path | None) -> None:
    """The learning rate against the step: a PNG with matplotlib and --out, else a terminal chart."""
    plt = matplotlib_pyplot()
    if plt is not None and out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.plot(steps, lrs)
        ax.set_xlabel("Steps")
        ax.set_ylabel("Learning rate")
        fig.tight_layout()
        fig.savefig(out_dir / f"{name}.png")
        print("Saved", out_dir / f"{name}.png")
    else:
        print(ascii_plot({"learning rate": (steps, lrs)}, height=10, x_label="step", y_format="{:.2e}"))


def find_highest_gradient(model) -> float:
    """The largest gradient entry over all parameters (the book's D.3 helper)."""
    return max(float(p.grad.max()) for p in model.parameters() if p.grad is not None)


def main() -> int:
    def options(p):
        p.add_argument("--out", metavar="DIR", help="save the learning-rate plots as PNG files in DIR (needs matplotlib)")

    args = parse_args("Appendix D: warmup, cosine decay and gradient clipping.", options)
    out_dir = Path(args.out) if args.out else None
    text_data, source = load_text(args)
    if args.fast:
        text_data, n_epochs = text_data[:4_000], 2
        vocab_size, settings = 300, dict(context_length=32, emb_dim=32, n_heads=2, n_layers=1)
    else:
        n_epochs = 15                                     # as in the book
        vocab_size, settings = 512, dict(context_length=64, emb_dim=96, n_heads=4, n_layers=2)

    train_data, val_data = train_val_split(text_data, train_ratio=0.90)
    tokenizer = BPETokenizer.train(train_data, vocab_size=vocab_size, verbose=False)
    ctx = settings["context_length"]
    train_loader = create_dataloader(train_data, tokenizer, batch_size=8, max_length=ctx, stride=ctx,
                                     drop_last=True, shuffle=True, seed=123)
    val_loader = create_dataloader(val_data, tokenizer, batch_size=8, max_length=ctx, stride=ctx,
                                   drop_last=False, shuffle=False)
    print(f"Text: {source}; {tokenizer}; {len(train_loader)} training batches per epoch")

    section("D.1 Learning-rate warmup")
    peak_lr, initial_lr, min_lr = 0.001, 1e-5, 1e-5      # the book's D.4 values
    total_steps = len(train_loader) * n_epochs
    warmup_steps = int(0.2 * total_steps)                 # 20% of the steps, as in the book
    print(f"total_steps = {total_steps}, warmup_steps = {warmup_steps}, "
          f"initial_lr = {initial_lr}, peak_lr = {peak_lr}, min_lr = {min_lr}")
    lr_increment = (peak_lr - initial_lr) / warmup_steps
    print(f"lr_increment per warmup step: {lr_increment:.3e}")

    section("D.2 Cosine decay")
    # The book's loop, written out: warmup, then half a cosine from peak_lr down to min_lr
    track_lrs = []
    for global_step in range(total_steps):
        if global_step < warmup_steps:
            lr = initial_lr + global_step * lr_increment
        else:
            progress = (global_step - warmup_steps) / (total_steps - warmup_steps)
            lr = min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        track_lrs.append(lr)
    library_lrs = [warmup_cosine_lr(s, peak_lr=peak_lr, total_steps=total_steps, warmup_steps=warmup_steps,
                                    initial_lr=initial_lr, min_lr=min_lr) for s in range(total_steps)]
    print("minigrad.optim.warmup_cosine_lr gives the same schedule:", np.allclose(track_lrs, library_lrs, rtol=1e-12))
    for s in sorted({0, warmup_steps // 2, warmup_steps, (warmup_steps + total_steps) // 2, total_steps - 1}):
        print(f"  step {s:4d}: lr {library_lrs[s]:.6f}")
    show_curve("lr-schedule", list(range(total_steps)), library_lrs, out_dir)

    section("D.3 Gradient clipping")
    mg.manual_seed(123)
    config = GPTConfig(vocab_size=tokenizer.n_vocab, drop_rate=0.1, qkv_bias=False, **settings)
    model = GPTModel(config)
    input_batch, target_batch = next(iter(train_loader))
    loss = calc_loss_batch(input_batch, target_batch, model)
    loss.backward()
    print(f"Largest gradient entry: {find_highest_gradient(model):.4f}")
    norm = clip_grad_norm_(model.parameters(), max_norm=1.0)   # returns the norm before clipping
    print(f"Gradient norm (all gradients as one vector): {norm:.4f}")
    max_norm = 1.0
    if norm <= max_norm:
        # a small model's gradients may already be short; clip to half their norm to see the effect
        max_norm = norm / 2
        print(f"That is below 1.0, so nothing was clipped; clipping to max_norm={max_norm:.4f} instead")
        clip_grad_norm_(model.parameters(), max_norm=max_norm)
    # every gradient was multiplied by max_norm / norm: the direction is kept, the length capped
    print(f"Largest gradient entry after clipping: {find_highest_gradient(model):.4f}")
    after = math.sqrt(sum(float(np.sum(p.grad.astype(np.float64) ** 2)) for p in model.parameters()))
    print(f"Gradient norm after clipping: {after:.4f}")
    model.zero_grad()

    section(f"D.4 train_model: {n_epochs} epochs with warmup, cosine decay and clipping")
    mg.manual_seed(123)
    model = GPTModel(config)                              # a fresh model
    print(f"{count_parameters(model):,} parameters")
    optimizer = AdamW(model.parameters(), lr=peak_lr, weight_decay=0.1)   # its lr is the peak
    with Stopwatch() as clock:
        train_losses, val_losses, tokens_seen, lrs = train_model(
            model, train_loader, val_loader, optimizer, n_epochs=n_epochs, eval_freq=5, eval_iter=1,
            start_context="Every effort moves you", tokenizer=tokenizer, warmup_steps=warmup_steps,
            initial_lr=initial_lr, min_lr=min_lr,
        )
    print(f"Trained in {clock.seconds:.1f} s: training loss {train_losses[0]:.3f} -> {train_losses[-1]:.3f}, "
          f"validation loss {val_losses[0]:.3f} -> {val_losses[-1]:.3f}")
    print("The learning rates train_model used match the schedule above:", np.allclose(lrs, library_lrs))
    show_curve("lr-used", list(range(len(lrs))), lrs, out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
