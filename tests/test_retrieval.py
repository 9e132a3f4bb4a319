"""Retrieval (gpt/retrieval.py) and ``python -m gpt index`` / ``search``: chunks of at most N tokens
that overlap as asked and cover every word, exact top-k search, an index folder that round-trips
(memory-mapped), and the commands end to end with the real all-MiniLM-L6-v2 (skipped when absent)."""
import csv
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpt.embeddings import SentenceEncoder
from gpt.retrieval import Chunk, VectorIndex, build_index, chunk_text
from tests.cli_helpers import check_one_line_error, run_cli
from tests.test_embeddings import CharTokenizer, write_folder

word_lists = st.lists(st.text("abcdefghij", min_size=1, max_size=12), min_size=0, max_size=60)


def count(word: str) -> int:
    return (len(word) + 2) // 3          # a made-up tokenizer: a token per 3 characters


@given(words=word_lists, chunk_tokens=st.integers(1, 20), overlap_fraction=st.floats(0, 0.95),
       spaces=st.sampled_from([" ", "  ", "\n", " \t "]))
def test_chunks_fit_overlap_and_cover_every_word(words, chunk_tokens, overlap_fraction, spaces):
    overlap = int(overlap_fraction * chunk_tokens)
    text = spaces + spaces.join(words) + spaces
    chunks = chunk_text(text, count, chunk_tokens, overlap)
    if not words:
        assert chunks == []
        return
    covered = []
    for start, end in chunks:
        piece = text[start:end].split()
        assert text[start:end] == text[start:end].strip() and piece        # cut at word boundaries
        assert sum(count(w) for w in piece) <= chunk_tokens or len(piece) == 1
        covered.append(piece)
    # every word in order, each chunk starting after the previous one's start
    assert [s for s, _ in chunks] == sorted(set(s for s, _ in chunks))
    seen = []
    for (start, end), (next_start, _) in zip(chunks, chunks[1:]):
        shared = text[next_start:end].split() if next_start < end else []
        assert sum(count(w) for w in shared) <= overlap                        # never more overlap than asked
    for piece in covered:
        seen += piece
    assert sorted(set(seen)) == sorted(set(words)) and chunks[-1][1] == len(text.rstrip())


def test_chunks_of_a_known_text():
    text = "aaa bbb ccc ddd eee fff"                    # one token per word with count()
    spans = chunk_text(text, count, chunk_tokens=3, overlap=1)
    assert [text[s:e] for s, e in spans] == ["aaa bbb ccc", "ccc ddd eee", "eee fff"]
    assert [text[s:e] for s, e in chunk_text(text, count, 3, 0)] == ["aaa bbb ccc", "ddd eee fff"]
    with pytest.raises(ValueError, match="overlap < chunk_tokens"):
        chunk_text(text, count, 3, 3)


@given(n=st.integers(1, 40), k=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_search_is_exact_top_k(n, k, seed):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, 6)).astype(np.float32)
    chunks = [Chunk("f", i, i + 1, str(i)) for i in range(n)]
    query = rng.standard_normal(6).astype(np.float32)
    found = VectorIndex(vectors, chunks).search(query, k)
    scores = vectors @ query
    assert [c.text for _, c in found] == [str(i) for i in np.argsort(-scores, kind="stable")[:k]]
    np.testing.assert_allclose([s for s, _ in found], np.sort(scores)[::-1][:k], rtol=1e-6)


def test_index_folder_round_trips_memory_mapped(tmp_path):
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4)
    chunks = [Chunk("a.txt", 0, 5, "hello"), Chunk("b.txt", 3, 9, "wörld"), Chunk("b.txt", 7, 12, "again")]
    VectorIndex(vectors, chunks, {"dim": 4, "encoder": "/x"}).save(tmp_path / "idx")
    back = VectorIndex.load(tmp_path / "idx")
    assert isinstance(back.vectors, np.memmap) and back.vectors.dtype == np.float32
    np.testing.assert_array_equal(back.vectors, vectors)
    assert back.chunks == chunks and back.meta["encoder"] == "/x"
    record = json.loads((tmp_path / "idx" / "chunks.json").read_text(encoding="utf-8"))
    record["format"] = "something else"
    (tmp_path / "idx" / "chunks.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="not a vector index of this project"):
        VectorIndex.load(tmp_path / "idx")
    with pytest.raises(FileNotFoundError, match="vectors.npy is missing"):
        VectorIndex.load(tmp_path)


def test_build_index_embeds_each_chunk_as_the_encoder_does(tmp_path):
    write_folder(tmp_path, {"pooling_mode_mean_tokens": True}, normalize=True, max_seq_length=8)
    encoder = SentenceEncoder.from_pretrained(tmp_path, tokenizer=CharTokenizer())
    docs = {"one.txt": "ab cd ef gh ij kl", "two.txt": "mn op"}
    built = build_index(encoder, docs, chunk_tokens=50, overlap=2)
    assert built.meta["chunk_tokens"] == 6                           # capped: 8 minus [CLS] and [SEP]
    assert [c.text for c in built.chunks] == ["ab cd ef", "ef gh ij", "ij kl", "mn op"]
    assert [c.source for c in built.chunks] == ["one.txt"] * 3 + ["two.txt"]
    assert all(docs[c.source][c.start:c.end] == c.text for c in built.chunks)
    np.testing.assert_allclose(built.vectors, encoder.encode([c.text for c in built.chunks]), rtol=1e-6)


# ---------------------------------------------------------------------- the commands
def test_commands_say_what_is_wrong(tmp_path):
    code, _, err = run_cli("search", tmp_path / "nothing", "question")
    check_one_line_error(code, err, "index not found")
    code, _, err = run_cli("search", tmp_path / "nothing", "  ")
    check_one_line_error(code, err, "question is empty")
    (tmp_path / "f.txt").write_text("some text")
    code, _, err = run_cli("index", "--encoder", tmp_path / "no-encoder", "--text", tmp_path / "f.txt",
                           "--out", tmp_path / "idx")
    check_one_line_error(code, err, "encoder folder not found")
    code, _, err = run_cli("index", "--encoder", tmp_path, "--text", tmp_path / "f.txt", "--out", tmp_path / "idx",
                           "--chunk-tokens", "8", "--overlap", "8")
    check_one_line_error(code, err, "--overlap (8) must be smaller")
    code, _, err = run_cli("index", "--encoder", tmp_path, "--text", tmp_path / "f.txt", "--out", tmp_path / "f.txt")
    check_one_line_error(code, err, "is a file", "give a folder")


@pytest.fixture(scope="module")
def minilm_dir(reference_data):
    folder = reference_data / "all-MiniLM-L6-v2"
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"all-MiniLM-L6-v2 is not in {reference_data}")
    return folder


def test_index_and_search_find_the_passage_about_the_question(tmp_path, minilm_dir):
    (tmp_path / "cooking.txt").write_text(
        "To bake bread, mix flour, water, salt and yeast. Knead the dough and let it rise for an hour. "
        "Bake it in a hot oven until the crust is brown.\n\n" * 3, encoding="utf-8")
    (tmp_path / "python.txt").write_text(
        "To write text to a file in Python, open it with mode 'w' and call its write method. "
        "The with statement closes the file for you. " * 4, encoding="utf-8")
    (tmp_path / "space.txt").write_text(
        "The Moon orbits the Earth about once every 27 days. Its gravity causes the tides of the oceans. " * 4,
        encoding="utf-8")
    code, out, err = run_cli("index", "--encoder", minilm_dir, "--text", tmp_path / "cooking.txt",
                             tmp_path / "python.txt", tmp_path / "space.txt", "--out", tmp_path / "idx",
                             "--chunk-tokens", "40", "--overlap", "10")
    assert code == 0, err
    assert "chunks of 3 file(s)" in out and "embedding chunks" in err
    vectors = np.load(tmp_path / "idx" / "vectors.npy")
    assert vectors.dtype == np.float32 and vectors.shape[1] == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    for question, source in (("How do I save a string into a file?", "python.txt"),
                             ("What makes the sea rise and fall?", "space.txt"),
                             ("How long should dough rest before baking?", "cooking.txt")):
        code, out, err = run_cli("search", tmp_path / "idx", question, "-k", "2")
        assert code == 0, err
        first = out.splitlines()[0]
        assert first.startswith("1. ") and source in first, out
        assert len([line for line in out.splitlines() if line[:2] in ("1.", "2.")]) == 2


# ---------------------------------------------------------------------- the retrieval experiment
def test_questions_are_held_out_prose_sentences():
    from gpt.experiments.retrieval import make_questions, topic_documents

    documents = topic_documents(limit=6)
    assert all(name.startswith("topic:") for name, _ in documents) and len(documents) == 6
    questions, remaining = make_questions(documents, seed=0)
    assert len(questions) >= 4 and set(remaining) == {name for name, _ in documents}
    for q in questions:
        original = dict(documents)[q.topic]
        assert 10 <= len(q.text.split()) <= 40 and "::=" not in q.text
        assert q.text in " ".join(original.split()) and q.text not in " ".join(remaining[q.topic].split())
    assert [q.text for q in make_questions(documents, seed=0)[0]] == [q.text for q in questions]


def test_topic_ranks_and_bag_of_words():
    from gpt.experiments.retrieval import Question, bag_of_words_scores, summary, topic_ranks

    chunks = [Chunk("a", 0, 1, "red apples and green pears"), Chunk("a", 1, 2, "fruit from the orchard"),
              Chunk("b", 0, 1, "trains run on rails"), Chunk("c", 0, 1, "ships sail on the sea")]
    questions = [Question("green pears", "a"), Question("rails for trains", "b"), Question("the sea", "b")]
    scores = bag_of_words_scores(chunks, questions)
    assert scores.shape == (3, 4)
    ranks = topic_ranks(scores, chunks, questions)
    assert ranks[:2] == [1, 1] and ranks[2] > 1          # "the sea" is topic c's, so b ranks lower
    assert summary([1, 2, 10]) == {"recall@1": 1 / 3, "recall@5": 2 / 3, "mrr": (1 + 0.5 + 0.1) / 3}


def test_experiment_retrieval_fast_without_an_encoder(tmp_path):
    code, out, err = run_cli("experiment", "retrieval", "--fast", "--no-mlm", "--out", tmp_path / "exp")
    assert code == 0, err
    assert "bag of words (TF-IDF)" in out and (tmp_path / "exp" / "results.csv").is_file()
    assert "own MLM encoder" not in out
    code, _, err = run_cli("experiment", "retrieval", "--fast", "--encoder", tmp_path / "nothing", "--out", tmp_path / "x")
    check_one_line_error(code, err, "encoder folder not found")
    code, _, err = run_cli("experiment", "retrieval", "--fast", "--mlm-checkpoint", tmp_path / "nothing",
                           "--out", tmp_path / "x")
    check_one_line_error(code, err, "no such checkpoint")


def test_experiment_retrieval_fast_pretrains_its_own_encoder_then_reuses_it(tmp_path):
    """The own MLM encoder: pretrained inside the experiment on the topics without their held-out
    sentences, scored with mean pooling; a second run (or --mlm-checkpoint) reuses the checkpoint."""
    code, out, err = run_cli("experiment", "retrieval", "--fast", "--out", tmp_path / "exp")
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "exp" / "results.csv").open(encoding="utf-8")))
    assert [r["method"] for r in rows] == ["own MLM encoder (1x32, 3 steps)", "bag of words (TF-IDF)"]
    for r in rows:
        assert 0 <= float(r["recall@1"]) <= float(r["recall@5"]) <= 1 and 0 < float(r["mrr"]) <= 1
    from gpt.experiments.retrieval import topic_documents

    questions = json.loads((tmp_path / "exp" / "questions.json").read_text(encoding="utf-8"))
    corpus = " ".join((tmp_path / "exp" / "mlm-corpus.txt").read_text(encoding="utf-8").split())
    original = " ".join(" ".join(text.split()) for _, text in topic_documents(limit=12))
    assert questions
    for q in questions:   # held out: each question once less (a topic may repeat a sentence)
        assert corpus.count(q["text"]) == original.count(q["text"]) - 1, q
    code, out, err = run_cli("experiment", "retrieval", "--fast", "--out", tmp_path / "exp")
    assert code == 0, err
    assert "reusing" in out and "pretrain --arch" not in out
    again = list(csv.DictReader((tmp_path / "exp" / "results.csv").open(encoding="utf-8")))
    assert again == [dict(r, seconds=a["seconds"]) for r, a in zip(rows, again)]
    code, _, err = run_cli("experiment", "retrieval", "--fast", "--mlm-checkpoint", tmp_path / "exp" / "mlm",
                           "--out", tmp_path / "other")
    assert code == 0, err
    assert not (tmp_path / "other" / "mlm").exists()


def test_experiment_retrieval_finishes_an_interrupted_pretraining(tmp_path, monkeypatch):
    from tests.cli_helpers import interrupt_at

    with monkeypatch.context() as m:
        interrupt_at(m, 2)
        code, _, err = run_cli("experiment", "retrieval", "--fast", "--out", tmp_path / "exp")
    check_one_line_error(code, err, "pretraining the MLM encoder failed")
    code, out, err = run_cli("experiment", "retrieval", "--fast", "--out", tmp_path / "exp")
    assert code == 0, err
    assert "pretrain --resume" in out and "own MLM encoder (1x32, 3 steps)" in out


def test_experiment_retrieval_fast_with_minilm(tmp_path, minilm_dir):
    code, out, err = run_cli("experiment", "retrieval", "--fast", "--encoder", minilm_dir, "--out", tmp_path / "exp")
    assert code == 0, err
    rows = list(csv.DictReader((tmp_path / "exp" / "results.csv").open(encoding="utf-8")))
    assert [r["method"] for r in rows] == ["encoder all-MiniLM-L6-v2", "own MLM encoder (1x32, 3 steps)",
                                           "bag of words (TF-IDF)"]
    for r in rows:
        assert 0 <= float(r["recall@1"]) <= float(r["recall@5"]) <= 1 and 0 < float(r["mrr"]) <= 1
    assert float(rows[0]["mrr"]) > 0.5                     # far above chance (1/12 topics: MRR ~0.26)
