"""Chat templates, written out by hand instead of run by a template engine (beyond the book).

A chat model reads a conversation as one text in which markers, most of them special tokens, say
who speaks. Hugging Face ships that format as a Jinja program (``chat_template``); each style here
writes the same text with plain string building, so a reader sees the format itself. The facts
(markers, what is trimmed, where a system message goes) are those of the published templates:

``chatml`` (Qwen3)::

    <|im_start|>system\\nYou are terse.<|im_end|>\\n          (only if there is a system message)
    <|im_start|>user\\nHi<|im_end|>\\n
    <|im_start|>assistant\\n                               (the generation prompt)

  ``enable_thinking=False`` adds an empty ``<think>\\n\\n</think>\\n\\n`` to the generation prompt, which
  tells Qwen3 not to reason first. An earlier answer is written without its ``<think>`` block; the
  last answer after the last user message keeps it (an empty one if it had none).

``llama3``::

    <|begin_of_text|><|start_header_id|>system<|end_header_id|>\\n\\nYou are terse.<|eot_id|>
    <|start_header_id|>user<|end_header_id|>\\n\\nHi<|eot_id|>
    <|start_header_id|>assistant<|end_header_id|>\\n\\n

  Every message is trimmed. Llama 3.1 and 3.2 always write the system block and begin it with
  ``Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n`` (today's date, in fact):
  pass ``cutting_knowledge_date="December 2023"`` (and ``date_string``) for that; without it the
  text is Llama 3.0's.

``gemma`` (Gemma 3)::

    <bos><start_of_turn>user\\nYou are terse.\\n\\nHi<end_of_turn>\\n
    <start_of_turn>model\\n

  The assistant is called "model", there is no system turn (a system message opens the first user
  turn), roles must alternate, and messages are trimmed.

``alpaca``: the book's chapter-7 prompt (:func:`gpt.finetune.instruct.format_input`), a system
  message replacing its first sentence, then ``\\n\\n### Response:\\n``. The book's models answer
  one instruction at a time, so this style holds one user message (and its answer).

Every style knows the tokens that end an answer (:attr:`ChatStyle.stop_tokens`).
"""
from __future__ import annotations

import time
from typing import Sequence

__all__ = ["ChatStyle", "STYLES", "get_style", "apply_chat_template"]


def _checked(messages: Sequence[dict], style: str, roles=("system", "user", "assistant")) -> list[dict]:
    """The messages as a list, each a dict with a known ``role`` and a string ``content``."""
    if isinstance(messages, (str, dict)) or not isinstance(messages, Sequence):
        raise ValueError(f"messages must be a list of {{'role', 'content'}} dicts, got a {type(messages).__name__}")
    if not messages:
        raise ValueError("there are no messages to format")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"message {i} must be a dict with 'role' and 'content', got {m!r}")
        if m["role"] not in roles:
            raise ValueError(f"message {i} has the role {m['role']!r}; the {style} style knows {', '.join(roles)}")
        if not isinstance(m["content"], str):
            raise ValueError(f"message {i}: the content must be a string, got {type(m['content']).__name__}")
    return list(messages)


class ChatStyle:
    """One chat format. Subclasses set the class attributes and write :meth:`render`.

    Attributes:
        name: what ``--style`` calls it.
        stop_tokens: the tokens that end an answer (those missing from a vocabulary are skipped).
        answer_end: what the template writes after an answer (its first token is usually the stop
            token the model produced).
        multi_turn: False for a format that holds one exchange; a chat then starts afresh each turn.
        special_markers: whether the template's markers are special tokens (encode them as such).
        options: the keyword options :meth:`render` takes.
    """

    name = ""
    stop_tokens: tuple[str, ...] = ()
    answer_end = ""
    multi_turn = True
    special_markers = True
    options: tuple[str, ...] = ()

    def render(self, messages: Sequence[dict], add_generation_prompt: bool = True, **options) -> str:
        raise NotImplementedError

    def next_turn(self, content: str, **options) -> str:
        """The text that follows an answer the model wrote (without ``answer_end``, i.e. after a
        turn the model did not close itself): the end of that turn, the next user message, the
        generation prompt. ``render(history + [answer, user])`` ends with exactly this."""
        raise NotImplementedError

    def check_options(self, options: dict) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            takes = f"takes {', '.join(self.options)}" if self.options else "takes no options"
            raise ValueError(f"the {self.name} style has no option {', '.join(map(repr, unknown))} (it {takes})")

    def __repr__(self) -> str:
        return f"<chat style {self.name}>"


# ---------------------------------------------------------------------- chatml (Qwen3)
class ChatML(ChatStyle):
    name = "chatml"
    stop_tokens = ("<|im_end|>", "<|endoftext|>")
    answer_end = "<|im_end|>\n"
    options = ("enable_thinking",)

    @staticmethod
    def turn(role: str, content: str) -> str:
        return f"<|im_start|>{role}\n{content}<|im_end|>\n"

    @staticmethod
    def generation_prompt(enable_thinking=None) -> str:
        return "<|im_start|>assistant\n" + ("<think>\n\n</think>\n\n" if enable_thinking is False else "")

    @staticmethod
    def answer(message: dict, keeps_thinking: bool, last: bool) -> str:
        """An assistant message. Its reasoning is ``reasoning_content`` or else what a ``<think>``
        block in the content holds (the block is taken out of the content). Only an answer after the
        last user message is written with a think block: always if it is the last message, else
        only if there is reasoning to show."""
        content, reasoning = message["content"], message.get("reasoning_content")
        if not isinstance(reasoning, str):
            reasoning = ""
            if "</think>" in content:
                reasoning = content.split("</think>")[0].rstrip("\n").split("<think>")[-1].lstrip("\n")
                content = content.split("</think>")[-1].lstrip("\n")
        if keeps_thinking and (last or reasoning):
            reasoning, content = reasoning.strip("\n"), content.lstrip("\n")
            body = f"<think>\n{reasoning}\n</think>\n\n{content}"
        else:
            body = content
        return f"<|im_start|>assistant\n{body}<|im_end|>\n"

    def render(self, messages, add_generation_prompt=True, enable_thinking=None) -> str:
        msgs = _checked(messages, self.name)
        # the last user message that is a question, not a tool's answer wrapped in <tool_response>
        queries = [i for i, m in enumerate(msgs) if m["role"] == "user" and not (
            m["content"].startswith("<tool_response>") and m["content"].endswith("</tool_response>"))]
        last_query = queries[-1] if queries else len(msgs) - 1
        parts = []
        for i, m in enumerate(msgs):
            if m["role"] == "assistant":
                parts.append(self.answer(m, keeps_thinking=i > last_query, last=i == len(msgs) - 1))
            else:                               # a system message anywhere, or a user message
                parts.append(self.turn(m["role"], m["content"]))
        if add_generation_prompt:
            parts.append(self.generation_prompt(enable_thinking))
        return "".join(parts)

    def next_turn(self, content, enable_thinking=None) -> str:
        return self.answer_end + self.turn("user", content) + self.generation_prompt(enable_thinking)


# ---------------------------------------------------------------------- llama3
class Llama3(ChatStyle):
    name = "llama3"
    stop_tokens = ("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>")
    answer_end = "<|eot_id|>"
    options = ("cutting_knowledge_date", "date_string")

    @staticmethod
    def header(role: str) -> str:
        return f"<|start_header_id|>{role}<|end_header_id|>\n\n"

    def turn(self, role: str, content: str) -> str:
        return self.header(role) + content.strip() + "<|eot_id|>"

    def render(self, messages, add_generation_prompt=True, cutting_knowledge_date=None, date_string=None) -> str:
        msgs = _checked(messages, self.name)
        system = None
        if msgs[0]["role"] == "system":
            system, msgs = msgs[0]["content"], msgs[1:]
        parts = ["<|begin_of_text|>"]
        if cutting_knowledge_date is not None:       # Llama 3.1/3.2: a system block, always, with dates
            date = date_string if date_string is not None else time.strftime("%d %b %Y")
            parts.append(self.header("system") + f"Cutting Knowledge Date: {cutting_knowledge_date}\n"
                         f"Today Date: {date}\n\n" + (system or "").strip() + "<|eot_id|>")
        elif system is not None:
            parts.append(self.turn("system", system))
        parts += [self.turn(m["role"], m["content"]) for m in msgs]
        if add_generation_prompt:
            parts.append(self.header("assistant"))
        return "".join(parts)

    def next_turn(self, content, **options) -> str:
        return self.answer_end + self.turn("user", content) + self.header("assistant")


# ---------------------------------------------------------------------- gemma (Gemma 3)
class Gemma(ChatStyle):
    name = "gemma"
    stop_tokens = ("<end_of_turn>", "<eos>")
    answer_end = "<end_of_turn>\n"

    @staticmethod
    def turn(role: str, content: str, prefix: str = "") -> str:
        return f"<start_of_turn>{'model' if role == 'assistant' else role}\n{prefix}{content.strip()}<end_of_turn>\n"

    def render(self, messages, add_generation_prompt=True) -> str:
        msgs = _checked(messages, self.name)
        prefix = ""
        if msgs[0]["role"] == "system":              # no system turn: it opens the first user turn
            prefix, msgs = msgs[0]["content"] + "\n\n", msgs[1:]
        parts = ["<bos>"]
        for i, m in enumerate(msgs):
            if (m["role"] == "user") != (i % 2 == 0):
                raise ValueError("the gemma style needs the roles to alternate user, assistant, user, ... "
                                 f"(after one optional system message); message {i} is {m['role']!r}")
            parts.append(self.turn(m["role"], m["content"], prefix if i == 0 else ""))
        if add_generation_prompt:
            parts.append("<start_of_turn>model\n")
        return "".join(parts)

    def next_turn(self, content, **options) -> str:
        return self.answer_end + self.turn("user", content) + "<start_of_turn>model\n"


# ---------------------------------------------------------------------- alpaca (the book's chapter 7)
class Alpaca(ChatStyle):
    name = "alpaca"
    stop_tokens = ("<|endoftext|>",)
    multi_turn = False
    special_markers = False   # plain text: a written "<|endoftext|>" stays text, as in chapter 7

    def render(self, messages, add_generation_prompt=True) -> str:
        from gpt.finetune.instruct import PREAMBLE, RESPONSE_HEADER, format_input, format_response

        msgs = _checked(messages, self.name)
        system = None
        if msgs[0]["role"] == "system":
            system, msgs = msgs[0]["content"], msgs[1:]
        roles = [m["role"] for m in msgs]
        if roles not in (["user"], ["user", "assistant"]):
            raise ValueError("the alpaca style holds one instruction: an optional system message, a user message "
                             "and at most its answer")
        user = msgs[0]
        text = format_input({"instruction": user["content"], "input": user.get("input", "")},
                            preamble=PREAMBLE if system is None else system)
        if len(msgs) == 2:
            return text + format_response({"output": msgs[1]["content"]})
        return text + RESPONSE_HEADER if add_generation_prompt else text

    def next_turn(self, content, **options) -> str:
        raise ValueError("the alpaca style holds one instruction; a new one starts a new text")


#: The styles by name.
STYLES: dict[str, ChatStyle] = {s.name: s for s in (ChatML(), Llama3(), Gemma(), Alpaca())}


def get_style(style: str | ChatStyle) -> ChatStyle:
    """A style by name (or the style itself); ValueError naming the choices."""
    if isinstance(style, ChatStyle):
        return style
    try:
        return STYLES[style]
    except (KeyError, TypeError):
        raise ValueError(f"unknown chat style {style!r}; choose one of: {', '.join(STYLES)}") from None


def apply_chat_template(messages: Sequence[dict], style: str | ChatStyle, add_generation_prompt: bool = True,
                        **options) -> str:
    """The text a chat model reads for ``messages`` (``[{"role": "system"|"user"|"assistant",
    "content": str}, ...]``), in ``style`` ("chatml", "llama3", "gemma" or "alpaca"): what
    ``transformers``' ``tokenizer.apply_chat_template(messages, tokenize=False,
    add_generation_prompt=...)`` gives for the matching model. ``add_generation_prompt`` ends the
    text with the start of the assistant's turn. ``options``: ``enable_thinking`` (chatml);
    ``cutting_knowledge_date``, ``date_string`` (llama3). ValueError for messages the style cannot
    hold or an option it does not know.
    """
    s = get_style(style)
    s.check_options(options)
    return s.render(messages, add_generation_prompt, **options)
