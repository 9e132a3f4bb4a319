"""Every script in examples/ runs in its fast mode and prints the figures it is about.

Each example runs as a subprocess, as a reader would run it (``python examples/X.py --fast``), and must
exit with status 0 and print its key lines: the book's numbers where the example reproduces them
(Appendix A's loss and gradients, chapter 3's attention weights, ...), and otherwise a property
that only holds when the code works (a reloaded checkpoint gives identical logits, the learning
rates the training loop used follow the schedule, ...). With the book's files (GPT_REFERENCE_DATA, else
data/book from `python -m gpt download book-data`: the examples and the tests look in the same places)
the examples run on them and more of the book's figures are checked.

BLAS is limited to one thread in the subprocesses: on a shared 2-core machine, spinning BLAS threads
make these small models several times slower, and the whole file should take well under a minute.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpt.download import reference_data_dir
from tests.cli_helpers import subprocess_env

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT = 300  # seconds per example; they take a few seconds each on an idle laptop


def run_example(name: str, *args: str, fast_by: str = "flag", extra_env: dict | None = None):
    """Run ``examples/name`` in fast mode (``--fast`` or ``EXAMPLES_FAST=1``); returns the CompletedProcess."""
    env = subprocess_env()
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONIOENCODING="utf-8")
    env.pop("EXAMPLES_FAST", None)
    flags = list(args)
    if fast_by == "flag":
        flags.append("--fast")
    else:
        env["EXAMPLES_FAST"] = "1"
    env.update(extra_env or {})
    return subprocess.run([sys.executable, str(EXAMPLES / name), *flags], env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=TIMEOUT)


def check_ok(result) -> str:
    assert result.returncode == 0, f"exit code {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    return result.stdout


def line_with(output: str, label: str) -> str:
    """The first output line that starts with ``label`` (fails the test when there is none)."""
    for line in output.splitlines():
        if line.startswith(label):
            return line
    raise AssertionError(f"no line starting with {label!r} in the output:\n{output[-3000:]}")


def numbers(text: str) -> list[float]:
    """Every number in ``text``, in order (thousands separators allowed)."""
    return [float(s.replace(",", "")) for s in re.findall(r"-?\d[\d,]*\.?\d*(?:e-?\d+)?", text)]


def numbers_after(output: str, label: str) -> list[float]:
    return numbers(line_with(output, label)[len(label):])


@pytest.fixture(scope="module")
def reference_dir():
    """The folder of the book's files the examples will find themselves (GPT_REFERENCE_DATA, else
    data/book) when it has them, else None (no skip)."""
    root = reference_data_dir(ROOT)
    if root is not None and (root / "the-verdict.txt").is_file() and (root / "gpt2" / "vocab.bpe").is_file():
        return root
    return None


def test_appendix_a_reproduces_the_books_logistic_example_and_trains_the_mlp():
    out = check_ok(run_example("appendix_a_minigrad.py"))
    assert numbers_after(out, "loss:") == pytest.approx([0.0852], abs=1e-4)
    assert numbers_after(out, "dL/dw1 =") == pytest.approx([-0.0898], abs=1e-4)
    assert numbers_after(out, "dL/db  =") == pytest.approx([-0.0817], abs=1e-4)
    assert line_with(out, "gradcheck of the logistic loss:").endswith("passed")
    assert numbers_after(out, "Total number of trainable model parameters:") == [2213]
    assert numbers_after(out, "predictions:") == [0, 0, 0, 1, 1, 0, 0, 0, 1, 1]   # predictions, then labels
    assert numbers_after(out, "Training accuracy:") == [100]
    assert numbers_after(out, "Test accuracy:") == [100]
    assert line_with(out, "the reloaded model gives the same outputs:").endswith("True")


def test_ch02_tokenizers(reference_dir):
    out = check_ok(run_example("ch02_tokenizers.py"))
    # whatever the text: the decoded BPE round trip and the embedding shapes of section 2.8
    assert "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace." in out
    assert numbers_after(out, "Inputs shape:") == [8, 4]
    assert numbers_after(out, "Token embeddings:") == [8, 4, 256]
    assert numbers_after(out, "Position embeddings:") == [4, 256]
    assert numbers_after(out, "Input embeddings:") == [8, 4, 256]
    assert line_with(out, "same as one-hot @ weight:").endswith("True")
    if reference_dir is not None:   # the book's figures on the-verdict.txt with GPT-2's vocabulary
        assert numbers_after(out, "Total number of characters:") == [20479]
        assert numbers_after(out, "Tokens:") == [4690]
        assert numbers_after(out, "Vocabulary size:") == [1130]
        assert numbers_after(out, "Vocabulary size with <|endoftext|> and <|unk|>:") == [1132]
        assert "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>." in out
        assert ("[15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114, 286, 617, "
                "34680, 27271, 13]") in out
        assert numbers_after(out, "Tokens in the text:") == [5145]
        assert numbers_after(out, "first batch:") == [40, 367, 2885, 1464, 367, 2885, 1464, 1807]
        assert numbers_after(out, "second batch:") == [367, 2885, 1464, 1807, 2885, 1464, 1807, 3619]


def test_ch02_word2vec_trains_and_measures_neighbours():
    out = check_ok(run_example("ch02_word2vec.py"))
    before, after = numbers_after(out, "Rank of 'tuple' among the neighbours of 'list': before")
    assert after < before / 10          # from a random rank to one of the nearest words
    random_median, skipgram_median, cbow_median, gpt_median = numbers_after(out, "Median rank:")
    assert skipgram_median < random_median / 5 and cbow_median < random_median / 5
    assert gpt_median > 0               # measured and printed (a 60-step GPT need not beat Word2Vec)
    first, *_, last = [numbers(line)[-1] for line in out.splitlines() if line.startswith("  skip-gram epoch")]
    assert last < first


def test_ch03_attention_reproduces_the_books_figures():
    out = check_ok(run_example("ch03_attention.py"))
    assert numbers_after(out, "Attention scores:") == pytest.approx([0.9544, 1.4950, 1.4754, 0.8434, 0.7070, 1.0865], abs=1e-4)
    assert numbers_after(out, "Attention weights (softmax):") == pytest.approx(
        [0.1385, 0.2379, 0.2333, 0.1240, 0.1082, 0.1581], abs=1e-4)
    assert numbers_after(out, "Context vector z^(2):") == pytest.approx([0.4419, 0.6515, 0.5683], abs=1e-4)
    assert line_with(out, "V1 with V2's weights gives V2's output:").endswith("True")
    assert line_with(out, "The same with -inf and one softmax:").endswith("True")
    assert line_with(out, "Changing tokens 2-6 leaves token 1's output alone:").endswith("True")
    assert numbers_after(out, "context_vecs.shape:") == [2, 6, 2]
    assert numbers_after(out, "MultiHeadAttentionWrapper, 2 heads of d_out=2:")[-3:] == [2, 6, 4]
    assert numbers_after(out, "MultiHeadAttention, d_out=2 split into 2 heads:")[-3:] == [2, 6, 2]
    assert numbers(line_with(out, "A GPT-2-sized MultiHeadAttention"))[-1] == 2_360_064



def test_ch03_positions_shows_each_schemes_bias_and_runs_the_experiment():
    out = check_ok(run_example("ch03_positions.py"))
    for scheme in ("RoPE's scores", "ALiBi's bias", "T5's bias"):
        assert line_with(out, f"{scheme} depend").endswith("True")          # functions of i - j only
    assert numbers_after(out, "slopes m_h for 4 heads (2^(-8h/4)):") == pytest.approx([0.25, 0.0625, 0.0156, 0.0039], abs=1e-4)
    assert "context length is 6 but 7 positions" in line_with(out, "7 tokens:")
    for kind in ("rope", "alibi", "t5", "none"):
        assert f"{kind}: trained for 6 tokens, reads 24: logits (1, 24, 50)" in out
    for scheme in ("learned", "rope", "alibi", "t5", "none"):
        assert line_with(out, f"| {scheme} |")
    assert line_with(out, "Schemes trained:").endswith("5")
    assert line_with(out, "| rope+linear | — |") and line_with(out, "| rope+ntk | — |")


def test_ch03_why_attention_trains_the_three_models_and_prints_an_alignment():
    out = check_ok(run_example("ch03_why_attention.py"))
    assert numbers_after(out, "40 words -> encoder states")[-1] == numbers_after(out, " 2 words -> encoder states")[-1]
    assert numbers_after(out, "Exact match, rnn-bahdanau, 1-2 words:")[-1] >= 50     # chance: 10 % at best
    assert line_with(out, "Each digit's weights over the words sum to one:").endswith("True")
    assert line_with(out, "Beam width 1 == greedy:").endswith("True")
    assert "| 6-8 (longer than training) |" in out

def test_ch04_gpt_model_fast_mode_by_environment_variable(reference_dir):
    out = check_ok(run_example("ch04_gpt_model.py", fast_by="env"))
    # EXAMPLES_FAST=1 selects the small model: GPT-2's vocabulary, 2 layers of width 64
    params = numbers_after(out, "Total number of parameters:")[0]
    assert params == 2 * 50257 * 64 + 64 * 64 + 2 * (4 * 64 * 64 + 64 + 8 * 64 * 64 + 5 * 64 + 4 * 64) + 2 * 64
    assert numbers_after(out, "Output shape:")[::2] == [2, 50257]
    ratio = numbers(line_with(out, "First layer's gradient, with / without shortcuts:"))[-1]
    assert ratio > 1                                        # shortcuts keep the first layer's gradient alive
    prompt_length = len(numbers_after(out, "encoded:"))
    assert numbers_after(out, "Output length:") == [prompt_length + 6]
    if reference_dir is not None:
        assert numbers_after(out, "encoded:") == [15496, 11, 314, 716]
        batch = out.split("Batch of token ids:")[1].split("=====")[0]
        assert numbers(batch) == [6109, 3626, 6100, 345, 6109, 1110, 6622, 257]


def test_ch05_pretraining_trains_samples_and_round_trips_a_checkpoint(tmp_path):
    out = check_ok(run_example("ch05_pretraining.py", "--out", str(tmp_path)))
    ce = numbers(line_with(out, "Average log-probability:"))
    # the cross-entropy from the six steps (printed as -average log-probability) is what F.cross_entropy gives
    assert numbers_after(out, "F.cross_entropy:")[0] == pytest.approx(-ce[0], abs=1e-3)
    first_train, first_val, last_train, last_val = numbers(line_with(out, "Training took").split("from")[1])
    assert last_train < first_train and last_val < first_val
    assert line_with(out, "Greedy (argmax):").endswith("forward")
    assert numbers_after(out, "Top-k probabilities:") == pytest.approx([0.0615, 0, 0, 0.5775, 0, 0, 0, 0.3610, 0], abs=1e-4)
    assert line_with(out, "The reloaded model gives identical logits:").endswith("True")
    assert (tmp_path / "checkpoint" / "latest").is_file()   # --out keeps the checkpoint for `python -m gpt generate`


def test_appendix_d_schedule_clipping_and_train_model():
    out = check_ok(run_example("appendix_d_training_loop.py"))
    assert line_with(out, "minigrad.optim.warmup_cosine_lr gives the same schedule:").endswith("True")
    assert line_with(out, "The learning rates train_model used match the schedule above:").endswith("True")
    before = numbers_after(out, "Gradient norm (all gradients as one vector):")[0]
    after = numbers_after(out, "Gradient norm after clipping:")[0]
    max_norm = 1.0 if before > 1.0 else before / 2   # the example halves a norm that is already below 1
    assert after == pytest.approx(max_norm, abs=2e-4)


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_ch05_book_reference_without_the_data_says_what_to_do(tmp_path, folder):
    data_dir = tmp_path / folder
    if folder == "empty":
        data_dir.mkdir()
    result = run_example("ch05_book_reference.py", "--data-dir", str(data_dir))
    assert result.returncode == 2
    assert "the-verdict.txt" in result.stderr and "--data-dir" in result.stderr
    assert "Traceback" not in result.stderr


def test_ch05_book_reference_fast(reference_dir):
    if reference_dir is None:
        pytest.skip("the book's reference run needs the-verdict.txt and GPT-2's vocabulary: run "
                    "`python -m gpt download book-data` in the repository root, or set GPT_REFERENCE_DATA")
    out = check_ok(run_example("ch05_book_reference.py", "--data-dir", str(reference_dir)))
    assert numbers_after(out, "Characters:") == [20479]
    assert numbers_after(out, "Tokens:") == [5145]
    assert numbers_after(out, "Training tokens:") == [4608]
    assert numbers_after(out, "Validation tokens:") == [512]
    train_loss, val_loss = numbers_after(out, "Initial losses: training")[:2]
    assert 10.5 < train_loss < 11.5 and 10.5 < val_loss < 11.5   # about ln(50257) = 10.8 for an untrained model
    assert "Every effort moves you" in out


def test_ch07_dpo_masks_the_answer_and_trains_against_a_frozen_reference():
    out = check_ok(run_example("ch07_dpo.py"))
    eot = "'<|endoftext|>'"
    answer = line_with(out, "boundary='answer'")
    book = line_with(out, "boundary='book'")
    assert answer.rstrip().endswith(eot + "]") and "'###'" not in answer
    assert "['###', ' Response', ':', '\\n'," in book and eot not in book
    assert "loss 0.6931 = ln 2" in out                       # the policy starts as the reference
    steps = [line for line in out.splitlines() if re.match(r"step +\d+: train loss", line)]
    assert steps and numbers_after(steps[-1].split(":", 1)[1], " train loss")[0] < 0.6931
    assert len(numbers_after(out, "Preference accuracy (log p(chosen) > log p(rejected)):")) == 2
    assert len(numbers_after(out, "Exact-match accuracy:")) == 2


def test_ch07_instruction_finetuning_splits_collates_and_learns(reference_dir):
    args = ("--data-dir", str(reference_dir)) if reference_dir is not None else ()
    out = check_ok(run_example("ch07_instruction_finetuning.py", *args))
    demo = out.split("The demo data:")[1]
    assert numbers_after(demo, "Training set length:") == [170]     # 85 % of the 200 demo entries
    assert numbers_after(demo, "Validation set length:") == [10]    # 5 %
    assert numbers_after(demo, "Test set length:") == [20]          # the remaining 10 %
    # the book's custom_collate_fn on its three short sequences (section 7.3)
    collated = out.split("targets (inputs shifted by one")[1].split("allowed_max_length")[0]
    assert numbers(collated.split(":", 1)[1]) == [1, 2, 3, 4, 50256, 6, 50256, -100, -100, -100,
                                                  8, 9, 50256, -100, -100]
    before = numbers_after(out, "Exact-match accuracy before fine-tuning:")[0]
    after = numbers_after(out, "Exact-match accuracy after fine-tuning:")[0]
    assert after > before
    if reference_dir is not None:   # the book's 1,100 entries split 935 / 110 / 55
        book = out.split("The demo data:")[0]
        assert numbers_after(book, "Number of entries:") == [1100]
        assert numbers_after(book, "Training set length:") == [935]
        assert numbers_after(book, "Validation set length:") == [55]
        assert numbers_after(book, "Test set length:") == [110]
