"""Chat (beyond the book): chat templates written without a template engine, finding a model
folder's chat style, and a multi-turn conversation that keeps its KV cache between turns.

* :mod:`gpt.chat.templates`: :func:`apply_chat_template` for the styles chatml (Qwen3), llama3,
  gemma and the book's alpaca, each with its stop tokens.
* :mod:`gpt.chat.detect`: :func:`detect_chat_style` reads a Hugging Face folder's template or config.
* :mod:`gpt.chat.session`: :class:`ChatSession`, ``send(text)`` -> the answer's text pieces as they
  are generated; only the tokens not yet in the cache are run through the model.
"""
from gpt.chat.detect import detect_chat_style, eos_token_ids, read_chat_template, style_of_template
from gpt.chat.session import ChatSession, ContextFullError, TextStream, TurnStats, encode_chat, stop_token_ids, token_id
from gpt.chat.templates import STYLES, ChatStyle, apply_chat_template, get_style

__all__ = ["apply_chat_template", "get_style", "STYLES", "ChatStyle", "detect_chat_style", "read_chat_template",
           "style_of_template", "eos_token_ids", "ChatSession", "ContextFullError", "TurnStats", "TextStream",
           "encode_chat", "stop_token_ids", "token_id"]
