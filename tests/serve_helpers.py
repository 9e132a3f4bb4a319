"""Helpers shared by the tests of the look-inside page: tiny random models of every architecture,
a training run folder made of two of their checkpoints, and a server running in a thread."""
from __future__ import annotations

import contextlib
import http.client
import io
import json
import threading
from pathlib import Path

import numpy as np

from gpt.checkpoint import save_checkpoint
from gpt.cli.common import write_logs
from gpt.finetune.instruct import demo_tokenizer
from gpt.model import POSITION_KINDS, GPTConfig, GPTModel
from gpt.serve.api import Session
from gpt.serve.server import make_server
from gpt.train import TrainState

PROMPT = "Below is an instruction that describes a task."


def tiny_gpt(pos_emb: str = "learned", vocab_size: int | None = None, seed: int = 0) -> GPTModel:
    """A random 2-layer GPT (2 heads, 16 dims, context 32) for ``demo_tokenizer``'s vocabulary."""
    vocab_size = vocab_size or demo_tokenizer().n_vocab
    np.random.seed(seed)
    cfg = GPTConfig(vocab_size=vocab_size, context_length=32, emb_dim=16, n_layers=2, n_heads=2,
                    drop_rate=0.1, pos_emb=pos_emb)
    model = GPTModel(cfg)
    if model.rel_pos_bias is not None:     # T5's bias starts at zero: make it visible
        model.rel_pos_bias.relative_attention_bias.weight.data[:] = np.random.randn(
            *model.rel_pos_bias.relative_attention_bias.weight.shape).astype(np.float32)
    return model


def architectures() -> dict:
    """name -> function(seed) building a tiny random model of each architecture the project has:
    GPT with each position scheme, and the families of gpt/architectures when they are there."""
    found = {f"gpt-{kind}": (lambda seed, kind=kind: tiny_gpt(kind, seed=seed)) for kind in POSITION_KINDS}
    try:
        from gpt.architectures import MINI_PRESETS
    except ImportError:
        return found
    for arch in MINI_PRESETS:
        found[arch] = lambda seed, arch=arch: tiny_decoder(arch, seed)
    return found


def tiny_decoder(arch: str, seed: int = 0):
    """A random 2-layer model of one of gpt/architectures' families (its CPU preset, shrunk): 4 query
    heads sharing 2 key/value heads of 8 dims, 2 experts of 4 for the MoE, a window of 4 for Gemma's
    sliding layer."""
    from gpt.architectures import MINI_PRESETS, build_model
    from gpt.architectures.config import DecoderConfig

    np.random.seed(seed)
    small = dict(vocab_size=demo_tokenizer().n_vocab, context_length=32, emb_dim=16, n_layers=2, n_heads=4,
                 n_kv_heads=2, head_dim=8, hidden_dim=32)
    preset = DecoderConfig.PRESETS[MINI_PRESETS[arch]]
    if preset.get("n_experts"):
        small.update(n_experts=4, n_experts_per_token=2, moe_hidden_dim=16)
    if preset.get("layer_types"):
        small.update(layer_types=["sliding_attention", "full_attention"], sliding_window=4, query_pre_attn_scalar=8)
    return build_model(DecoderConfig(**{**preset, **small}))


def make_run(folder: Path, pos_emb: str = "learned", instruct: bool = False) -> Path:
    """A training run folder: checkpoints step-000001 and step-000002 (different random weights) and
    a log.csv written by the pretrain command's own ``write_logs``."""
    tokenizer = demo_tokenizer()
    info = {"task": "instruction"} if instruct else {}
    for step in (1, 2):
        save_checkpoint(folder, tiny_gpt(pos_emb, seed=step), tokenizer=tokenizer, step=step, keep=3, info=info)
    state = TrainState(step=2, train_losses=[6.0, 5.5], val_losses=[6.2, float("nan")], track_tokens_seen=[64, 128],
                       eval_steps=[1, 2], track_lrs=[1e-3, 5e-4])
    write_logs(folder, state)
    return folder


@contextlib.contextmanager
def running_server(session: Session):
    """A server for ``session`` on a free port of 127.0.0.1, in a thread: yields (server, log), where
    log is the StringIO its one-line error messages go to."""
    log = io.StringIO()
    server = make_server(session, "127.0.0.1", 0, log_file=log)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def request(server, method: str, path: str, body=None, raw: bytes | None = None, headers: dict | None = None):
    """One HTTP request (the path sent exactly as given): (status, headers, body bytes)."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.putrequest(method, path, skip_host="Host" in (headers or {}), skip_accept_encoding=True)
        for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
            conn.putheader(k, v)
        if data is not None and "Content-Length" not in (headers or {}):
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def api(server, path: str, body=None):
    """(status, decoded JSON) of GET (no body) or POST (body) ``path``."""
    status, _, data = request(server, "GET" if body is None else "POST", path, body)
    return status, json.loads(data)


def api_lines(server, path: str, body):
    """(status, list of JSON lines) of a streamed POST."""
    status, headers, data = request(server, "POST", path, body)
    if status != 200:
        return status, [json.loads(data)]
    return status, [json.loads(line) for line in data.decode().splitlines() if line.strip()]


ENCODER_TEXT = "the cat sat on the mat and the dog sat on the log " * 20


def make_encoder_run(folder: Path) -> Path:
    """A run of a tiny encoder as ``pretrain --arch bert`` saves it: BertForMaskedLM checkpoints
    step-000001 and step-000002 with a BPE tokenizer that has BERT's special tokens, and a log.csv."""
    import minigrad as mg
    from gpt.architectures.bert import BertConfig, BertForMaskedLM
    from gpt.mlm import SPECIAL_TOKENS
    from gpt.tokenizer import BPETokenizer

    tokenizer = BPETokenizer.train(ENCODER_TEXT, 280, special_tokens=SPECIAL_TOKENS, verbose=False)
    for step in (1, 2):
        mg.manual_seed(step)
        model = BertForMaskedLM(BertConfig(vocab_size=tokenizer.n_vocab, context_length=32, emb_dim=16, n_heads=2,
                                           n_layers=2, hidden_dim=32, add_pooler=False))
        save_checkpoint(folder, model, tokenizer=tokenizer, step=step, keep=3, info={"settings": {"arch": "bert"}})
    state = TrainState(step=2, train_losses=[5.9, 5.4], val_losses=[6.0, 5.6], track_tokens_seen=[64, 128],
                       eval_steps=[1, 2], track_lrs=[1e-3, 5e-4])
    write_logs(folder, state)
    return folder
