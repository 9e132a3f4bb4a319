"""Tests for gpt.chat and ``python -m gpt chat``: each style's exact text (written out here from the
published templates), the same text as ``transformers``' ``apply_chat_template`` running Jinja
templates of the real ones' shape, style detection, streaming decode, and ChatSession on a tiny
random GPT: the cached conversation gives the ids of a run without cache (greedy and seeded),
stop tokens, reset, a new system message, a Ctrl-C, context overflow; then the CLI over a pipe."""
import json
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
from gpt.chat import (
    STYLES,
    ChatSession,
    ContextFullError,
    TextStream,
    apply_chat_template,
    detect_chat_style,
    encode_chat,
    eos_token_ids,
    read_chat_template,
    stop_token_ids,
)
from gpt.finetune.instruct import RESPONSE_HEADER, demo_tokenizer, format_input, save_instruct_checkpoint
from gpt.generate import encode_as_text, generate, sample_next
from gpt.model import GPTConfig, GPTModel
from gpt.tokenizer import BPETokenizer
from tests.cli_helpers import check_one_line_error, run_cli, subprocess_env

PREAMBLE = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.")
SYSTEM = {"role": "system", "content": "You are terse."}
HI, HELLO = {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}
AGAIN = {"role": "user", "content": "And again?"}

# ==================================================================================================
# Each style's text, written out by hand
# ==================================================================================================


def test_chatml_with_and_without_a_system_message():
    assert apply_chat_template([HI], "chatml") == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    assert apply_chat_template([SYSTEM, HI, HELLO, AGAIN], "chatml") == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nAnd again?<|im_end|>\n<|im_start|>assistant\n")
    assert apply_chat_template([HI], "chatml", add_generation_prompt=False) == "<|im_start|>user\nHi<|im_end|>\n"


def test_chatml_thinking():
    # enable_thinking=False: the generation prompt holds an empty think block (True or absent: none)
    assert apply_chat_template([HI], "chatml", enable_thinking=False) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert apply_chat_template([HI], "chatml", enable_thinking=True) == apply_chat_template([HI], "chatml")
    thought = {"role": "assistant", "content": "<think>\nLet me see.\n</think>\n\nHello!"}
    # an answer before the last user message loses its think block ...
    assert apply_chat_template([HI, thought, AGAIN], "chatml") == apply_chat_template([HI, HELLO, AGAIN], "chatml")
    # ... the last answer after it keeps it, and gets an empty one if it had none
    assert apply_chat_template([HI, thought], "chatml", add_generation_prompt=False) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nLet me see.\n</think>\n\nHello!<|im_end|>\n")
    assert apply_chat_template([HI, HELLO], "chatml", add_generation_prompt=False) == (
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>\n")
    # reasoning_content is used as it is, the content left alone
    given = {"role": "assistant", "content": "Hello!", "reasoning_content": "\nA greeting.\n"}
    assert apply_chat_template([HI, given], "chatml", add_generation_prompt=False).endswith(
        "<|im_start|>assistant\n<think>\nA greeting.\n</think>\n\nHello!<|im_end|>\n")


def test_llama3_text_and_the_dated_system_block_of_llama_3_2():
    assert apply_chat_template([HI], "llama3") == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert apply_chat_template([SYSTEM, {"role": "user", "content": "  Hi \n"}, HELLO, AGAIN], "llama3") == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nAnd again?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    dated = dict(cutting_knowledge_date="December 2023", date_string="26 Jul 2024")
    assert apply_chat_template([HI], "llama3", **dated) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
    assert apply_chat_template([SYSTEM, HI], "llama3", **dated).startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nYou are terse.<|eot_id|>")
    # without date_string: today's, written as "%d %b %Y"
    text = apply_chat_template([HI], "llama3", cutting_knowledge_date="December 2023")
    import time
    assert f"Today Date: {time.strftime('%d %b %Y')}\n" in text


def test_gemma_folds_the_system_message_into_the_first_turn():
    assert apply_chat_template([HI], "gemma") == "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert apply_chat_template([SYSTEM, HI, {"role": "assistant", "content": " Hello! "}, AGAIN], "gemma") == (
        "<bos><start_of_turn>user\nYou are terse.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
        "<start_of_turn>user\nAnd again?<end_of_turn>\n<start_of_turn>model\n")
    with pytest.raises(ValueError, match="alternate"):
        apply_chat_template([HI, AGAIN], "gemma")
    with pytest.raises(ValueError, match="alternate"):
        apply_chat_template([HELLO], "gemma")


def test_alpaca_is_chapter_7s_prompt():
    entry = {"instruction": "Convert the word to upper case.", "input": "lion"}
    expected = (f"{PREAMBLE}\n\n### Instruction:\nConvert the word to upper case.\n\n### Input:\nlion"
                "\n\n### Response:\n")
    message = {"role": "user", "content": entry["instruction"], "input": "lion"}
    assert apply_chat_template([message], "alpaca") == expected == format_input(entry) + RESPONSE_HEADER
    assert apply_chat_template([message], "alpaca", add_generation_prompt=False) == format_input(entry)
    assert apply_chat_template([message, {"role": "assistant", "content": "LION"}], "alpaca") == expected + "LION"
    assert apply_chat_template([SYSTEM, HI], "alpaca") == "You are terse.\n\n### Instruction:\nHi\n\n### Response:\n"
    with pytest.raises(ValueError, match="one instruction"):
        apply_chat_template([HI, HELLO, AGAIN], "alpaca")


@pytest.mark.parametrize("messages, style, options, words", [
    ([HI], "nope", {}, ["unknown chat style", "chatml"]),
    ([HI], "gemma", {"enable_thinking": False}, ["gemma", "enable_thinking", "no options"]),
    ([HI], "llama3", {"thinking": 1}, ["thinking", "cutting_knowledge_date"]),
    ([], "chatml", {}, ["no messages"]),
    ("Hi", "chatml", {}, ["list"]),
    ([{"role": "user"}], "chatml", {}, ["'role' and 'content'"]),
    ([{"role": "tool", "content": "x"}], "chatml", {}, ["'tool'", "system, user, assistant"]),
    ([{"role": "user", "content": 3}], "llama3", {}, ["string"]),
])
def test_bad_messages_and_options(messages, style, options, words):
    with pytest.raises(ValueError) as e:
        apply_chat_template(messages, style, **options)
    for word in words:
        assert word in str(e.value)


# ==================================================================================================
# The same text as transformers, running Jinja templates of the real ones' shape
# ==================================================================================================

# Written for these tests after the templates of Qwen3, Llama 3.0, Llama 3.2 and Gemma 3 (same
# markers, same trimming and think-block rules; tool calls left out).
JINJA = {
    "chatml": (
        "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
        "{%- endif %}"
        "{%- set ns = namespace(found=false, last_query=messages|length - 1) %}"
        "{%- for m in messages[::-1] %}{%- if not ns.found and m.role == 'user' and not (m.content.startswith("
        "'<tool_response>') and m.content.endswith('</tool_response>')) %}{%- set ns.found = true %}"
        "{%- set ns.last_query = messages|length - 1 - loop.index0 %}{%- endif %}{%- endfor %}"
        "{%- for m in messages %}"
        "{%- if m.role == 'user' or (m.role == 'system' and not loop.first) %}"
        "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
        "{%- elif m.role == 'assistant' %}{%- set content = m.content %}{%- set reasoning = '' %}"
        "{%- if m.reasoning_content is string %}{%- set reasoning = m.reasoning_content %}"
        "{%- elif '</think>' in content %}"
        "{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}"
        "{%- set content = content.split('</think>')[-1].lstrip('\\n') %}{%- endif %}"
        "{%- if loop.index0 > ns.last_query and (loop.last or reasoning) %}"
        "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + "
        "content.lstrip('\\n') }}"
        "{%- else %}{{- '<|im_start|>assistant\\n' + content }}{%- endif %}{{- '<|im_end|>\\n' }}"
        "{%- endif %}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
        "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}"
        "{%- endif %}{%- endif %}"),
    "llama3": (
        "{%- for m in messages %}{%- set text = '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + "
        "m.content | trim + '<|eot_id|>' %}{%- if loop.first %}{%- set text = bos_token + text %}{%- endif %}"
        "{{- text }}{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"),
    "llama3.2": (
        "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = strftime_now('%d %b %Y') %}"
        "{%- endif %}"
        "{%- if messages[0].role == 'system' %}{%- set system = messages[0].content | trim %}"
        "{%- set messages = messages[1:] %}{%- else %}{%- set system = '' %}{%- endif %}"
        "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}{{- 'Cutting Knowledge Date: December 2023\\n' }}"
        "{{- 'Today Date: ' + date_string + '\\n\\n' }}{{- system }}{{- '<|eot_id|>' }}"
        "{%- for m in messages %}"
        "{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content | trim + '<|eot_id|>' }}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"),
    "gemma": (
        "{{ bos_token }}"
        "{%- if messages[0].role == 'system' -%}{%- set prefix = messages[0].content + '\\n\\n' -%}"
        "{%- set turns = messages[1:] -%}{%- else -%}{%- set prefix = '' -%}{%- set turns = messages -%}{%- endif -%}"
        "{%- for m in turns -%}"
        "{%- if (m.role == 'user') != (loop.index0 % 2 == 0) -%}{{ raise_exception('roles must alternate') }}"
        "{%- endif -%}"
        "{{ '<start_of_turn>' + ('model' if m.role == 'assistant' else m.role) + '\\n' + "
        "(prefix if loop.first else '') }}{{ m.content | trim }}{{ '<end_of_turn>\\n' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"),
}
BOS = {"chatml": None, "llama3": "<|begin_of_text|>", "llama3.2": "<|begin_of_text|>", "gemma": "<bos>"}
OURS = {"chatml": ("chatml", {}), "llama3": ("llama3", {}), "gemma": ("gemma", {}),
        "llama3.2": ("llama3", {"cutting_knowledge_date": "December 2023"})}

THOUGHT = {"role": "assistant", "content": "<think>\nHm.\n\n</think>\n\n Sure: 4."}
CONVERSATIONS = [
    [HI],
    [SYSTEM, HI],
    [HI, HELLO, AGAIN],
    [SYSTEM, HI, HELLO, AGAIN],
    [SYSTEM, {"role": "user", "content": " spaced \n"}, THOUGHT, {"role": "user", "content": "2 + 2?"}, THOUGHT],
    [HI, THOUGHT],
    [{"role": "user", "content": "Grüße 👋\nzwei Zeilen"}, {"role": "assistant", "content": "Hallo\n"}],
]


def hf_tokenizer(template: str, bos):
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tokens = {"<unk>": 0, **({bos: 1} if bos else {})}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(tokens, unk_token="<unk>")),
                                   chat_template=template, bos_token=bos, unk_token="<unk>")


@pytest.mark.parametrize("template", list(JINJA))
@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_same_text_as_transformers(template, conversation, generation_prompt):
    messages = CONVERSATIONS[conversation]
    style, options = OURS[template]
    extra = [{}]
    if template == "chatml":
        extra = [{}, {"enable_thinking": False}, {"enable_thinking": True}]
    if template == "llama3.2":
        extra = [{"date_string": "26 Jul 2024"}, {"date_string": "05 Dec 2026"}]
    tokenizer = hf_tokenizer(JINJA[template], BOS[template])
    for kwargs in extra:
        expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                                 **kwargs)
        assert apply_chat_template(messages, style, generation_prompt, **options, **kwargs) == expected, kwargs


def test_llama3_2_today_is_the_date_transformers_writes():
    tokenizer = hf_tokenizer(JINJA["llama3.2"], BOS["llama3.2"])
    expected = tokenizer.apply_chat_template([HI], tokenize=False, add_generation_prompt=True)
    assert apply_chat_template([HI], "llama3", cutting_knowledge_date="December 2023") == expected


# ==================================================================================================
# Detecting the style of a model folder
# ==================================================================================================


def write_json(path, data):
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("template, style, options", [
    (JINJA["chatml"], "chatml", {}),
    (JINJA["llama3"], "llama3", {}),
    (JINJA["llama3.2"], "llama3", {"cutting_knowledge_date": "December 2023"}),
    (JINJA["gemma"], "gemma", {}),
    ("{{ messages[0].content }}\n\n### Instruction:\n...", "alpaca", {}),
])
def test_style_from_the_template_in_tokenizer_config(tmp_path, template, style, options):
    write_json(tmp_path / "tokenizer_config.json", {"chat_template": template, "bos_token": "<s>"})
    assert read_chat_template(tmp_path) == template
    assert detect_chat_style(tmp_path) == (style, options)
    assert detect_chat_style(tmp_path / "tokenizer_config.json") == (style, options)    # a file in the folder


def test_other_places_a_template_is_kept(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "chat_template.jinja").write_text(JINJA["gemma"], encoding="utf-8")
    write_json(tmp_path / "a" / "tokenizer_config.json", {"chat_template": JINJA["chatml"]})   # .jinja wins
    assert detect_chat_style(tmp_path / "a") == ("gemma", {})
    (tmp_path / "b").mkdir()
    write_json(tmp_path / "b" / "chat_template.json", {"chat_template": JINJA["llama3"]})
    assert detect_chat_style(tmp_path / "b") == ("llama3", {})
    (tmp_path / "c").mkdir()
    write_json(tmp_path / "c" / "tokenizer_config.json", {"chat_template": [
        {"name": "tool_use", "template": JINJA["gemma"]}, {"name": "default", "template": JINJA["chatml"]}]})
    assert detect_chat_style(tmp_path / "c") == ("chatml", {})


@pytest.mark.parametrize("config, style", [
    ({"model_type": "qwen3"}, "chatml"), ({"model_type": "qwen3_moe"}, "chatml"),
    ({"model_type": "gemma3_text"}, "gemma"),
    ({"model_type": "llama", "vocab_size": 128256}, "llama3"),
])
def test_style_from_config_json_without_a_template(tmp_path, config, style):
    write_json(tmp_path / "config.json", config)
    write_json(tmp_path / "tokenizer_config.json", {"bos_token": "<s>"})
    assert detect_chat_style(tmp_path) == (style, {})


@pytest.mark.parametrize("files, words", [
    ({}, ["no chat template", "--style", "chatml, llama3, gemma, alpaca"]),
    ({"config.json": {"model_type": "gpt2"}}, ["no chat template", "'gpt2'", "--style"]),
    ({"config.json": {"model_type": "llama", "vocab_size": 32000}}, ["'llama'", "--style"]),
    ({"tokenizer_config.json": {"chat_template": "{{ messages }}"}}, ["none of the known formats", "--style"]),
])
def test_a_folder_that_does_not_tell_is_a_one_line_error(tmp_path, files, words):
    for name, data in files.items():
        write_json(tmp_path / name, data)
    with pytest.raises(ValueError) as e:
        detect_chat_style(tmp_path)
    assert "\n" not in str(e.value) and str(tmp_path) in str(e.value)
    for word in words:
        assert word in str(e.value)


def test_damaged_json_names_the_file(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ValueError, match="tokenizer_config.json: not valid JSON"):
        detect_chat_style(tmp_path)


def test_eos_ids_of_a_folder_and_stop_ids(tmp_path):
    write_json(tmp_path / "generation_config.json", {"eos_token_id": [7, 3]})
    write_json(tmp_path / "config.json", {"eos_token_id": 3})
    assert eos_token_ids(tmp_path) == [7, 3]
    tok = chat_tokenizer()
    im_end, eot = tok.special_tokens["<|im_end|>"], tok.special_tokens["<|endoftext|>"]
    assert stop_token_ids("chatml", tok) == [im_end, eot]
    assert stop_token_ids("chatml", tok, eos_token_ids(tmp_path)) == [im_end, eot, 7, 3]
    assert stop_token_ids("gemma", tok) == []                   # this vocabulary has none of gemma's


# ==================================================================================================
# Streaming text
# ==================================================================================================


def test_text_stream_prints_characters_split_across_tokens_once_whole():
    tok = BPETokenizer([])                                      # bytes only: "😀" is four tokens
    text = "héllo 😀 wörld ✓"
    ids = tok.encode(text)
    stream = TextStream(tok)
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)
    assert pieces[ids.index(0xF0) : ids.index(0xF0) + 4] == ["", "", "", "😀"]


def test_text_stream_flushes_an_unfinished_character():
    tok = BPETokenizer([])
    stream = TextStream(tok)
    assert [stream.push(i) for i in [104, 0xF0, 0x9F]] == ["h", "", ""]
    assert stream.flush() == "\ufffd"


# ==================================================================================================
# ChatSession on a tiny random GPT
# ==================================================================================================

CHATML_SPECIAL = {"<|endoftext|>": 256, "<|im_start|>": 257, "<|im_end|>": 258}
LLAMA_SPECIAL = {"<|begin_of_text|>": 256, "<|start_header_id|>": 257, "<|end_header_id|>": 258, "<|eot_id|>": 259,
                 "<|end_of_text|>": 260}
GEMMA_SPECIAL = {"<bos>": 256, "<start_of_turn>": 257, "<end_of_turn>": 258, "<eos>": 259}


def chat_tokenizer(special=None):
    return BPETokenizer([], CHATML_SPECIAL if special is None else special)


def tiny_model(vocab_size, context_length=256, seed=0):
    mg.manual_seed(seed)
    return GPTModel(GPTConfig(vocab_size=vocab_size, context_length=context_length, emb_dim=32, n_heads=2,
                              n_layers=2, drop_rate=0.0))


class Scripted:
    """A model that is ``model`` except that each answer is forced: after each forward pass of more
    than one token (a prefill), the n-th token written is ``script[n]`` (its logit raised above all
    others), then ``stop``; with ``script=None`` the model writes ``n`` tokens of its own first."""

    def __init__(self, model, stop, script=None, n=None):
        self.model, self.stop, self.script, self.count = model, stop, script, 0
        self.n = len(script) if script is not None else n

    def __getattr__(self, name):
        return getattr(self.model, name)

    def __call__(self, ids, kv_cache=None, last_only=False):
        ids = np.asarray(ids)
        self.count = 0 if ids.shape[1] > 1 else self.count + 1
        logits = self.model(ids, kv_cache=kv_cache, last_only=last_only)
        forced = self.stop if self.count >= self.n else (self.script[self.count] if self.script else None)
        if forced is not None:
            logits.data[:, -1, forced] = logits.data.max() + 100.0
        return logits


def prompts_of(session):
    """The ids the model read before each answer, rebuilt from the session's turns (with its
    system message of now)."""
    return [session._conversation_ids(session.turns[:k], session.turns[k].message) for k in range(len(session.turns))]


def reference_answer(model, prompt, stop_ids, max_new, temperature=0.0, top_k=None, rng=None):
    """The answer to ``prompt`` (ids) without a cache: the whole text is read again for every token."""
    ids, answer = list(prompt), []
    with mg.no_grad():
        for _ in range(max_new):
            logits = model(np.asarray([ids]))
            t = int(sample_next(logits.data[:, -1, :], temperature, top_k, None, [rng])[0])
            if t in stop_ids:
                return answer, t
            answer.append(t)
            ids.append(t)
    return answer, None


@pytest.mark.parametrize("temperature, top_k", [(0.0, None), (1.0, None), (0.8, 20)])
@pytest.mark.parametrize("style, special", [("chatml", CHATML_SPECIAL), ("llama3", LLAMA_SPECIAL),
                                            ("gemma", GEMMA_SPECIAL)])
def test_the_cached_conversation_answers_as_a_run_without_cache(style, special, temperature, top_k):
    tok = chat_tokenizer(special)
    model = tiny_model(tok.n_vocab)
    session = ChatSession(model, tok, style, system="Be brief.", temperature=temperature, top_k=top_k, seed=7,
                          max_new_tokens=6)
    cached_before = []
    for text in ["Hi there", "Grüße 👋", "and a third one"]:
        cached_before.append(session.cached_tokens)
        "".join(session.send(text))
        s = session.last_stats
        assert s.reused_tokens == cached_before[-1]              # nothing already read is read again ...
        assert s.prefill_tokens == len(session._conversation_ids(session.turns[:-1], session.turns[-1].message)) \
            - s.reused_tokens                                   # ... and everything else is read once
    rng = np.random.default_rng(7)
    for prompt, turn in zip(prompts_of(session), session.turns):
        answer, stop = reference_answer(model, prompt, session.stop_ids, 6, temperature, top_k, rng)
        assert (answer, stop) == (turn.answer_ids, turn.stop_id)
    assert cached_before[1] > 0 and cached_before[2] > cached_before[1]


@pytest.mark.parametrize("style, special, end", [("chatml", CHATML_SPECIAL, "<|im_end|>"),
                                                 ("llama3", LLAMA_SPECIAL, "<|eot_id|>"),
                                                 ("gemma", GEMMA_SPECIAL, "<end_of_turn>")])
def test_stop_tokens_end_the_answer_and_the_ids_spell_the_template(style, special, end):
    tok = chat_tokenizer(special)
    model = Scripted(tiny_model(tok.n_vocab), tok.special_tokens[end], script=tok.encode("Fine."))
    session = ChatSession(model, tok, style, system="Be brief.", max_new_tokens=20)
    for text in ["Hi", "More"]:
        assert "".join(session.send(text)) == "Fine."
        assert session.last_stats.stop == "stop token" and session.last_stats.decode_tokens == 6
        assert session.turns[-1].stop_id == tok.special_tokens[end]
    # what the model read and wrote is the template's text of the conversation, marker for marker
    rendered = apply_chat_template(session.messages[:-1], style) + "Fine." + end
    assert session.conversation_ids() == encode_chat(tok, rendered)
    if style != "chatml":        # (chatml writes the last answer with an empty think block)
        assert tok.decode(session.conversation_ids()) == apply_chat_template(
            session.messages, style, add_generation_prompt=False).removesuffix("\n")


def test_the_stop_token_ends_the_answer_before_max_new_tokens_and_stays_out_of_the_text():
    tok = chat_tokenizer()
    model = Scripted(tiny_model(tok.n_vocab), tok.special_tokens["<|endoftext|>"], n=2)
    session = ChatSession(model, tok, "chatml", max_new_tokens=50)
    text = "".join(session.send("Hi"))
    assert session.last_stats.stop == "stop token" and session.last_stats.decode_tokens == 3
    assert text == tok.decode(session.turns[0].answer_ids) and "<|endoftext|>" not in text
    # <|endoftext|> is not how the template ends an answer: the next turn has <|im_end|> there instead
    "".join(session.send("Again"))
    first = session.turns[0].answer
    assert tok.decode(session.conversation_ids()) == apply_chat_template(session.messages[:-1], "chatml") + \
        session.turns[1].answer + "<|endoftext|>"
    assert "<|im_start|>assistant\n" + first + "<|im_end|>\n<|im_start|>user\nAgain" in tok.decode(
        session.conversation_ids())


def test_reset_keeps_the_cached_system_prompt_and_answers_as_a_new_session():
    tok = chat_tokenizer()
    model = tiny_model(tok.n_vocab)
    session = ChatSession(model, tok, "chatml", system="You are a cat.", max_new_tokens=5)
    "".join(session.send("First question"))
    session.reset()
    assert session.turns == [] and session.messages == [{"role": "system", "content": "You are a cat."}]
    answer = "".join(session.send("Second question"))
    system_ids = encode_chat(tok, "<|im_start|>system\nYou are a cat.<|im_end|>\n<|im_start|>user\n")
    assert session.last_stats.reused_tokens == len(system_ids)
    fresh = ChatSession(model, tok, "chatml", system="You are a cat.", max_new_tokens=5)
    assert "".join(fresh.send("Second question")) == answer
    assert fresh.turns[0].answer_ids == session.turns[0].answer_ids


def test_a_new_system_message_rereads_the_conversation():
    tok = chat_tokenizer(LLAMA_SPECIAL)
    model = tiny_model(tok.n_vocab)
    session = ChatSession(model, tok, "llama3", max_new_tokens=4)
    for text in ["one", "two"]:
        "".join(session.send(text))
    session.system = "Answer in French."
    "".join(session.send("three"))
    assert session.last_stats.reused_tokens == 2      # only <|begin_of_text|><|start_header_id|> were the same
    prompt = session._conversation_ids(session.turns[:-1], session.turns[-1].message)
    assert tok.decode(prompt).startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                                         "Answer in French.<|eot_id|>")
    assert reference_answer(model, prompt, session.stop_ids, 4)[0] == session.turns[-1].answer_ids
    session.system = None
    "".join(session.send("four"))
    assert "system" not in tok.decode(session.conversation_ids())


def test_an_interrupted_answer_joins_the_conversation_and_the_chat_goes_on():
    tok = chat_tokenizer()
    model = tiny_model(tok.n_vocab)
    session = ChatSession(model, tok, "chatml", max_new_tokens=40, temperature=1.0, seed=3)
    pieces = session.send("Tell me a long story")
    got = [next(pieces), next(pieces)]
    pieces.close()                                          # what Ctrl-C in the CLI does
    assert session.last_stats.stop == "interrupted"
    assert 2 <= len(session.turns[0].answer_ids) < 40 and session.turns[0].stop_id is None
    assert session.turns[0].answer.startswith("".join(got))
    assert session.cached_tokens == session._cache.length
    cached = session.cached_tokens
    "".join(session.send("Shorter, please"))
    assert session.last_stats.reused_tokens == cached
    prompt = session._conversation_ids(session.turns[:1], session.turns[1].message)
    assert tok.decode(prompt).endswith(session.turns[0].answer + "<|im_end|>\n<|im_start|>user\nShorter, please"
                                       "<|im_end|>\n<|im_start|>assistant\n")


def test_a_keyboard_interrupt_inside_the_model_leaves_a_consistent_cache():
    tok = chat_tokenizer()
    model = tiny_model(tok.n_vocab)
    session = ChatSession(model, tok, "chatml", max_new_tokens=10)
    calls = {"n": 0}
    real = model.forward

    def forward(ids, kv_cache=None, last_only=False):
        calls["n"] += 1
        if calls["n"] == 4:
            kv_cache.update(0, *([mg.Tensor(np.zeros((1, 2, 1, 16), np.float32))] * 2))   # half a pass
            raise KeyboardInterrupt
        return real(ids, kv_cache=kv_cache, last_only=last_only)

    model.forward = forward
    with pytest.raises(KeyboardInterrupt):
        "".join(session.send("Hi"))
    model.forward = real
    assert session.last_stats.stop == "interrupted" and len(session.turns[0].answer_ids) == 3
    assert session.cached_tokens == session._cache.length
    "".join(session.send("Again"))
    prompt = session._conversation_ids(session.turns[:1], session.turns[1].message)
    assert reference_answer(model, prompt, session.stop_ids, 10)[0] == session.turns[1].answer_ids


def test_when_the_conversation_outgrows_the_context_the_oldest_turns_go():
    tok = chat_tokenizer()
    model = tiny_model(tok.n_vocab, context_length=96)
    session = ChatSession(model, tok, "chatml", system="Hi.", max_new_tokens=12)
    dropped = 0
    for i in range(8):
        "".join(session.send(f"message {i}"))
        s = session.last_stats
        dropped += s.dropped_turns
        assert len(session.conversation_ids()) <= 96
        prompt = session._conversation_ids(session.turns[:-1], session.turns[-1].message)
        assert len(prompt) + 12 <= 96
        assert reference_answer(model, prompt, session.stop_ids, 12)[0] == session.turns[-1].answer_ids
    assert dropped > 0 and len(session.turns) == 8 - dropped
    assert session.turns[-1].message["content"] == "message 7"
    assert tok.decode(session.conversation_ids()).startswith("<|im_start|>system\nHi.<|im_end|>\n")
    with pytest.raises(ContextFullError, match="the context holds 96"):
        session.send("x" * 200)
    assert session.turns[-1].message["content"] == "message 7"     # a refused message changes nothing


def test_the_answer_stops_when_the_context_is_full():
    tok = chat_tokenizer()
    model = tiny_model(tok.n_vocab, context_length=40)
    session = ChatSession(model, tok, "chatml", max_new_tokens=100, stop_ids=[])
    "".join(session.send("question"))
    assert session.last_stats.stop == "context" and session.cached_tokens == 40


def test_alpaca_answers_each_instruction_alone_and_reuses_the_cached_preamble():
    tok = demo_tokenizer()
    model = tiny_model(tok.n_vocab)
    session = ChatSession(model, tok, "alpaca", max_new_tokens=6)
    "".join(session.send("Convert the word to upper case.", input="lion"))
    second = "".join(session.send("Write the word backwards.", input="cat"))
    assert session.last_stats.reused_tokens > 20                      # the preamble was not read again
    fresh = ChatSession(model, tok, "alpaca", max_new_tokens=6)
    assert "".join(fresh.send("Write the word backwards.", input="cat")) == second
    # chapter 7's prompt with the response header, greedy until <|endoftext|>
    prompt = encode_as_text(tok, format_input({"instruction": "Write the word backwards.", "input": "cat"})
                            + RESPONSE_HEADER)
    out = generate(model, np.asarray([prompt]), 6, temperature=0.0, eos_id=tok.eot_token)
    assert out[0, len(prompt):].tolist() == session.turns[-1].answer_ids
    assert session.stop_ids == [tok.eot_token]


def test_alpaca_reads_special_token_strings_as_text():
    tok = demo_tokenizer()
    assert tok.eot_token not in encode_chat(tok, "say <|endoftext|>", special_markers=False)
    assert tok.eot_token in encode_chat(tok, "say <|endoftext|>")


def test_bad_settings():
    tok = chat_tokenizer()
    model = tiny_model(tok.n_vocab)
    with pytest.raises(ValueError, match="temperature"):
        ChatSession(model, tok, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        ChatSession(model, tok, top_k=0)
    with pytest.raises(ValueError, match="enable_thinking"):
        ChatSession(model, tok, "gemma", options={"enable_thinking": False})
    session = ChatSession(model, tok)
    session.top_p = 1.5
    with pytest.raises(ValueError, match="top_p"):
        session.send("x")
    assert session.turns == []


# ==================================================================================================
# python -m gpt chat
# ==================================================================================================


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny random instruction 'fine-tuned' GPT with the demo's tokenizer, saved as finetune-instruct does."""
    tok = demo_tokenizer()
    folder = tmp_path_factory.mktemp("chat") / "run"
    save_instruct_checkpoint(folder, tiny_model(tok.n_vocab, context_length=96), tokenizer=tok)
    return folder


def session_answers(folder, messages, **options):
    from gpt.finetune.instruct import load_instruct_checkpoint

    ck = load_instruct_checkpoint(folder)
    session = ChatSession(ck.model, ck.tokenizer, "alpaca", **options)
    return ["".join(session.send(m)).strip() for m in messages]


def test_cli_over_a_pipe_answers_one_line_per_line(checkpoint):
    questions = ["What is 2 plus 3?", "Write the word backwards."]
    result = subprocess.run([sys.executable, "-m", "gpt", "chat", "--checkpoint", str(checkpoint), "--max-new-tokens",
                             "8", "--temperature", "0.7", "--seed", "5", "--stats"],
                            input=questions[0] + "\n\n/temperature 0\n/reset\n" + questions[1] + "\n", text=True,
                            capture_output=True, timeout=120, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    expected = session_answers(checkpoint, questions[:1], max_new_tokens=8, temperature=0.7, seed=5)
    expected += session_answers(checkpoint, questions[1:], max_new_tokens=8)
    assert result.stdout == "".join(a.replace("\\", "\\\\").replace("\n", "\\n") + "\n" for a in expected)
    stats = [line for line in result.stderr.splitlines() if line.startswith("[prefill")]
    assert len(stats) == 2 and all(line.count("tok/s") == 2 and "| decode " in line for line in stats)
    assert "(temperature 0)" in result.stderr and "(conversation cleared)" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_one_prompt(checkpoint):
    code, stdout, stderr = run_cli("chat", "--checkpoint", checkpoint, "--prompt", "Convert the word to upper case.",
                                   "--input", "lion", "--max-new-tokens", 7, "--system", "Be exact.")
    assert code == 0 and stderr == "", stderr
    from gpt.finetune.instruct import load_instruct_checkpoint

    ck = load_instruct_checkpoint(checkpoint)
    session = ChatSession(ck.model, ck.tokenizer, "alpaca", system="Be exact.", max_new_tokens=7)
    assert stdout == "".join(session.send("Convert the word to upper case.", input="lion")).strip() + "\n"


def test_cli_commands_and_their_errors_in_pipe_mode(checkpoint):
    code, stdout, stderr = run_cli("chat", "--checkpoint", checkpoint, "--max-new-tokens", 3,
                                   stdin="/help\n/temperature -1\n/what\n/system Be kind.\n/system\n/quit\n"
                                         "never read\n")
    assert code == 0 and stdout == ""
    assert "/reset" in stderr and "expected a number >= 0" in stderr and "unknown command /what" in stderr
    assert "(system message: 'Be kind.')" in stderr and "(no system message)" in stderr


def test_cli_a_message_too_long_for_the_context_is_an_error_line_not_the_end(checkpoint):
    code, stdout, stderr = run_cli("chat", "--checkpoint", checkpoint, "--max-new-tokens", 3,
                                   stdin="word " * 200 + "\nHi\n")
    assert code == 0
    assert stdout.count("\n") == 2 and stdout.startswith("\n")          # an empty answer line, then one for Hi
    assert "error: the message takes" in stderr and "context holds 96" in stderr


def test_cli_chatml_checkpoint_style_and_thinking_option(tmp_path):
    tok = chat_tokenizer()
    save_instruct_checkpoint(tmp_path / "ck", tiny_model(tok.n_vocab), tokenizer=tok)
    code, stdout, stderr = run_cli("chat", "--checkpoint", tmp_path / "ck", "--style", "chatml", "--no-think",
                                   "--max-new-tokens", 4, "--prompt", "Hi")
    assert code == 0, stderr
    from gpt.finetune.instruct import load_instruct_checkpoint

    ck = load_instruct_checkpoint(tmp_path / "ck")
    session = ChatSession(ck.model, ck.tokenizer, "chatml", options={"enable_thinking": False}, max_new_tokens=4)
    assert stdout == "".join(session.send("Hi")).strip() + "\n"


@pytest.mark.parametrize("argv, words", [
    (["chat", "--prompt", "Hi"], ["--checkpoint", "--hf"]),
    (["chat", "--checkpoint", "{ck}", "--prompt", " "], ["empty"]),
    (["chat", "--checkpoint", "{ck}", "--think", "--prompt", "Hi"], ["--think", "chatml", "alpaca"]),
    (["chat", "--checkpoint", "{ck}", "--style", "gemma", "--input", "x", "--prompt", "Hi"], ["--input", "gemma"]),
    (["chat", "--hf", "{tmp}/nothing"], ["nothing", "no such folder"]),
    (["chat", "--hf", "{tmp}", "--vocab", "{tmp}"], ["--vocab", "--gpt2"]),
    (["chat", "--checkpoint", "{tmp}/missing", "--prompt", "Hi"], ["missing"]),
])
def test_cli_bad_input_is_a_one_line_error(checkpoint, tmp_path, argv, words):
    code, _, stderr = run_cli(*[a.format(ck=checkpoint, tmp=tmp_path) for a in argv])
    check_one_line_error(code, stderr, *words)
    assert stderr.count("\n") == 1


def test_cli_style_names_match_the_library():
    from gpt.cli.chat import STYLE_NAMES

    assert STYLE_NAMES == tuple(STYLES)


def test_cli_trim_and_one_line_helpers():
    from gpt.cli.chat import _one_line, _Trim

    trim = _Trim()
    assert [trim(p) for p in ["\n ", " Hel", "lo ", "\n", "wor", "ld \n"]] == ["", "Hel", "lo", "", " \nwor", "ld"]
    assert _one_line("a\\b\nc\r") == "a\\\\b\\nc\\r"


# ==================================================================================================
# The model families of gpt.architectures, and chat --hf
# ==================================================================================================


def family_model(arch, vocab_size, context_length=128):
    architectures = pytest.importorskip("gpt.architectures")
    fields = dict(arch=arch, vocab_size=vocab_size, context_length=context_length, emb_dim=32, n_heads=4,
                  n_kv_heads=2, head_dim=8, n_layers=2, hidden_dim=48, qk_norm=arch != "llama", tie_weights=True)
    if arch == "gemma3":        # sliding-window layers (window 8) around one global layer
        fields.update(sliding_window=8, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                      rope_local_theta=10000.0, query_pre_attn_scalar=8, n_layers=3)
    cfg = architectures.DecoderConfig(**fields)
    mg.manual_seed(1)
    return architectures.build_model(cfg)


@pytest.mark.parametrize("arch, style, special", [("qwen3", "chatml", CHATML_SPECIAL),
                                                  ("llama", "llama3", LLAMA_SPECIAL),
                                                  ("gemma3", "gemma", GEMMA_SPECIAL)])
def test_the_model_families_chat_with_the_cache_as_without(arch, style, special):
    tok = chat_tokenizer(special)
    model = family_model(arch, tok.n_vocab, context_length=256)
    session = ChatSession(model, tok, style, system="Hi.", max_new_tokens=5, temperature=0.9, seed=2)
    prompts = []
    for text in ["one", "two two", "three", "four"]:
        if text == "four":
            session.system = "Bye."         # a rewrite far back: the cache is cut, or read again from 0
        cached = session.cached_tokens
        "".join(session.send(text))
        prompts.append(prompts_of(session)[-1])
        assert session.last_stats.dropped_turns == 0
        # gemma's sliding layers cannot go back past their window: then everything is read again
        if text != "four":
            assert session.last_stats.reused_tokens in ((cached, 0) if arch == "gemma3" else (cached,))
    rng = np.random.default_rng(2)
    for prompt, turn in zip(prompts, session.turns):
        assert reference_answer(model, prompt, session.stop_ids, 5, 0.9, None, rng) == (turn.answer_ids, turn.stop_id)


def test_truncating_a_windowed_cache():
    model = family_model("gemma3", 64)
    ids = np.random.default_rng(0).integers(0, 64, size=(1, 20))
    cache = model.new_kv_cache(1)
    with mg.no_grad():
        model(ids[:, :6], kv_cache=cache)
        cache.truncate(4)                    # every key still held: the window (8) is not full yet
        cut = model(ids[:, 4:9], kv_cache=cache).data
        whole = model(ids[:, :9]).data[:, 4:]
        np.testing.assert_allclose(cut, whole, rtol=1e-4, atol=1e-5)
        model(ids[:, 9:20], kv_cache=cache)  # 20 positions: the sliding layers now hold the last 7
        for length in (10, 19):              # position 19 attends to 12..19, and 12 is gone
            with pytest.raises(ValueError, match="sliding-window"):
                cache.truncate(length)
        cache.truncate(20)                   # (cutting nothing is always possible) and the cache goes on
        more = np.concatenate([ids, [[5]]], axis=1)
        np.testing.assert_allclose(model(more[:, 20:], kv_cache=cache).data, model(more).data[:, 20:],
                                   rtol=1e-4, atol=1e-5)


def hf_folder(tmp_path, template=None):
    """A tiny random Qwen3 saved by gpt.hf.save_model with a byte-level BPE tokenizer.json (Qwen's chat
    markers as special tokens) trained here, and a tokenizer_config.json holding ``template``."""
    hf = pytest.importorskip("gpt.hf")
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tk = tokenizers.Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(["Hello there, how are you? Fine, thanks. And you? Grüße!"] * 20,
                           trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                               special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    folder = tmp_path / "tiny-qwen3"
    folder.mkdir()
    hf.save_model(family_model("qwen3", tk.get_vocab_size()), folder)
    tk.save(str(folder / "tokenizer.json"))
    write_json(folder / "tokenizer_config.json", {"chat_template": template or JINJA["chatml"]})
    write_json(folder / "generation_config.json", {"eos_token_id": [tk.token_to_id("<|im_end|>"),
                                                                    tk.token_to_id("<|endoftext|>")]})
    return folder


def test_cli_hf_folder(tmp_path):
    folder = hf_folder(tmp_path)
    from gpt.hf import load_model
    from gpt.tokenizer import HFTokenizer

    messages = ["Hello there", "And you? Grüße"]
    result = subprocess.run([sys.executable, "-m", "gpt", "chat", "--hf", str(folder), "--max-new-tokens", "6",
                             "--system", "Be nice.", "--no-think", "--stats"],
                            input="\n".join(messages) + "\n", text=True, capture_output=True, timeout=300,
                            env=subprocess_env())
    assert result.returncode == 0, result.stderr
    tok = HFTokenizer.from_file(folder)
    session = ChatSession(load_model(folder), tok, "chatml", system="Be nice.", max_new_tokens=6,
                          options={"enable_thinking": False})
    expected = ["".join(session.send(m)).strip() for m in messages]
    assert result.stdout == "".join(a.replace("\\", "\\\\").replace("\n", "\\n") + "\n" for a in expected)
    assert tok.decode(session.conversation_ids()).startswith(
        "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n"
        "<think>\n\n</think>\n\n")
    stats = [line for line in result.stderr.splitlines() if line.startswith("[prefill")]
    reused = session.last_stats.reused_tokens                  # the second turn read only its new tokens
    assert len(stats) == 2 and reused > 0 and f"({reused} cached)" in stats[1]


def test_cli_hf_folder_without_a_known_format(tmp_path):
    hf = pytest.importorskip("gpt.hf")
    tokenizers = pytest.importorskip("tokenizers")
    folder = hf_folder(tmp_path)                            # its tokenizer.json, with a GPT-2 model and no template
    for name in ("config.json", "model.safetensors", "tokenizer_config.json"):
        (folder / name).unlink()
    vocab = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size()
    mg.manual_seed(0)
    hf.save_model(GPTModel(GPTConfig(vocab_size=vocab, context_length=64, emb_dim=16, n_heads=2, n_layers=1,
                                     qkv_bias=True, tie_weights=True)), folder)
    code, _, stderr = run_cli("chat", "--hf", folder, "--prompt", "Hi")
    check_one_line_error(code, stderr, "cannot tell the chat format", "'gpt2'", "--style")
    code, stdout, stderr = run_cli("chat", "--hf", folder, "--style", "chatml", "--prompt", "Hi", "--max-new-tokens", 3)
    assert code == 0 and stdout.endswith("\n") and stderr == "", stderr


# ==================================================================================================
# On a terminal: Ctrl-C stops the answer, not the chat
# ==================================================================================================


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_cli_on_a_terminal_ctrl_c_stops_the_answer_and_twice_at_the_prompt_leaves(tmp_path):
    import os
    import pty
    import select
    import signal
    import time

    tok = BPETokenizer([])                                   # no stop token: an answer runs to its end
    save_instruct_checkpoint(tmp_path / "ck", tiny_model(tok.n_vocab, context_length=4096), tokenizer=tok)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "chat", "--checkpoint", str(tmp_path / "ck"),
                             "--max-new-tokens", "4000", "--context", "4096"],
                            stdin=slave, stdout=slave, stderr=slave, env=subprocess_env(), cwd=tmp_path)
    os.close(slave)
    seen = b""

    def read_until(*markers: bytes, timeout=120.0, since: int = 0, must=True) -> bytes:
        """Read until one of ``markers`` shows up at or after byte ``since``; return the one seen
        (b"" if none came in ``timeout`` seconds and not ``must``)."""
        nonlocal seen
        end = time.monotonic() + timeout
        while not any(m in seen[since:] for m in markers):
            if time.monotonic() >= end:
                assert not must, seen.decode(errors="replace")[-500:]
                return b""
            if select.select([master], [], [], 0.5)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:                              # the child closed the terminal
                    break
        return next((m for m in markers if m in seen[since:]), b"")

    def ctrl_c(*markers: bytes, since: int) -> bytes:
        """Ctrl-C, until one of ``markers`` answers it. At a prompt a Ctrl-C can go unnoticed: one that
        arrives after input() wrote the prompt but before it waits for a key only sets Python's flag,
        and the flag is looked at when a key (or another signal) comes (CPython's input()). A second
        signal then delivers the first, once (pending signals merge); so if nothing answers in 10 s,
        send it again. 10 s is long enough that a slow but noticed Ctrl-C is not counted twice."""
        for _ in range(5):
            proc.send_signal(signal.SIGINT)
            found = read_until(*markers, timeout=10, since=since, must=False)
            if found:
                return found
        raise AssertionError("no answer to Ctrl-C: " + seen.decode(errors="replace")[-500:])

    try:
        read_until(b"> ")                                    # the first prompt
        # An answer takes a few seconds; on a loaded machine the Ctrl-C may arrive only after it ended
        # (then it lands at the prompt and gives the hint): that run proves nothing, so ask again.
        for _ in range(5):
            mark = len(seen)
            os.write(master, b"Tell me everything\n")
            read_until(b"Tell me everything\r\n", since=mark)
            mark = len(seen)
            end = time.monotonic() + 120
            while len(seen) < mark + 40 and time.monotonic() < end:   # the answer is streaming ...
                if select.select([master], [], [], 0.5)[0]:
                    seen += os.read(master, 65536)
            if ctrl_c(b"(stopped)", b"Ctrl-C again", since=mark) == b"(stopped)":   # ... Ctrl-C
                break
            read_until(b"> ", since=seen.index(b"Ctrl-C again", mark))
        else:
            pytest.fail("every answer ended before its Ctrl-C arrived")
        read_until(b"> ", timeout=60, since=seen.index(b"(stopped)", mark))   # the next prompt
        assert proc.poll() is None                           # still chatting
        os.write(master, b"/reset\n")
        read_until(b"(conversation cleared)", since=mark)
        read_until(b"> ", since=seen.index(b"(conversation cleared)", mark))
        time.sleep(0.3)                                      # (makes a Ctrl-C gone unnoticed rare)
        ctrl_c(b"Ctrl-C again", since=mark)                  # at the prompt: a hint ...
        read_until(b"> ", since=seen.index(b"Ctrl-C again", mark))
        time.sleep(0.3)
        for _ in range(5):                                   # ... and the second one leaves
            proc.send_signal(signal.SIGINT)
            try:
                assert proc.wait(timeout=10) == 0
                break
            except subprocess.TimeoutExpired:                # unnoticed (see ctrl_c): again
                pass
        else:
            pytest.fail("the second Ctrl-C at the prompt did not end the chat")
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"Traceback" not in seen
