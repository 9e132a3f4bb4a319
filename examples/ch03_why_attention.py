"""Chapter 3's opening, measured: why attention?

Before attention, an encoder-decoder RNN read the whole input into one hidden state and the decoder
had to write the output from that one vector ("the RNN has only one hidden state at a time, which
needs to encapsulate the entire context"). Bahdanau attention lets the decoder look back at every
input state; the Transformer then dropped the RNN (chapter 1's encoder-decoder figure, where GPT
comes from). This script trains all three on the same task and shows where the one-vector
bottleneck bites.

    3.1  the task: a number read aloud ("four double five ...") to be written in digits
    3.1  the fixed context: every reading, short or long, becomes one vector of the same size
    3.2  Bahdanau attention: a new context for every digit written, from every word read
         the three models, trained alike: exact-match accuracy by input length
         one alignment matrix, printed as text; greedy decoding and beam search

    python examples/ch03_why_attention.py --fast    (seconds: tiny models, readings of up to 5 words)
    python examples/ch03_why_attention.py           (the full experiment, about 10 minutes on 2 cores;
                                                     the same as `python -m gpt experiment seq2seq`)
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import parse_args, section

import minigrad as mg

from gpt.experiments import seq2seq
from gpt.seq2seq import task
from gpt.seq2seq.decode import beam_search, greedy_decode


def main() -> int:
    args = parse_args("Chapter 3's opening: RNN encoder-decoders with and without attention, and the Transformer.",
                      lambda p: p.add_argument("--out", metavar="DIR", default="runs/experiment-seq2seq",
                                               help="results folder without --fast (resumable; default: %(default)s)"))
    settings = seq2seq.FAST if args.fast else seq2seq.DEFAULT

    section("The task: write down a number that is read aloud")
    rng = np.random.default_rng(7)
    for n in (3, 6, 12):
        reading = task.random_reading(rng, n)
        print(f"{' '.join(reading):<72} -> {task.read_aloud(reading)}")
    print(f"Vocabulary ({task.VOCAB_SIZE} tokens, shared by both sides): {' '.join(task.VOCAB)}")

    section("The fixed context: one vector, whatever the length")
    mg.manual_seed(0)
    model = seq2seq.MODELS["rnn-fixed-context"](settings)
    for n in (2, 40):
        b = task.encode_batch([task.random_reading(rng, n)])
        with mg.no_grad():
            states, final = model.encoder(b.src, b.src_lengths)
        print(f"{n:>2} words -> encoder states {states.shape[1:]}, context vector {final.shape[1:]}")
    print("The plain decoder sees only the context vector; the attention decoder sees all the states.")

    section("Training the three models alike" + (" (fast mode: tiny)" if args.fast else ""))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) if args.fast else Path(args.out)
        results = seq2seq.run(out, settings, say=print)
        print(seq2seq.table(results, settings))
        for r in results:
            first = seq2seq.label(settings.buckets[0])
            print(f"Exact match, {r['model']}, {first} words: {100 * r['accuracy'][first]:.0f} %")
        attention = seq2seq.load_model("rnn-bahdanau", settings, out / "rnn-bahdanau")
        fixed = seq2seq.load_model("rnn-fixed-context", settings, out / "rnn-fixed-context")

    section("What the attention decoder looked at")
    reading, answer, alpha = seq2seq.example_alignment(attention, settings)
    print(f"Reading: {' '.join(reading)}")
    print(f"Right answer: {task.read_aloud(reading)}   rnn-bahdanau wrote: {answer}")
    print("Alignment (rows: words read; columns: digits written, $ = end; darker = more weight):")
    print(seq2seq.alignment_text(reading, answer, alpha))
    print(f"Each digit's weights over the words sum to one: {np.allclose(alpha.sum(axis=1), 1.0, atol=1e-5)}")

    section("Greedy decoding and beam search")
    b = task.encode_batch([reading])
    greedy = greedy_decode(fixed, b.src, b.src_lengths, b.tgt_out.shape[1], task.BOS, task.EOS)
    beam1 = beam_search(fixed, b.src, b.src_lengths, b.tgt_out.shape[1], task.BOS, task.EOS, beam_width=1)
    beam4 = beam_search(fixed, b.src, b.src_lengths, b.tgt_out.shape[1], task.BOS, task.EOS, beam_width=4)
    print(f"rnn-fixed-context, greedy:     {task.decode_digits(greedy[0])}")
    print(f"rnn-fixed-context, beam of 4:  {task.decode_digits(beam4[0])}")
    print(f"Beam width 1 == greedy: {beam1 == greedy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
