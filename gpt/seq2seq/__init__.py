"""Why attention (chapter 3's opening, chapter 1's encoder-decoder figure), measured.

- ``task``: the generated task, a number read aloud ("four double five") to be written in digits.
- ``rnn``: GRU encoder-decoders with a fixed context vector (``RNNEncoderDecoder``) and with
  Bahdanau attention (``BahdanauEncoderDecoder``).
- ``transformer``: the original encoder-decoder Transformer (``EncoderDecoderTransformer``).
- ``decode``: greedy and beam-search decoding for all three.
- ``train``: teacher-forced training and exact-match accuracy by input length.

``python -m gpt experiment seq2seq`` trains the three and compares them (gpt.experiments.seq2seq).
"""
