"""The GPT of 'Build a Large Language Model (From Scratch)', in NumPy on top of ``minigrad``.

The modules follow the book's chapters: ``tokenizer`` (chapter 2), ``data`` (chapter 2/5),
``attention`` (chapter 3), ``model`` (chapter 4), ``generate`` and ``train`` (chapter 5),
``finetune`` (chapters 6-7, appendix E) and ``weights`` (GPT-2's published weights).
"""
