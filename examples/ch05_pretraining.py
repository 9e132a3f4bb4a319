"""Chapter 5, "Pretraining on unlabeled data", at laptop scale.

    5.1  text generation with an untrained model; the loss: cross-entropy and perplexity;
         training and validation losses before training
    5.2  training a small GPT with the book's train_model_simple, and the loss curve
    5.3  decoding strategies: temperature scaling and top-k sampling
    5.4  saving a checkpoint (model, tokenizer, optimizer) and loading it to continue

The book trains GPT-2 small for 10 epochs on *The Verdict* (see ch05_book_reference.py for that run,
which takes many minutes). Here a small GPT and a BPE tokenizer of 1,024 tokens trained on the text
itself make the same story run in well under a minute: on the-verdict.txt when the book's files
are found (--data-dir, GPT_REFERENCE_DATA or data/book), otherwise on 40,000 characters of the embedded corpus.

    python examples/ch05_pretraining.py [--out DIR]    (checkpoint and loss plot kept in DIR)
"""
from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import (Stopwatch, ascii_plot, matplotlib_pyplot, parse_args, positive_int, reference_file,
                     section)

import minigrad as mg
from minigrad.nn import functional as F
from minigrad.optim import AdamW

from gpt.checkpoint import load_checkpoint, save_checkpoint
from gpt.data import create_dataloader, train_val_split
from gpt.generate import generate, sample_next, text_to_token_ids, token_ids_to_text
from gpt.model import GPTConfig, GPTModel, count_parameters
from gpt.tokenizer import BPETokenizer
from gpt.train import calc_loss_loader, train_model_simple


def load_text(args) -> tuple[str, str]:
    verdict = reference_file(args, "the-verdict.txt")
    if verdict is not None:
        return verdict.read_text(encoding="utf-8"), "the-verdict.txt"
    from gpt.corpus import default_corpus
    return default_corpus(max_chars=40_000), "the embedded corpus (first 40,000 characters)"


def plot_losses(epochs_seen, tokens_seen, train_losses, val_losses, out_dir: Path | None) -> None:
    """The book's plot_losses: a PNG with matplotlib (when installed and --out is given), else ASCII."""
    plt = matplotlib_pyplot()
    if plt is not None and out_dir is not None:
        fig, ax1 = plt.subplots(figsize=(5, 3))
        ax1.plot(epochs_seen, train_losses, label="Training loss")
        ax1.plot(epochs_seen, val_losses, linestyle="-.", label="Validation loss")
        ax1.set_xlabel("Epochs")
        ax1.set_ylabel("Loss")
        ax1.legend(loc="upper right")
        ax2 = ax1.twiny()                        # a second x-axis: tokens seen
        ax2.plot(tokens_seen, train_losses, alpha=0)
        ax2.set_xlabel("Tokens seen")
        fig.tight_layout()
        fig.savefig(out_dir / "loss-plot.png")
        print("Loss plot saved to", out_dir / "loss-plot.png")
        return
    print(ascii_plot({"training loss": (tokens_seen, train_losses), "validation loss": (tokens_seen, val_losses)},
                     x_label="tokens seen"))


def main() -> int:
    def options(p):
        p.add_argument("--out", metavar="DIR", help="keep the checkpoint (and loss plot) in DIR "
                                                    "(default: a temporary folder, deleted at the end)")
        p.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default 10; 1 with --fast)")

    args = parse_args("Chapter 5: pretrain a small GPT, sample from it, save and reload it.", options)
    np.set_printoptions(precision=4, suppress=True)
    text_data, source = load_text(args)
    if args.fast:   # a few seconds: a smaller vocabulary, a tiny model, one epoch
        vocab_size, settings = 300, dict(context_length=32, emb_dim=32, n_heads=2, n_layers=1, drop_rate=0.1)
        text_data, num_epochs, batch_size = text_data[:4_000], args.epochs or 1, 8
    else:
        vocab_size, settings = 1024, dict(context_length=64, emb_dim=128, n_heads=4, n_layers=4, drop_rate=0.1)
        num_epochs, batch_size = args.epochs or 10, 8

    section("The text and its tokenizer")
    train_data, val_data = train_val_split(text_data, train_ratio=0.90)    # by characters, as the book
    # GPT-2's 50,257-token vocabulary would make the output layer the bulk of a small model's
    # work; a BPE vocabulary learned from the training text is 50 times smaller.
    tokenizer = BPETokenizer.train(train_data, vocab_size=vocab_size, verbose=False)
    print(f"Text: {source}, {len(text_data):,} characters, {len(tokenizer.encode(text_data)):,} tokens")
    print("Tokenizer:", tokenizer)

    GPT_CONFIG = GPTConfig(vocab_size=tokenizer.n_vocab, qkv_bias=False, **settings)
    mg.manual_seed(123)
    model = GPTModel(GPT_CONFIG)
    model.eval()                                      # no dropout while we look at the untrained model
    print(f"Model: {GPT_CONFIG}\n       {count_parameters(model):,} parameters")

    section("5.1.1 Generating text with the untrained model")
    start_context = "Every effort moves you"
    token_ids = generate(model, text_to_token_ids(start_context, tokenizer), max_new_tokens=10,
                         context_size=GPT_CONFIG.context_length)   # greedy (temperature 0)
    print("Output text:", repr(token_ids_to_text(token_ids, tokenizer)))

    section("5.1.2 The loss: cross-entropy and perplexity")
    ids = [tokenizer.encode(t) for t in ("every effort moves you", "I really like chocolate")]
    n = min(len(i) for i in ids) - 1
    inputs = np.array([i[:n] for i in ids])               # (2, n)
    targets = np.array([i[1:n + 1] for i in ids])         # the inputs shifted by one token
    print("inputs: ", inputs.tolist(), "\ntargets:", targets.tolist())
    with mg.no_grad():
        logits = model(inputs)                            # (2, n, vocab)
    probas = F.softmax(logits, -1).data
    print("Predicted next tokens:", np.argmax(probas, axis=-1).tolist())
    # the probability the model gives each correct next token; training pushes these towards 1
    target_probas = np.take_along_axis(probas, targets[..., None], axis=-1)[..., 0]
    print("Probabilities of the targets:", target_probas)
    log_probas = np.log(target_probas)
    avg_log_probas = log_probas.mean()
    print(f"Average log-probability: {avg_log_probas:.4f};  its negative is the cross-entropy: {-avg_log_probas:.4f}")
    loss = F.cross_entropy(logits.flatten(0, 1), targets.reshape(-1))
    print(f"F.cross_entropy: {loss.item():.4f}")
    print(f"Perplexity exp(loss): {math.exp(loss.item()):.1f} (a uniform guess over {tokenizer.n_vocab} tokens: "
          f"{tokenizer.n_vocab})")

    section("5.1.3 Training and validation losses before training")
    ctx = GPT_CONFIG.context_length
    train_loader = create_dataloader(train_data, tokenizer, batch_size=batch_size, max_length=ctx, stride=ctx,
                                     drop_last=True, shuffle=True, seed=123)
    val_loader = create_dataloader(val_data, tokenizer, batch_size=batch_size, max_length=ctx, stride=ctx,
                                   drop_last=False, shuffle=False)
    print(f"{len(train_loader)} training batches and {len(val_loader)} validation batches of "
          f"{batch_size} x {ctx} tokens")
    with mg.no_grad():
        train_loss, val_loss = calc_loss_loader(train_loader, model), calc_loss_loader(val_loader, model)
    print(f"Training loss: {train_loss:.3f}  Validation loss: {val_loss:.3f}  (ln {tokenizer.n_vocab} = "
          f"{math.log(tokenizer.n_vocab):.3f})")

    section(f"5.2 Training for {num_epochs} epoch(s) with train_model_simple")
    # the book's lr=0.0004 is for 124M parameters; a model this small learns faster with a larger one
    optimizer = AdamW(model.parameters(), lr=0.001, weight_decay=0.1)
    with Stopwatch() as clock:
        train_losses, val_losses, tokens_seen = train_model_simple(
            model, train_loader, val_loader, optimizer, num_epochs=num_epochs, eval_freq=5, eval_iter=5,
            start_context=start_context, tokenizer=tokenizer,
        )
    print(f"Training took {clock.seconds:.1f} s; losses went from {train_losses[0]:.3f} / {val_losses[0]:.3f} "
          f"to {train_losses[-1]:.3f} / {val_losses[-1]:.3f} (training / validation)")
    epochs_seen = np.linspace(0, num_epochs, len(train_losses))

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.out) if args.out else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_losses(epochs_seen, tokens_seen, train_losses, val_losses, out_dir if args.out else None)

        section("5.3 Decoding strategies: temperature and top-k")
        vocab = {"closer": 0, "every": 1, "effort": 2, "forward": 3, "inches": 4, "moves": 5, "pizza": 6,
                 "toward": 7, "you": 8}
        inverse_vocab = {v: k for k, v in vocab.items()}
        # the book's next-token logits after "every effort moves you"
        next_token_logits = np.array([4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79], dtype=np.float32)
        print("Greedy (argmax):", inverse_vocab[int(np.argmax(next_token_logits))])   # forward
        rng = np.random.default_rng(123)
        for temperature in (1.0, 0.1, 5.0):
            # sample_next divides the logits by the temperature and draws from their softmax
            draws = [int(sample_next(next_token_logits[None], temperature=temperature, rngs=[rng])[0])
                     for _ in range(1000)]
            counts = np.bincount(draws, minlength=len(vocab))
            print(f"temperature {temperature}: " + ", ".join(f"{c} x {inverse_vocab[i]}" for i, c in enumerate(counts) if c))
        top_k = 3
        top_pos = np.argsort(-next_token_logits)[:top_k]
        print("Top logits:", next_token_logits[top_pos], " Top positions:", top_pos)
        new_logits = np.where(next_token_logits < next_token_logits[top_pos[-1]], -np.inf, next_token_logits)
        print("Logits outside the top 3 set to -inf:", new_logits)
        print("Top-k probabilities:", F.softmax(mg.tensor(new_logits), -1).data)  # [0.0615 0 0 0.5775 0 0 0 0.361 0]
        token_ids = generate(model, text_to_token_ids(start_context, tokenizer), max_new_tokens=15,
                             context_size=ctx, top_k=25, temperature=1.4, rng=np.random.default_rng(123))
        print("Sampled with top_k=25, temperature=1.4:", repr(token_ids_to_text(token_ids, tokenizer)))

        section("5.4 Saving and loading: model, tokenizer and optimizer")
        path = save_checkpoint(out_dir / "checkpoint", model, tokenizer=tokenizer, optimizer=optimizer,
                               step=num_epochs * len(train_loader),   # optimizer steps taken: names the folder
                               info={"example": "ch05_pretraining", "epochs": num_epochs})
        print("Saved", ", ".join(sorted(p.name for p in path.iterdir())), "in", path)
        checkpoint = load_checkpoint(out_dir / "checkpoint")
        model2 = checkpoint.model
        model.eval()                                  # train_model_simple leaves the model in training mode
        model2.eval()
        with mg.no_grad():
            same = np.array_equal(model2(inputs).data, model(inputs).data)
        print("The reloaded model gives identical logits:", same)
        # the optimizer's moments make continuing training pick up where it stopped (exercise 5.4)
        optimizer2 = AdamW(model2.parameters(), lr=0.001, weight_decay=0.1)
        optimizer2.load_state_dict(checkpoint.optimizer_state)
        print("Continuing for one more epoch from the checkpoint:")
        train_model_simple(model2, train_loader, val_loader, optimizer2, num_epochs=1, eval_freq=5, eval_iter=5,
                           start_context=start_context, tokenizer=checkpoint.tokenizer)
        if args.out:
            print(f"Generate from it: python -m gpt generate --checkpoint {out_dir / 'checkpoint'} "
                  f"--prompt \"{start_context}\"")
    print("\n5.5 (GPT-2's pretrained weights): gpt.weights.load_gpt2(PATH/model.safetensors), or "
          "python -m gpt generate --gpt2 PATH/model.safetensors --vocab DIR")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
