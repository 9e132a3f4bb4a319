"""Chapter 4, "Implementing a GPT model from scratch to generate text".

    4.1  the configuration of GPT-2 small (124M) and a batch of two token sequences
    4.2  layer normalization: zero mean and unit variance per token
    4.3  GELU and the feed-forward network
    4.4  shortcut connections against vanishing gradients
    4.5  the transformer block
    4.6  the GPT model: output shape, 163,009,536 parameters (124,412,160 with weight tying), size
    4.7  generating text greedily with generate_text_simple (an untrained model: gibberish)

By default it builds the real GPT-2 small (about 4 s and 0.75 GB); ``--fast`` builds a 2-layer,
64-wide model with GPT-2's vocabulary instead, so the shapes are the same and only the counts differ.
GPT-2's tokenizer is used when its files are found (--data-dir, GPT_REFERENCE_DATA or data/book); otherwise a
small BPE tokenizer is trained on the embedded corpus for the demos.

    python examples/ch04_gpt_model.py               (a few seconds)
"""
from __future__ import annotations

import sys

import numpy as np
from _common import Stopwatch, gpt2_tokenizer, parse_args, section

import minigrad as mg
from minigrad import nn

from gpt.generate import generate_text_simple
from gpt.model import GELU, FeedForward, GPTModel, LayerNorm, TransformerBlock, model_summary
from gpt.shortcut_demo import ExampleDeepNeuralNetwork, print_gradients

GPT_CONFIG_124M = {
    "vocab_size": 50257,     # vocabulary size
    "context_length": 1024,  # context length
    "emb_dim": 768,          # embedding dimension
    "n_heads": 12,           # number of attention heads
    "n_layers": 12,          # number of layers
    "drop_rate": 0.1,        # dropout rate
    "qkv_bias": False,       # query-key-value bias
}


def load_tokenizer(args):
    """GPT-2's tokenizer if its files are available, else a small BPE trained on the embedded corpus."""
    tokenizer = gpt2_tokenizer(args)
    if tokenizer is not None:
        return tokenizer, True
    from gpt.corpus import default_corpus
    from gpt.tokenizer import BPETokenizer
    return BPETokenizer.train(default_corpus(max_chars=20_000), vocab_size=500, verbose=False), False


def decode(tokenizer, ids) -> str:
    """Decode ids; an untrained model with GPT-2's 50,257 outputs may pick ids a small stand-in
    tokenizer does not have, so those are shown as <id>."""
    return "".join(tokenizer.decode([i]) if i < tokenizer.n_vocab else f"<{i}>" for i in ids)


def main() -> int:
    args = parse_args("Chapter 4: the GPT architecture, its parameter count and greedy generation.")
    np.set_printoptions(precision=4, suppress=True, threshold=40)
    cfg = dict(GPT_CONFIG_124M)
    if args.fast:
        cfg.update(context_length=64, emb_dim=64, n_heads=2, n_layers=2)

    section("4.1 The configuration and a batch of text")
    for key, value in cfg.items():
        print(f"  {key:15} {value}")
    tokenizer, is_gpt2 = load_tokenizer(args)
    print("Tokenizer:", "GPT-2's" if is_gpt2 else f"a BPE trained on the embedded corpus ({tokenizer.n_vocab} tokens)")
    txt1, txt2 = "Every effort moves you", "Every day holds a"
    ids1, ids2 = tokenizer.encode(txt1), tokenizer.encode(txt2)
    n = min(len(ids1), len(ids2))            # GPT-2 gives 4 tokens each; a small vocabulary may give more
    batch = np.array([ids1[:n], ids2[:n]], dtype=np.int64)
    print("Batch of token ids:\n", batch)     # GPT-2: [[6109 3626 6100 345] [6109 1110 6622 257]]

    section("4.2 Layer normalization")
    mg.manual_seed(123)
    batch_example = mg.randn(2, 5)           # two examples with five features each
    layer = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
    out = layer(batch_example)
    print("Layer outputs:\n", out.data)
    print("Mean:", out.mean(dim=-1, keepdim=True).data.ravel(), " Variance:", out.var(dim=-1, keepdim=True).data.ravel())
    ln = LayerNorm(emb_dim=5)                # learnable scale (1s) and shift (0s) after normalizing
    out_ln = ln(batch_example)
    print("After LayerNorm, mean:", out_ln.mean(dim=-1, keepdim=True).data.ravel(),
          " variance (biased):", out_ln.var(dim=-1, keepdim=True, unbiased=False).data.ravel())

    section("4.3 GELU and the feed-forward network")
    gelu, x = GELU(), mg.tensor(np.linspace(-3, 3, 7, dtype=np.float32))
    print("  x      GELU(x)  ReLU(x)")          # GELU is smooth and slightly negative below 0
    for xi, gi, ri in zip(x.data, gelu(x).data, mg.relu(x).data):
        print(f"  {xi:5.1f} {gi:8.4f} {ri:8.4f}")
    ffn = FeedForward(cfg)                   # emb_dim -> 4 * emb_dim -> GELU -> emb_dim
    x = mg.rand(2, 3, cfg["emb_dim"])
    print("FeedForward:", x.shape, "->", ffn(x).shape)

    section("4.4 Shortcut connections")
    layer_sizes = [3, 3, 3, 3, 3, 1]
    sample_input = mg.tensor([[1.0, 0.0, -1.0]])
    mg.manual_seed(123)
    model_without_shortcut = ExampleDeepNeuralNetwork(layer_sizes, use_shortcut=False)
    print("Without shortcuts (the gradient shrinks on its way back to layer 0):")
    without = print_gradients(model_without_shortcut, sample_input)
    mg.manual_seed(123)
    model_with_shortcut = ExampleDeepNeuralNetwork(layer_sizes, use_shortcut=True)
    print("With shortcuts:")
    with_ = print_gradients(model_with_shortcut, sample_input)
    first = "layers.0.0.weight"
    print(f"First layer's gradient, with / without shortcuts: {with_[first] / without[first]:.0f}x larger")

    section("4.5 The transformer block")
    mg.manual_seed(123)
    x = mg.rand(2, 4, cfg["emb_dim"])        # (batch, tokens, emb_dim)
    block = TransformerBlock(cfg)
    print("Input shape:", x.shape, " Output shape:", block(x).shape)   # the block keeps the shape
    print(f"Per block: attention {block.att.num_parameters():,} and feed-forward {block.ff.num_parameters():,} "
          "parameters")                      # book: 2,360,064 and 4,722,432

    section("4.6 The GPT model")
    mg.manual_seed(123)
    with Stopwatch() as clock:
        model = GPTModel(cfg)
    print(f"Built in {clock.seconds:.1f} s")
    model.eval()                             # no dropout for the demos below
    out = model(batch)
    print("Input batch:\n", batch)
    print("Output shape:", out.shape)        # (2, tokens, 50257): a score for every vocabulary entry
    print(out.data)
    summary = model_summary(model)
    total_params = summary["parameters"]
    print(f"Total number of parameters: {total_params:,}")                   # book: 163,009,536
    print("Token embedding layer shape:", model.tok_emb.weight.shape)
    print("Output layer shape:", model.out_head.weight.shape)
    total_params_gpt2 = total_params - model.out_head.weight.size
    print(f"Number of trainable parameters considering weight tying: {total_params_gpt2:,}")   # 124,412,160
    print(f"Total size of the model: {summary['size_mb']:.2f} MB")          # book: 621.83 MB
    print(f"Forward FLOPs per token at full context: {summary['flops_per_token_forward'] / 1e6:,.0f} M")

    section("4.7 Generating text")
    start_context = "Hello, I am"
    encoded = tokenizer.encode(start_context)
    print("encoded:", encoded)                # GPT-2: [15496, 11, 314, 716]
    encoded_tensor = np.array(encoded, dtype=np.int64)[None, :]   # add the batch axis: (1, T)
    print("encoded_tensor.shape:", encoded_tensor.shape)
    out = generate_text_simple(model=model, idx=encoded_tensor, max_new_tokens=6,
                               context_size=cfg["context_length"])
    print("Output:", out.tolist())
    print("Output length:", out.shape[1])
    print("Decoded:", repr(decode(tokenizer, out[0].tolist())))   # untrained: random tokens
    return 0


if __name__ == "__main__":
    sys.exit(main())
