"""Does a sentence encoder find the right document by meaning? Held-out sentences of Python's reference.

The evaluation set is made from the default corpus: from each pydoc topic ("Assignment statements",
"The for statement", ...) one prose sentence is taken out at random (seeded), and the rest of the
topic is indexed in overlapping chunks. The sentence is the question; the right answer is any chunk
of its own topic, which no longer contains it, so a match has to come from the surrounding text,
not from the sentence itself. Reported, per method: recall@1 and recall@5 (is a chunk of the right
topic first / among the first five topics found) and MRR (mean of 1 / rank of the right topic),
ranking topics by their best chunk.

Methods: a sentence-transformers encoder (``--encoder``, e.g. all-MiniLM-L6-v2) through
gpt.embeddings and gpt.retrieval; this project's own encoder, pretrained here as a masked language
model (``python -m gpt pretrain --arch bert``, bert-mini, on the default corpus with the held-out
sentences taken out, so it never read a question) or read from ``--mlm-checkpoint DIR``, its token
vectors mean-pooled and normalised; and a bag-of-words baseline (TF-IDF weighted word counts,
cosine) over the same chunks.
"""
from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import regex

from gpt.atomic import write_text_atomic
from gpt.retrieval import Chunk, chunk_text

_SENTENCE_END = regex.compile(r"(?<=[.!?])\s+")
_WORD = regex.compile(r"[a-z]+")


@dataclass
class Question:
    text: str
    topic: str


def topic_documents(limit: int | None = None) -> list[tuple[str, str]]:
    """(name, text) of the pydoc topics of the default corpus, in order (the first ``limit``)."""
    from gpt.corpus import _iter_documents

    out = []
    for doc in _iter_documents("docs"):
        if not doc.name.startswith("topic:"):
            break
        out.append((doc.name, doc.text))
        if limit is not None and len(out) >= limit:
            break
    return out


def _prose_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences of 10 to 40 words that read as prose (no grammar rules, code or tables)."""
    spans, start = [], 0
    for m in list(_SENTENCE_END.finditer(text)) + [None]:
        end = m.start() if m is not None else len(text)
        sentence = text[start:end]
        words = sentence.split()
        if (10 <= len(words) <= 40 and "::=" not in sentence and ">>>" not in sentence and "\n\n" not in sentence
                and sum(w.isalpha() for w in words) >= 0.7 * len(words)):
            spans.append((start, end))
        start = m.end() if m is not None else len(text)
    return spans


def make_questions(documents: list[tuple[str, str]], seed: int = 0) -> tuple[list[Question], dict[str, str]]:
    """One held-out sentence per topic that has one: (questions, {topic: text without that sentence})."""
    rng = np.random.default_rng(seed)
    questions, remaining = [], {}
    for name, text in documents:
        spans = _prose_sentences(text)
        if not spans:
            remaining[name] = text
            continue
        start, end = spans[rng.integers(len(spans))]
        questions.append(Question(" ".join(text[start:end].split()), name))
        remaining[name] = text[:start] + text[end:]
    return questions, remaining


def topic_ranks(scores: np.ndarray, chunks: list[Chunk], questions: list[Question]) -> list[int]:
    """For each question (a row of scores over the chunks), the rank of its topic when topics are
    ordered by their best chunk (1 = first)."""
    topics = sorted({c.source for c in chunks})
    column = {t: i for i, t in enumerate(topics)}
    of_chunk = np.array([column[c.source] for c in chunks])
    best = np.full((len(questions), len(topics)), -np.inf)
    np.maximum.at(best.T, of_chunk, scores.T)                        # best chunk score per topic
    ranks = []
    for row, q in zip(best, questions):
        ranks.append(int((row > row[column[q.topic]]).sum()) + 1)
    return ranks


def summary(ranks: list[int]) -> dict:
    r = np.asarray(ranks)
    return {"recall@1": float((r <= 1).mean()), "recall@5": float((r <= 5).mean()), "mrr": float((1.0 / r).mean())}


def bag_of_words_scores(chunks: list[Chunk], questions: list[Question]) -> np.ndarray:
    """(questions, chunks) cosines of TF-IDF weighted word counts (idf = log((N + 1) / (df + 1)) + 1)."""
    vocab: dict[str, int] = {}
    docs = [[vocab.setdefault(w, len(vocab)) for w in _WORD.findall(c.text.lower())] for c in chunks]
    queries = [[vocab[w] for w in _WORD.findall(q.text.lower()) if w in vocab] for q in questions]
    counts = np.zeros((len(chunks), len(vocab)), dtype=np.float32)
    for i, ids in enumerate(docs):
        np.add.at(counts[i], ids, 1.0)
    idf = np.log((len(chunks) + 1) / ((counts > 0).sum(0) + 1)) + 1
    chunk_vectors = counts * idf
    chunk_vectors /= np.maximum(np.linalg.norm(chunk_vectors, axis=1, keepdims=True), 1e-12)
    query_vectors = np.zeros((len(questions), len(vocab)), dtype=np.float32)
    for i, ids in enumerate(queries):
        np.add.at(query_vectors[i], ids, 1.0)
    query_vectors *= idf
    query_vectors /= np.maximum(np.linalg.norm(query_vectors, axis=1, keepdims=True), 1e-12)
    return query_vectors @ chunk_vectors.T


#: the own encoder's pretraining inside the experiment (``python -m gpt pretrain`` options), per mode
MLM_PRETRAIN = ["--arch", "bert", "--config", "bert-mini"]
MLM_PRETRAIN_FAST = ["--arch", "bert", "--context-length", "64", "--emb-dim", "32", "--n-layers", "1", "--n-heads", "2",
                     "--vocab-size", "300", "--batch-size", "4", "--eval-batches", "1", "--warmup", "1"]
MLM_STEPS, MLM_STEPS_FAST = 600, 3


def mlm_corpus(remaining: dict[str, str], fast: bool) -> str:
    """The text the own encoder pretrains on: the default corpus with each topic replaced by its text
    without the held-out sentence (fast: only those topics)."""
    from gpt.corpus import DOCUMENT_SEPARATOR, corpus_documents

    if fast:
        return DOCUMENT_SEPARATOR.join(remaining.values())
    return DOCUMENT_SEPARATOR.join(remaining.get(d.name, d.text) for d in corpus_documents("docs"))


def pretrain_mlm(out: Path, remaining: dict[str, str], fast: bool, steps: int | None,
                 say: Callable[[str], None]) -> Path:
    """Pretrain (or finish pretraining, or reuse) the own encoder in ``out / "mlm"``; returns that folder."""
    from gpt.cli import main
    from gpt.checkpoint import load_checkpoint

    run, text = out / "mlm", out / "mlm-corpus.txt"
    steps = steps or (MLM_STEPS_FAST if fast else MLM_STEPS)
    if (run / "latest").is_file():          # a run from before: complete, or stopped (Ctrl-C) on the way
        done = load_checkpoint(run).trainer_state["train_state"]["step"]
        if done >= steps:
            say(f"own MLM encoder: reusing {run} ({done} steps)")
            return run
        argv = ["pretrain", "--resume", str(run), "--steps", str(steps)]
    else:
        write_text_atomic(text, mlm_corpus(remaining, fast))
        argv = ["pretrain", *(MLM_PRETRAIN_FAST if fast else MLM_PRETRAIN), "--text", str(text),
                "--steps", str(steps), "--eval-every", str(max(steps // 4, 1)), "--out", str(run)]
    say("own MLM encoder: python -m gpt " + " ".join(argv))
    started = time.perf_counter()
    code = main(argv + (["--quiet"] if fast else []))
    if code != 0:
        raise RuntimeError(f"pretraining the MLM encoder failed (exit {code}); its run is in {run}")
    say(f"own MLM encoder: pretrained in {time.perf_counter() - started:.0f} s")
    return run


def mlm_encoder(checkpoint):
    """A SentenceEncoder over a ``pretrain --arch bert`` checkpoint: its encoder, mean pooling, normalised."""
    from gpt.checkpoint import load_checkpoint
    from gpt.embeddings import SentenceEncoder
    from gpt.mlm import BertTokenizer

    ck = load_checkpoint(checkpoint, load_training_state=False)
    if getattr(ck.config, "arch", None) != "bert" or ck.tokenizer is None:
        raise ValueError(f"{checkpoint}: not a checkpoint of 'python -m gpt pretrain --arch bert'")
    return SentenceEncoder(ck.model.bert, BertTokenizer(ck.tokenizer), pooling=("mean",), normalize=True), ck


def score_encoder(encoder, remaining, questions, chunk_tokens, overlap, say):
    """(ranks, index) of one SentenceEncoder: chunk and embed the topics, embed the questions. An
    encoder that reads fewer than ``chunk_tokens`` tokens gets chunks of what it reads, and the
    overlap shrinks in proportion."""
    from gpt.retrieval import build_index

    fits = min(chunk_tokens, encoder.max_seq_length - 2)
    chunk_tokens, overlap = fits, overlap * fits // chunk_tokens

    index = build_index(encoder, remaining, chunk_tokens, overlap,
                        progress=lambda done, total: say(f"  embedding chunks {done}/{total}") if done == total else None)
    query_vectors = encoder.encode([q.text for q in questions])
    return topic_ranks(query_vectors @ np.asarray(index.vectors).T, index.chunks, questions), index


def run_experiment(out: Path, encoder_dir: str | None, fast: bool = False, chunk_tokens: int = 128,
                   overlap: int = 32, say: Callable[[str], None] = print, mlm: bool = True,
                   mlm_checkpoint: str | None = None, mlm_steps: int | None = None) -> list[dict]:
    """Build the questions and chunks, score every method, write results.csv and questions.json.

    ``mlm``: also score this project's own MLM-pretrained encoder (``mlm_checkpoint``, or pretrained
    here for ``mlm_steps`` steps into ``out / "mlm"``, reused when run again)."""
    from gpt.embeddings import SentenceEncoder

    out.mkdir(parents=True, exist_ok=True)
    documents = topic_documents(limit=12 if fast else None)
    questions, remaining = make_questions(documents)
    say(f"{len(questions)} questions from {len(documents)} pydoc topics (one held-out sentence each)")
    rows = []
    encoder = SentenceEncoder.from_pretrained(encoder_dir) if encoder_dir else None
    if encoder is not None:
        started = time.perf_counter()
        ranks, index = score_encoder(encoder, remaining, questions, chunk_tokens, overlap, say)
        rows.append({"method": f"encoder {Path(encoder_dir).name}", **summary(ranks), "chunks": len(index),
                     "seconds": round(time.perf_counter() - started, 1)})
        chunks = index.chunks
    else:
        say("no --encoder given: only the bag-of-words baseline runs (chunks of 128 words)")
        chunks = [Chunk(name, s, e, text[s:e]) for name, text in remaining.items()
                  for s, e in chunk_text(text, lambda w: 1, chunk_tokens, overlap)]
    if mlm:
        checkpoint = mlm_checkpoint or pretrain_mlm(out, remaining, fast, mlm_steps, say)
        own, ck = mlm_encoder(checkpoint)
        started = time.perf_counter()
        ranks, index = score_encoder(own, remaining, questions, chunk_tokens, overlap, say)
        cfg = ck.config
        rows.append({"method": f"own MLM encoder ({cfg.n_layers}x{cfg.emb_dim}, {ck.info.get('settings', {}).get('steps', '?')} steps)",
                     **summary(ranks), "chunks": len(index), "seconds": round(time.perf_counter() - started, 1)})
    started = time.perf_counter()
    ranks = topic_ranks(bag_of_words_scores(chunks, questions), chunks, questions)
    rows.append({"method": "bag of words (TF-IDF)", **summary(ranks), "chunks": len(chunks),
                 "seconds": round(time.perf_counter() - started, 1)})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(out / "results.csv", buffer.getvalue())
    write_text_atomic(out / "questions.json", json.dumps([q.__dict__ for q in questions], indent=1))
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'method':38s} {'recall@1':>9s} {'recall@5':>9s} {'MRR':>6s} {'chunks':>7s} {'seconds':>8s}"]
    for r in rows:
        lines.append(f"{r['method']:38s} {r['recall@1']:9.3f} {r['recall@5']:9.3f} {r['mrr']:6.3f} "
                     f"{r['chunks']:7d} {r['seconds']:8.1f}")
    return "\n".join(lines)

