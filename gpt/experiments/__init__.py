"""Experiments: measurements a learner can rerun with ``python -m gpt experiment NAME``.

Each module answers one question and writes its figures to a folder (``results.csv`` and a summary);
a finished part is not redone when the command runs again.

- ``recipe``: which pretraining recipe learns the most from the default corpus in a few minutes?
- ``seq2seq``: why attention? RNN encoder-decoders with and without Bahdanau attention and the
  encoder-decoder Transformer, exact-match accuracy by input length on the same task.
- ``retrieval``: does a sentence encoder find the pydoc topic a held-out sentence came from, better
  than a bag-of-words baseline? (recall@1, recall@5, MRR)
- ``encoder-vs-decoder``: BERT or the GPT for classification? Both trained from scratch with the same
  budget, on spam/ham and on a task whose evidence sits at both ends of the text.
- ``positions``: do relative positions (RoPE, ALiBi, T5's bias; or none) generalise to longer texts
  than learned ones, trained at T and read at T, 2T, 4T?
"""
