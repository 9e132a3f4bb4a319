"""Reading ``tokenizer.json`` files (the Hugging Face ``tokenizers`` format) in pure Python.

One module per stage of the format's pipeline: :mod:`.normalizers`, :mod:`.pre_tokenizers`,
:mod:`.models`, :mod:`.post_processors`, :mod:`.decoders`, plus :mod:`.added_tokens`; they are put
together by :class:`~gpt.tokenizer.hf.tokenizer.HFTokenizer` in :mod:`.tokenizer`.
"""
from gpt.tokenizer.hf.tokenizer import HFTokenizer

__all__ = ["HFTokenizer"]
