"""Chapter 5, section 5.2: the book's reference pretraining run, reproduced on minigrad.

The book trains GPT-2 small (124M parameters, context length cut to 256) on the short story
*The Verdict* (20,479 characters, 5,145 GPT-2 tokens) for 10 epochs:

    torch.manual_seed(123)
    model = GPTModel(GPT_CONFIG_124M)                 # context_length 256, drop_rate 0.1
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    train_model_simple(model, train_loader, val_loader, optimizer, num_epochs=10,
                       eval_freq=5, eval_iter=5, start_context="Every effort moves you", ...)

and reports initial losses of about 10.98, then a training loss that falls below 1 while the
validation loss stalls above 6: a small text is memorized, not learned (overfitting). This script
runs the same recipe with this project's functions; on a laptop CPU it takes many minutes
(90 optimizer steps of a 163M-parameter model on 512 tokens each).

Measured with this script (seed 123, a shared 2-core machine, default BLAS threads, 9.3 minutes):
initial losses 10.98 / 11.03, final "Ep 10 (Step 000085): Train loss 0.467, Val loss 6.542" (the
book: 0.391 / 6.452), and the last sample recites the story as the book's does ("Yes--quite insensible
to the irony. She wanted him vindicated--and by me!" He laughed again, ...). With one BLAS thread
(OPENBLAS_NUM_THREADS=1) it took 25 minutes in an earlier session.

It needs the book's files (the-verdict.txt and GPT-2's vocabulary): ``python -m gpt download
book-data`` puts them in data/book, where it looks by default (or pass --data-dir DIR, or set
GPT_REFERENCE_DATA). ``--fast`` runs one epoch of a 2-layer, narrower model for the tests.

    python examples/ch05_book_reference.py --data-dir /path/to/data
"""
from __future__ import annotations

import sys

from _common import (WHERE_TO_GET_THE_DATA, Stopwatch, gpt2_tokenizer, parse_args, positive_int, reference_file,
                     section)

import minigrad as mg
from minigrad.optim import AdamW

from gpt.data import create_dataloader, train_val_split
from gpt.model import GPTModel, model_summary
from gpt.train import calc_loss_loader, train_model_simple

# The book's configuration (section 4.1), with the context length reduced to 256 as in section 5.1.
GPT_CONFIG_124M = {
    "vocab_size": 50257,     # GPT-2's vocabulary
    "context_length": 256,   # shortened from 1024 to keep training cheap
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


def main() -> int:
    def options(p):
        p.add_argument("--epochs", type=positive_int, default=None, help="default 10 (1 with --fast)")

    args = parse_args("The book's chapter-5 reference pretraining run on the-verdict.txt.", options)
    verdict = reference_file(args, "the-verdict.txt")
    tokenizer = gpt2_tokenizer(args)
    if verdict is None or tokenizer is None:
        where = f"the data folder {args.data_dir}" if args.data_dir else "a data folder (none was given)"
        print(f"error: this example needs the-verdict.txt and GPT-2's vocabulary in {where}; pass --data-dir DIR "
              f"or set GPT_REFERENCE_DATA; {WHERE_TO_GET_THE_DATA}", file=sys.stderr)
        return 2

    config = dict(GPT_CONFIG_124M)
    num_epochs = args.epochs or 10
    if args.fast:  # the test's smoke run: one epoch of a 2-layer, narrower model
        config.update(n_layers=2, emb_dim=64, n_heads=2)
        num_epochs = args.epochs or 1

    section("5.1.3 The data")
    text_data = verdict.read_text(encoding="utf-8")
    print("Characters:", len(text_data))
    print("Tokens:", len(tokenizer.encode(text_data)))

    train_data, val_data = train_val_split(text_data, train_ratio=0.90)
    # the book seeds torch before building the loaders; here each loader has its own seed
    train_loader = create_dataloader(train_data, tokenizer, batch_size=2, max_length=config["context_length"],
                                     stride=config["context_length"], drop_last=True, shuffle=True, seed=123)
    val_loader = create_dataloader(val_data, tokenizer, batch_size=2, max_length=config["context_length"],
                                   stride=config["context_length"], drop_last=False, shuffle=False)
    train_tokens = sum(x.size for x, _ in train_loader)
    val_tokens = sum(x.size for x, _ in val_loader)
    print(f"Train loader: {len(train_loader)} batches of shape {next(iter(train_loader))[0].shape}")
    print(f"Validation loader: {len(val_loader)} batch(es) of shape {next(iter(val_loader))[0].shape}")
    print("Training tokens:", train_tokens)        # book: 4608
    print("Validation tokens:", val_tokens)        # book: 512
    print("All tokens:", train_tokens + val_tokens)

    section("5.1 The model and its initial loss")
    mg.manual_seed(123)                            # the book: torch.manual_seed(123)
    model = GPTModel(config)
    summary = model_summary(model)
    print(f"Parameters: {summary['parameters']:,} ({summary['size_mb']:.2f} MB in float32)")
    model.eval()                                   # no dropout while measuring
    with mg.no_grad():
        train_loss = calc_loss_loader(train_loader, model)
        val_loss = calc_loss_loader(val_loader, model)
    print(f"Initial losses: training {train_loss:.4f}, validation {val_loss:.4f} (book: 10.9876, 10.9811)")

    section(f"5.2 Training: {num_epochs} epoch(s), AdamW(lr=0.0004, weight_decay=0.1), batch 2")
    optimizer = AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    with Stopwatch() as clock:
        train_losses, val_losses, tokens_seen = train_model_simple(
            model, train_loader, val_loader, optimizer, num_epochs=num_epochs, eval_freq=5, eval_iter=5,
            start_context="Every effort moves you", tokenizer=tokenizer,
        )
    print(f"Trained {num_epochs} epoch(s) in {clock.seconds / 60:.1f} min ({tokens_seen[-1]:,} tokens seen)")

    section("Result")
    final_train, final_val = train_losses[-1], val_losses[-1]
    print(f"Final losses (last evaluation): training {final_train:.3f}, validation {final_val:.3f}")
    if not args.fast and num_epochs == 10:
        reached = final_train < 1.0 and final_val < 7.0
        print("Book's reference (training loss below 1, validation loss below 7):",
              "reached" if reached else "NOT reached")
    return 0


if __name__ == "__main__":
    sys.exit(main())
