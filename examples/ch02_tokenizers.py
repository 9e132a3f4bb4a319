"""Chapter 2, "Working with text data": from raw text to the embedding vectors a GPT reads.

    2.2-2.3  split a text into words and punctuation, build a vocabulary, map tokens to ids
    2.4      special tokens: <|unk|> for unknown words, <|endoftext|> between documents
    2.5      byte pair encoding (GPT-2's tokenizer): no unknown words, ever
    2.6      input/target pairs with a sliding window, batched by a data loader
    2.7-2.8  token embeddings plus absolute position embeddings

With the book's files (--data-dir DIR, GPT_REFERENCE_DATA or data/book) it runs on *The Verdict* with GPT-2's
vocabulary and prints the book's numbers; without them it uses a 20,000-character slice of the
embedded corpus (CPython's reference documentation) and a BPE tokenizer trained on the spot.

    python examples/ch02_tokenizers.py              (a few seconds)
"""
from __future__ import annotations

import sys

import numpy as np
from _common import gpt2_tokenizer, parse_args, reference_file, section

import minigrad as mg
from minigrad import nn

from gpt.data import GPTDataset, create_dataloader
from gpt.tokenizer import BPETokenizer, SimpleTokenizer
from gpt.tokenizer.simple import split_words

# Used only when neither the-verdict.txt nor the embedded corpus is available.
BUILT_IN_PARAGRAPH = (
    "The lighthouse keeper wrote in his log every evening. He noted the wind, the colour of the sea, "
    "and the ships that passed before the light was lit. Some nights the log said only: calm. Other "
    "nights it ran to three pages, because a storm had come in from the west and the lamp had to be "
    "trimmed twice before dawn. When he retired, the log filled a whole shelf, and the new keeper "
    "read it from the first page to the last before she climbed the stairs for her first night."
)


def load_text(args) -> tuple[str, str]:
    """(text, a description of where it came from)."""
    verdict = reference_file(args, "the-verdict.txt")
    if verdict is not None:
        return verdict.read_text(encoding="utf-8"), "the-verdict.txt"
    try:
        from gpt.corpus import default_corpus
        return default_corpus(max_chars=20_000), "the embedded corpus (first 20,000 characters)"
    except RuntimeError:
        return BUILT_IN_PARAGRAPH, "a built-in paragraph"


def main() -> int:
    args = parse_args("Chapter 2: tokenizers, sliding windows and embeddings.")
    np.set_printoptions(precision=4, suppress=True)
    raw_text, source = load_text(args)
    on_verdict = source == "the-verdict.txt"

    section("2.2 Tokenizing text")
    print(f"Text: {source}")
    print("Total number of characters:", len(raw_text))           # book: 20479
    print(repr(raw_text[:99]))
    # The book's split: on punctuation, double dashes and whitespace, keeping the punctuation
    print(split_words("Hello, world. Is this-- a test?"))
    preprocessed = split_words(raw_text)
    print("Tokens:", len(preprocessed))                            # book: 4690
    print(preprocessed[:30])

    section("2.3 Token ids")
    all_words = sorted(set(preprocessed))
    print("Vocabulary size:", len(all_words))                      # book: 1130
    vocab = {token: integer for integer, token in enumerate(all_words)}
    for i, item in enumerate(vocab.items()):
        print(item)
        if i >= 9:
            break
    # strict=True is the book's SimpleTokenizerV1: every word must be in the vocabulary
    tokenizer = SimpleTokenizer(vocab, strict=True)
    if on_verdict:
        text = '"It\'s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    else:
        text = " ".join(preprocessed[:20])
    ids = tokenizer.encode(text)
    print(ids)
    print(tokenizer.decode(ids))
    try:
        tokenizer.encode("Hello, do you like tea?")
    except KeyError as err:
        print("V1 on a word it has never seen: KeyError", err)

    section("2.4 Special context tokens")
    tokenizer = SimpleTokenizer.from_text(raw_text)                 # the book's SimpleTokenizerV2
    print("Vocabulary size with <|endoftext|> and <|unk|>:", tokenizer.n_vocab)   # book: 1132
    for item in list(tokenizer.str_to_int.items())[-5:]:
        print(item)
    text1 = "Hello, do you like tea?"
    text2 = "In the sunlit terraces of the palace."
    text = " <|endoftext|> ".join((text1, text2))
    print(text)
    print(tokenizer.encode(text))
    print(tokenizer.decode(tokenizer.encode(text)))                # unknown words became <|unk|>

    section("2.5 Byte pair encoding")
    bpe = gpt2_tokenizer(args)
    if bpe is not None:
        print("GPT-2's tokenizer (the book's tiktoken.get_encoding('gpt2')):", bpe)
    else:
        # no GPT-2 vocabulary at hand: learn one from the text itself, the way GPT-2's was made
        vocab_size = 400 if args.fast else 1000
        bpe = BPETokenizer.train(raw_text, vocab_size=vocab_size, verbose=False)
        print("A BPE tokenizer trained on this text:", bpe)
        print("Its first merges:")
        for line in bpe.describe_merges(8):
            print("  ", line)
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace."
    integers = bpe.encode(text, allowed_special={"<|endoftext|>"})
    print(integers)
    print(bpe.decode(integers))                                    # exactly the input again
    # An unknown word is not a problem: it is broken into known subwords (or single bytes)
    unknown = bpe.encode("Akwirw ier")
    print("'Akwirw ier' ->", unknown, "=", [bpe.decode([i]) for i in unknown])

    section("2.6 Data sampling with a sliding window")
    enc_text = bpe.encode(raw_text)
    print("Tokens in the text:", len(enc_text))                    # book: 5145
    enc_sample = enc_text[50:]
    context_size = 4                                               # tokens in the input
    x, y = enc_sample[:context_size], enc_sample[1:context_size + 1]
    print(f"x: {x}\ny:      {y}")
    for i in range(1, context_size + 1):                           # each prefix predicts the next token
        context, desired = enc_sample[:i], enc_sample[i]
        print(f"{bpe.decode(context)!r:>30} ----> {bpe.decode([desired])!r}")

    dataset = GPTDataset(enc_text, max_length=4, stride=1)
    print("Windows with max_length=4, stride=1:", len(dataset))
    dataloader = create_dataloader(raw_text, bpe, batch_size=1, max_length=4, stride=1, shuffle=False)
    data_iter = iter(dataloader)
    first_batch = next(data_iter)
    print("first batch: ", [a.tolist() for a in first_batch])      # book: [[40, 367, 2885, 1464]], ...
    print("second batch:", [a.tolist() for a in next(data_iter)])
    # stride = max_length: the windows tile the text, no token is used twice
    dataloader = create_dataloader(raw_text, bpe, batch_size=8, max_length=4, stride=4, shuffle=False)
    inputs, targets = next(iter(dataloader))
    print("Inputs:\n", inputs)
    print("Targets:\n", targets)

    section("2.7 Token embeddings")
    mg.manual_seed(123)
    embedding_layer = nn.Embedding(6, 3)          # 6 ids, 3 dimensions; values differ from torch's RNG
    print("weight (6, 3):\n", embedding_layer.weight.data)
    input_ids = np.array([2, 3, 5, 1])
    print("rows 2, 3, 5, 1:\n", embedding_layer(input_ids).data)
    # an embedding lookup is a matrix product with one-hot rows, only without the zeros
    one_hot = np.eye(6, dtype=np.float32)[input_ids]
    print("same as one-hot @ weight:", np.array_equal(one_hot @ embedding_layer.weight.data,
                                                     embedding_layer(input_ids).data))

    section("2.8 Encoding word positions")
    vocab_size = bpe.n_vocab                      # 50,257 for GPT-2's tokenizer
    output_dim, max_length = 256, 4
    token_embedding_layer = nn.Embedding(vocab_size, output_dim)
    dataloader = create_dataloader(raw_text, bpe, batch_size=8, max_length=max_length, stride=max_length,
                                   shuffle=False)
    inputs, targets = next(iter(dataloader))
    print("Token IDs:\n", inputs)
    print("Inputs shape:", inputs.shape)                           # (8, 4)
    token_embeddings = token_embedding_layer(inputs)
    print("Token embeddings:", token_embeddings.shape)             # (8, 4, 256)
    context_length = max_length
    pos_embedding_layer = nn.Embedding(context_length, output_dim)
    pos_embeddings = pos_embedding_layer(np.arange(context_length))
    print("Position embeddings:", pos_embeddings.shape)            # (4, 256)
    input_embeddings = token_embeddings + pos_embeddings           # (4, 256) broadcast over the batch
    print("Input embeddings:", input_embeddings.shape)             # (8, 4, 256)
    return 0


if __name__ == "__main__":
    sys.exit(main())
