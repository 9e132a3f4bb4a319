"""Retrieval-augmented generation (gpt/rag.py, ``generate``/``chat --rag``): the documented prompt
formats; end to end, the model reads exactly the passages the index's encoder finds, followed by
the prompt (generate) or inside the user message (chat), with --show-context printing them; and
one-line errors for a missing, damaged or orphaned index. A tiny sentence-transformers folder
(random BERT, WordPiece tokenizer.json) written here, plus the real all-MiniLM-L6-v2 when present."""
import json
import shutil

import pytest

import minigrad as mg
from gpt.architectures.bert import BertConfig, BertModel, bert_state_to_hf
from gpt.chat import ChatSession
from gpt.checkpoint import save_checkpoint
from gpt.finetune.instruct import load_instruct_checkpoint, save_instruct_checkpoint
from gpt.model import GPTConfig, GPTModel
from gpt.rag import CHAT_INSTRUCTION, Retriever, chat_message, describe, generate_prompt
from gpt.retrieval import Chunk
from gpt.safetensors import save_file
from gpt.tokenizer import BPETokenizer
from tests.cli_helpers import check_one_line_error, run_cli

LETTERS = "abcdefghijklmnopqrstuvwxyz"
DOCUMENTS = {
    "bread.txt": "Mix flour, water and yeast. Knead the dough, let it rise, then bake it until brown.",
    "files.txt": "Open a file with mode w to write text to it; the with statement closes it again.",
    "moon.txt": "The moon orbits the earth every month and its pull raises the tides of the sea.",
}


def test_the_prompt_formats_are_the_documented_ones():
    hits = [(0.9, Chunk("a.txt", 0, 12, "First\n passage.")), (0.5, Chunk("dir/b.txt", 4, 9, "Second"))]
    assert generate_prompt("Once", hits) == "[1] (a.txt) First passage.\n[2] (dir/b.txt) Second\n\nOnce"
    assert chat_message("Why?", hits) == (f"{CHAT_INSTRUCTION}\n\n[1] (a.txt) First passage.\n"
                                           "[2] (dir/b.txt) Second\n\nQuestion: Why?")
    assert generate_prompt("Once", []) == "Once" and chat_message("Why?", []) == "Why?"
    shown = describe(hits).splitlines()
    assert shown[0] == "retrieved 2 passages:" and shown[1].split()[:4] == ["[1]", "0.9000", "a.txt", "[0:12]"]


def write_encoder(folder):
    """A sentence-transformers folder: random 2-layer BERT, mean pooling, normalised, and a WordPiece
    tokenizer.json whose vocabulary is the letters (whole and ##), a few marks and BERT's specials."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *LETTERS, *("##" + c for c in LETTERS), ".", ",", ";", "?"]
    ids = {t: i for i, t in enumerate(vocab)}
    mg.manual_seed(1)
    cfg = BertConfig(vocab_size=len(vocab), context_length=64, emb_dim=16, n_heads=2, n_layers=2, hidden_dim=32)
    folder.mkdir()
    save_file(bert_state_to_hf(BertModel(cfg).eval()), folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(cfg.to_hf()))
    special = lambda t: {"id": ids[t], "content": t, "special": True, "single_word": False, "lstrip": False,  # noqa: E731
                         "rstrip": False, "normalized": False}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [special(t) for t in vocab[:5]],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
                           "pair": [],
                           "special_tokens": {t: {"id": t, "ids": [ids[t]], "tokens": [t]} for t in ("[CLS]", "[SEP]")}},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": ids},
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 16,
                                                                  "pooling_mode_mean_tokens": True}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    return folder


def build_index(encoder, folder, out):
    files = []
    for name, text in DOCUMENTS.items():
        (folder / name).write_text(text, encoding="utf-8")
        files.append(folder / name)
    code, stdout, stderr = run_cli("index", "--encoder", encoder, "--text", *files, "--out", out,
                                   "--chunk-tokens", 24, "--overlap", 4, "--quiet")
    assert code == 0, stderr
    return out


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    base = tmp_path_factory.mktemp("rag")
    return build_index(write_encoder(base / "encoder"), base, base / "idx")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random GPT with a byte-level tokenizer (no merges), saved as pretrain does."""
    mg.manual_seed(0)
    model = GPTModel(GPTConfig(vocab_size=257, context_length=512, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0))
    folder = tmp_path_factory.mktemp("gen") / "run"
    save_checkpoint(folder, model, tokenizer=BPETokenizer([], {"<|endoftext|>": 256}))
    return folder


GENERATE = ("--max-new-tokens", 6, "--temperature", 0)


def test_generate_reads_the_passages_then_the_prompt(index, checkpoint):
    prompt = "How do I write a file?"
    code, stdout, stderr = run_cli("generate", "--checkpoint", checkpoint, "--prompt", prompt, *GENERATE,
                                   "--rag", index, "--rag-k", 2, "--show-context")
    assert code == 0, stderr
    hits = Retriever.open(index).retrieve(prompt, 2)
    assert len(hits) == 2 and stderr.strip() == describe(hits)
    assert {c.source.rsplit("/", 1)[-1] for _, c in hits} <= set(DOCUMENTS)
    model_text = generate_prompt(prompt, hits)
    code, plain, _ = run_cli("generate", "--checkpoint", checkpoint, "--prompt", model_text, *GENERATE)
    assert code == 0 and plain.startswith(model_text)
    assert stdout == prompt + plain[len(model_text):]            # the prompt echoed, the continuation of it all
    # without --show-context nothing is printed besides the text
    assert run_cli("generate", "--checkpoint", checkpoint, "--prompt", prompt, *GENERATE, "--rag", index,
                   "--rag-k", 2) == (0, stdout, "")


def test_chat_puts_the_passages_in_each_user_message(index, tmp_path):
    from gpt.cli.chat import _one_line
    from gpt.finetune.instruct import demo_tokenizer

    mg.manual_seed(0)
    model = GPTModel(GPTConfig(vocab_size=demo_tokenizer().n_vocab, context_length=256, emb_dim=32, n_heads=2,
                               n_layers=2, drop_rate=0.0))
    save_instruct_checkpoint(tmp_path / "ck", model, tokenizer=demo_tokenizer())
    questions = ["When is the moon full?", "What goes into bread?"]
    code, stdout, stderr = run_cli("chat", "--checkpoint", tmp_path / "ck", "--max-new-tokens", 5, "--rag", index,
                                   "--rag-k", 1, "--show-context", stdin="\n".join(questions) + "\n")
    assert code == 0, stderr
    retriever = Retriever.open(index)
    hits = [retriever.retrieve(q, 1) for q in questions]
    assert stderr.strip() == describe(hits[0]) + "\n" + describe(hits[1])
    ck = load_instruct_checkpoint(tmp_path / "ck")
    session = ChatSession(ck.model, ck.tokenizer, "alpaca", max_new_tokens=5)
    expected = ["".join(session.send(chat_message(q, h))).strip() for q, h in zip(questions, hits)]
    assert stdout == "".join(_one_line(a) + "\n" for a in expected)


def test_a_moved_encoder_is_named_and_found_with_encoder(index, checkpoint, tmp_path):
    moved = tmp_path / "idx"
    shutil.copytree(index, moved)
    record = json.loads((moved / "chunks.json").read_text(encoding="utf-8"))
    shutil.copytree(record["encoder"], tmp_path / "elsewhere")
    record["encoder"] = str(tmp_path / "gone")
    (moved / "chunks.json").write_text(json.dumps(record), encoding="utf-8")
    argv = ("generate", "--checkpoint", checkpoint, "--prompt", "Hi", *GENERATE, "--rag", moved)
    code, _, stderr = run_cli(*argv)
    check_one_line_error(code, stderr, "gone", "--encoder")
    assert run_cli(*argv, "--encoder", tmp_path / "elsewhere")[0] == 0


def damage(folder):
    (folder / "vectors.npy").write_bytes((folder / "vectors.npy").read_bytes()[:100])


def garble(folder):
    (folder / "chunks.json").write_text("{not json", encoding="utf-8")


def other_format(folder):
    record = json.loads((folder / "chunks.json").read_text(encoding="utf-8"))
    (folder / "chunks.json").write_text(json.dumps(dict(record, format="x")), encoding="utf-8")


def not_an_object(folder):
    (folder / "chunks.json").write_text("[]", encoding="utf-8")


@pytest.mark.parametrize("spoil, words", [
    (lambda f: shutil.rmtree(f), ["index not found"]),
    (lambda f: (f / "vectors.npy").unlink(), ["vectors.npy is missing"]),
    (damage, ["damaged", "python -m gpt index"]),
    (garble, ["damaged", "python -m gpt index"]),
    (other_format, ["not a vector index"]),
    (not_an_object, ["not a vector index"]),
])
@pytest.mark.parametrize("command", ["generate", "chat"])
def test_a_missing_or_damaged_index_is_a_one_line_error(index, checkpoint, tmp_path, spoil, words, command):
    shutil.copytree(index, tmp_path / "idx")
    spoil(tmp_path / "idx")
    code, _, stderr = run_cli(command, "--checkpoint", checkpoint, "--prompt", "Hi", "--rag", tmp_path / "idx")
    check_one_line_error(code, stderr, *words)


@pytest.mark.parametrize("flag", [["--show-context"], ["--encoder", "x"]])
def test_rag_options_need_rag(checkpoint, flag):
    code, _, stderr = run_cli("generate", "--checkpoint", checkpoint, "--prompt", "Hi", *flag)
    check_one_line_error(code, stderr, flag[0], "--rag")


def test_with_minilm_the_passage_about_the_question_comes_first(reference_data, checkpoint, tmp_path):
    minilm = reference_data / "all-MiniLM-L6-v2"
    if not (minilm / "model.safetensors").is_file():
        pytest.skip(f"all-MiniLM-L6-v2 is not in {reference_data}")
    index = build_index(minilm, tmp_path, tmp_path / "idx")
    for question, source in (("How do I save text into a file?", "files.txt"),
                             ("What makes the sea rise and fall?", "moon.txt")):
        code, _, stderr = run_cli("generate", "--checkpoint", checkpoint, "--prompt", question, *GENERATE,
                                  "--rag", index, "--rag-k", 3, "--show-context")
        assert code == 0, stderr
        first = stderr.splitlines()[1]
        assert first.startswith("  [1] ") and f"{tmp_path / source} [" in first, stderr


@pytest.mark.parametrize("command", [["generate", "--prompt", "Hi"], ["chat", "--style", "chatml", "--prompt", "Hi"]])
def test_hf_with_an_encoder_folder_says_it_is_not_a_text_writer(tmp_path, command):
    write_encoder(tmp_path / "enc")          # gpt.hf.load_model reads it (as a BertModel), but it writes no text
    code, _, stderr = run_cli(command[0], "--hf", tmp_path / "enc", *command[1:])
    check_one_line_error(code, stderr, "holds an encoder", "index --encoder")
