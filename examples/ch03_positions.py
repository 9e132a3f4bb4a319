"""Chapter 2's positions, measured: how each scheme of ``GPTConfig.pos_emb`` tells attention where a
token is, on the book's six tokens "Your journey starts with one step", then the experiment that asks
whether relative positions generalise to longer texts than a model was trained on.

    learned  a trained vector per absolute position, added to the token embedding (GPT-2, the book)
    rope     queries and keys rotated by their position: the score depends on i - j only
    alibi    score(i, j) += -m_h * (i - j): a fixed penalty on distance, one slope per head
    t5       score(i, j) += b[bucket(i - j), h]: a learned scalar per distance bucket and head
    none     nothing but the causal mask

The notes write relative positions as "score(i, j) = similarity(query_i, key_j) + position_bias(i - j)":
ALiBi's and T5's bias matrices below are exactly that term. Then ``python -m gpt experiment positions``
(here in its fast form with --fast; about 10 minutes without) trains one small GPT per scheme at T
tokens and reads held-out text at T, 2T and 4T.

    python examples/ch03_positions.py --fast        (a few seconds)
    python examples/ch03_positions.py               (the real experiment, ~10 min, into runs/experiment-positions)
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import parse_args, section

import minigrad as mg

from gpt.model import GPTConfig, GPTModel
from gpt.positions import ALiBi, RotaryEmbedding, T5RelativeBias, alibi_slopes, relative_position_bucket

TOKENS = ["Your", "journey", "starts", "with", "one", "step"]
T = len(TOKENS)


def show(name: str, matrix: np.ndarray) -> None:
    """A (T, T) matrix with the masked (future) entries as '.'."""
    print(name)
    print("          " + "".join(f"{w[:7]:>8}" for w in TOKENS))
    for i, w in enumerate(TOKENS):
        cells = "".join(f"{matrix[i, j]:8.3f}" if j <= i else f"{'.':>8}" for j in range(T))
        print(f"{w[:9]:>9} {cells}")


def is_toeplitz(m: np.ndarray) -> bool:
    """Each diagonal constant on and below the main one: the value depends on i - j only."""
    return all(np.allclose(np.diagonal(m, -k), np.diagonal(m, -k)[0]) for k in range(len(m)))


def main() -> int:
    args = parse_args("Positions: learned, RoPE, ALiBi, T5's bias and none; do relative ones generalise?")
    np.set_printoptions(precision=4, suppress=True)

    section("learned (chapter 2): one trained vector per absolute position")
    mg.manual_seed(123)
    learned = GPTModel(GPTConfig(vocab_size=50, context_length=T, emb_dim=4, n_heads=2, n_layers=1, pos_emb="learned"))
    print("pos_emb.weight, one row per position:", learned.pos_emb.weight.shape,
          "-- no bias on the scores, and no row for position 6: the model cannot read a 7th token")
    try:
        learned(np.zeros((1, T + 1), dtype=np.int64))
    except ValueError as e:
        print("7 tokens:", e)

    section("rope: rotate queries and keys; the score of q_i and k_j depends on i - j")
    rope = RotaryEmbedding(head_dim=8, context_length=T)
    q = mg.tensor(np.ones((1, 1, T, 8)))             # the same query and key at every position ...
    scores = (rope(q).data[0, 0] @ rope(q).data[0, 0].T) / np.sqrt(8)
    show("q_i . k_j / sqrt(8) for q = k = (1, ..., 1):", scores)
    print("RoPE's scores depend on i - j only:", is_toeplitz(scores))

    section("alibi: score(i, j) += -m_h (i - j), fixed slopes")
    heads = 4
    print(f"slopes m_h for {heads} heads (2^(-8h/{heads})):", alibi_slopes(heads))
    print("for 12 heads (not a power of two):", alibi_slopes(12))
    bias = ALiBi(heads)(0, T, T)                      # (H, T, T), what every layer adds
    show("head 1 (the steepest: recent tokens count most):", bias[0])
    show(f"head {heads} (the flattest: it sees far back):", bias[-1])
    print("ALiBi's bias depends on i - j only:", all(is_toeplitz(b) for b in bias))

    section("t5: score(i, j) += b[bucket(i - j), h], learned, one table for all layers")
    buckets = relative_position_bucket(np.arange(T)[None, :] - np.arange(T)[:, None], bidirectional=False,
                                       num_buckets=4, max_distance=4)
    show("bucket of each (query, key) with 4 buckets (distances 0, 1 exact; then log-spaced; >= 4 share the last):",
         buckets.astype(float))
    t5 = T5RelativeBias(n_heads=2, num_buckets=4, max_distance=4)
    t5.relative_attention_bias.weight.data[:, 0] = [0.0, -0.5, -1.0, -1.5]   # as if trained (it starts at zero)
    show("head 1 with the table b[:, 0] = [0, -0.5, -1, -1.5]:", t5(0, T, T).data[0])
    print("T5's bias depends on i - j only:", is_toeplitz(t5(0, T, T).data[0]))

    section("none: no position information but the causal mask")
    show("bias:", np.zeros((T, T)))

    section("past the training length: relative schemes have no table to run out of")
    for kind in ("rope", "alibi", "t5", "none"):
        mg.manual_seed(123)
        model = GPTModel(GPTConfig(vocab_size=50, context_length=T, emb_dim=8, n_heads=2, n_layers=1, pos_emb=kind))
        logits = model(np.arange(4 * T)[None] % 50)
        print(f"{kind:>6}: trained for {T} tokens, reads {4 * T}: logits {logits.shape}")

    section("The experiment: python -m gpt experiment positions" + (" (fast settings)" if args.fast else ""))
    from gpt.experiments import positions

    settings = positions.FAST if args.fast else positions.DEFAULT
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) if args.fast else Path("runs/experiment-positions")
        results = positions.run_experiment(out, settings)
        print(f"held-out loss, trained at {settings.context} tokens:")
        print(positions.table(results, settings.context))
        if not args.fast and positions.plot(results, settings.context, out / "positions.png"):
            print(f"plot: {out / 'positions.png'}")
    print("Schemes trained:", len({r["scheme"] for r in results if "+" not in r["scheme"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
