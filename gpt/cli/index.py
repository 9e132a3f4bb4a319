"""``python -m gpt index`` and ``python -m gpt search``: embed documents once, then find passages by meaning.

    python -m gpt index --encoder ../shared/data/all-MiniLM-L6-v2 --text notes/*.txt --out notes.index
    python -m gpt search notes.index "how do I open a file for writing?" -k 3

``index`` splits each file into overlapping chunks of tokens, embeds them with a sentence-transformers
encoder (gpt.embeddings.SentenceEncoder) and writes a folder: vectors.npy (float32, one row per
chunk) and chunks.json (each chunk's file, character offsets and text, and the settings). ``search``
embeds the question with the same encoder and prints the best chunks with their cosine and source.
"""
from __future__ import annotations

import sys
from pathlib import Path

from gpt.cli import CLIError
from gpt.cli.common import non_negative_int, positive_int


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "index", help="embed text files into a vector index for `search`",
        description="Split UTF-8 text files into overlapping chunks of tokens, embed each chunk with a "
                    "sentence-transformers encoder folder, and save the vectors (vectors.npy) and the "
                    "chunks (chunks.json) in a folder.")
    p.add_argument("--encoder", required=True, metavar="DIR",
                   help="a sentence-transformers folder (modules.json, config.json, model.safetensors, "
                        "tokenizer.json), e.g. all-MiniLM-L6-v2")
    p.add_argument("--text", nargs="+", required=True, metavar="FILE", help="UTF-8 text files to index")
    p.add_argument("--out", required=True, metavar="DIR", help="the index folder to write")
    p.add_argument("--chunk-tokens", type=positive_int, default=128, metavar="N",
                   help="tokens per chunk (default 128; at most what the encoder reads)")
    p.add_argument("--overlap", type=non_negative_int, default=32, metavar="N",
                   help="tokens shared by consecutive chunks (default 32)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="N", help="chunks per batch (default 32)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=index)

    p = subparsers.add_parser(
        "search", help="print the chunks of an index nearest to a question",
        description="Embed the question with the index's encoder and print the k chunks with the highest "
                    "cosine, with their scores and sources (exact: every chunk is scored).")
    p.add_argument("index", metavar="INDEX", help="a folder written by `python -m gpt index`")
    p.add_argument("query", metavar="QUESTION", help="what to look for")
    p.add_argument("-k", type=positive_int, default=5, metavar="K", help="how many chunks to print (default 5)")
    p.add_argument("--encoder", metavar="DIR", help="the encoder folder, if it moved since the index was made")
    p.set_defaults(func=search)


def _encoder(folder: str):
    from gpt.embeddings import SentenceEncoder

    path = Path(folder)
    if not path.is_dir():
        raise CLIError(f"encoder folder not found: {path} (give a sentence-transformers folder such as "
                       "all-MiniLM-L6-v2)")
    return SentenceEncoder.from_pretrained(path)


def index(args) -> int:
    from gpt.corpus import load_texts
    from gpt.retrieval import build_index

    if args.overlap >= args.chunk_tokens:
        raise CLIError(f"--overlap ({args.overlap}) must be smaller than --chunk-tokens ({args.chunk_tokens})")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CLIError(f"--out {args.out} is a file; the index is a folder (vectors.npy, chunks.json): give a folder")
    documents = {}
    for name in args.text:
        documents[str(name)] = load_texts([name])          # one-line errors for missing, empty, non-UTF-8 files
    encoder = _encoder(args.encoder)

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\rembedding chunks: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    built = build_index(encoder, documents, args.chunk_tokens, args.overlap, args.batch_size, progress,
                        meta={"encoder": str(Path(args.encoder).resolve())})
    out = built.save(args.out)
    print(f"indexed {len(built)} chunks of {len(documents)} file(s) "
          f"({built.meta['chunk_tokens']} tokens, overlap {built.meta['overlap']}) into {out}")
    return 0


def search(args) -> int:
    from gpt.rag import Retriever

    if not args.query.strip():
        raise CLIError("the question is empty; give the text to search for")
    try:
        retriever = Retriever.open(args.index, args.encoder)      # one-line errors for a missing or damaged index
    except ValueError as e:
        raise CLIError(str(e)) from None
    for rank, (score, chunk) in enumerate(retriever.retrieve(args.query, args.k), 1):
        text = " ".join(chunk.text.split())
        print(f"{rank}. {score:.4f}  {chunk.source} [{chunk.start}:{chunk.end}]")
        print(f"   {text[:300]}{'...' if len(text) > 300 else ''}")
    return 0
