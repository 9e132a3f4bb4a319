"""Speed measurements on the machine at hand: ``python -m gpt bench`` (or :func:`run_benchmarks`).

What is measured (after a warm-up, the median of ``repeats`` runs):

* ``matmul``: float32 matrix-multiply throughput at GPT-like shapes: the machine's practical peak.
* ``train``: one AdamW step (forward, cross-entropy, backward, clipping, update) for the gpt2-small
  shape (vocab 50,257, emb 768, 12 layers, 12 heads, context 256, batch 2, dropout 0.1) and for
  the default pretraining model; seconds, tokens/s, achieved GFLOP/s and its share of the peak.
* ``forward``: a no-grad forward pass of the same shapes.
* ``generate``: greedy tokens/s with and without the KV cache (4-token prompt).
* ``tokenizer``: BPE encoding MB/s and the time to train a 4,096-token vocabulary; and (when the
  ``tokenizers`` library is installed) reading a ``tokenizer.json`` and encoding the default corpus
  with :class:`~gpt.tokenizer.HFTokenizer` against the library, one thread, one ``encode`` per document.
* ``breakdown``: where one forward pass and one training step of each model spend their time, per
  op (:func:`minigrad.profile`), in milliseconds: one profiled call after two warm-up calls.
* ``decoder``: prefill time and decode tokens/s of a Qwen3-0.6B-shaped model with random weights
  (``decoder_layers`` of its 28 layers; the shape used is reported), and its grouped-query KV cache's
  memory against a full-head cache; side by side with ``transformers``' eager Qwen3 on the CPU with
  the same weights and thread count when torch and transformers are installed, as ratios.
* ``embeddings``: all-MiniLM-L6-v2 (from ``$GPT_REFERENCE_DATA`` or ``data/``; skipped when absent)
  encoding sentences of the default corpus at batch 32 with :class:`gpt.embeddings.SentenceEncoder`,
  sentences/s, against ``sentence-transformers`` on the CPU with the same thread count in the same
  run when it is installed, as a ratio.
* peak resident memory of the process after each section, and the setup (NumPy version, cores,
  whether :mod:`minigrad.allocator` keeps freed memory).

Timings are not assertions: shared machines are noisy. Compare ratios measured in one run.
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable

import numpy as np

SECTIONS = ("matmul", "train", "forward", "generate", "tokenizer", "breakdown", "decoder", "embeddings")
MODELS = {
    "gpt2-small": dict(preset="gpt2-small", context_length=256, batch=2, drop_rate=0.1),
    "pretrain-default": dict(preset="mini", context_length=128, batch=16, drop_rate=0.1, vocab_size=4096),
}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KiB)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


def _median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def setup() -> dict:
    """What the figures depend on besides the code: NumPy, the cores, and the allocator setting."""
    from minigrad import allocator

    return {"numpy": np.__version__, "cpus": os.cpu_count(),
            "keep_freed_memory": allocator.is_keeping_freed_memory()}


def matmul_peak(repeats: int = 5) -> dict:
    """GFLOP/s of float32 A @ B at the shapes of a GPT-2-small training step (batch 2 x 256 tokens)."""
    rng = np.random.default_rng(0)
    shapes = [(512, 768, 768), (512, 768, 3072), (512, 3072, 768), (512, 768, 8192)]
    best = 0.0
    per_shape = {}
    for m, k, n in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        t = _median_time(lambda: a @ b, repeats)
        gflops = 2 * m * k * n / t / 1e9
        per_shape[f"{m}x{k}x{n}"] = round(gflops, 1)
        best = max(best, gflops)
    return {"peak_gflops": round(best, 1), "by_shape": per_shape}


def _build(spec: dict):
    import minigrad as mg
    from gpt.model import GPTConfig, GPTModel

    overrides = {k: spec[k] for k in ("context_length", "drop_rate", "vocab_size") if k in spec}
    cfg = GPTConfig.from_preset(spec["preset"], **overrides)
    mg.manual_seed(123)
    return cfg, GPTModel(cfg)


def _training_step(name: str):
    """(cfg, step, tokens): one AdamW step (forward, cross-entropy, backward, clipping, update) of
    the model ``name`` of :data:`MODELS` on fixed random tokens."""
    from minigrad.optim import AdamW, clip_grad_norm_
    from gpt.train import calc_loss_batch

    spec = MODELS[name]
    cfg, model = _build(spec)
    opt = AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
    rng = np.random.default_rng(0)
    x = rng.integers(0, cfg.vocab_size, (spec["batch"], cfg.context_length))
    y = rng.integers(0, cfg.vocab_size, (spec["batch"], cfg.context_length))

    def step() -> None:
        opt.zero_grad()
        loss = calc_loss_batch(x, y, model)
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return cfg, step, x.size


def _forward_pass(name: str):
    """(forward, tokens): a no-grad forward pass of the model ``name`` (in eval mode) on fixed tokens."""
    import minigrad as mg

    spec = MODELS[name]
    cfg, model = _build(spec)
    model.eval()
    x = np.random.default_rng(0).integers(0, cfg.vocab_size, (spec["batch"], cfg.context_length))

    def forward() -> None:
        with mg.no_grad():
            model(x)

    return forward, x.size


def train_step(name: str, repeats: int = 3, peak_gflops: float | None = None) -> dict:
    """Median seconds of one AdamW training step for the model ``name`` of :data:`MODELS`."""
    from gpt.model import flops_per_token

    cfg, step, tokens = _training_step(name)
    t = _median_time(step, repeats)
    gflops = flops_per_token(cfg, training=True) * tokens / t / 1e9
    out = {"model": name, "step_s": round(t, 4), "tokens_per_s": round(tokens / t, 1),
           "gflops": round(gflops, 1)}
    if peak_gflops:
        out["fraction_of_peak"] = round(gflops / peak_gflops, 3)
    return out


def forward_pass(name: str, repeats: int = 3) -> dict:
    """Median seconds of a no-grad forward pass for the model ``name`` of :data:`MODELS`."""
    forward, tokens = _forward_pass(name)
    t = _median_time(forward, repeats)
    return {"model": name, "forward_s": round(t, 4), "tokens_per_s": round(tokens / t, 1)}


def op_breakdown(fn: Callable[[], object], top: int = 8, warmup: int = 2) -> dict:
    """Where one call of ``fn`` (after ``warmup`` calls: the allocator reaches its steady state in
    the second training step) spends its time, per op, from
    :func:`minigrad.profile`: milliseconds with each op's forward and backward summed, the ``top``
    largest by name and the rest as ``other_ops``; ``outside_ops`` is what no op accounts for (an
    optimizer step, clipping, the engine's gradient sums between backward calls, Python between the
    ops), ``total`` the wall time of the call. All values are milliseconds."""
    import minigrad as mg

    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    with mg.profile() as prof:
        fn()
    wall = time.perf_counter() - t0
    per_op = list(prof.seconds().items())
    out = {"total_ms": round(wall * 1e3, 1)}
    out.update((op, round(s * 1e3, 1)) for op, s in per_op[:top])
    out["other_ops_ms"] = round(sum(s for _, s in per_op[top:]) * 1e3, 1)
    out["outside_ops_ms"] = round((wall - prof.total) * 1e3, 1)
    return out


def generation(name: str = "gpt2-small", new_tokens: int = 30, repeats: int = 1) -> dict:
    from gpt.generate import generate

    spec = dict(MODELS[name])
    cfg, model = _build(spec)
    prompt = np.random.default_rng(0).integers(0, cfg.vocab_size, (1, 4))
    out = {"model": name, "new_tokens": new_tokens}
    for use_cache, key in ((False, "nocache_tok_s"), (True, "kvcache_tok_s")):
        generate(model, prompt, 2, use_cache=use_cache)   # warm-up
        t = _median_time(lambda: generate(model, prompt, new_tokens, use_cache=use_cache), repeats, warmup=0)
        out[key] = round(new_tokens / t, 2)
    return out


def tokenizer_speed(gpt2_dir: str | None = None) -> dict:
    from gpt.tokenizer.bench import benchmark

    r = benchmark(gpt2_dir=gpt2_dir, repeats=3)
    out = {"vocabulary": r.vocabulary, "text_kb": round(r.text_bytes / 1e3), "encode_mb_s": round(r.encode_mb_per_s, 2),
           "train_4096_s": round(r.train_seconds, 2)}
    if r.tiktoken_mb_per_s is not None:
        out["tiktoken_mb_s"] = round(r.tiktoken_mb_per_s, 2)
        out["ratio_vs_tiktoken"] = round(r.encode_mb_per_s / r.tiktoken_mb_per_s, 2)
    return out


def hf_tokenizer_speed(gpt2_dir: str | None = None, repeats: int = 3) -> dict | None:
    """tokenizer.json load + encode of the default corpus, ours vs the ``tokenizers`` library (None
    without it)."""
    from gpt.tokenizer.bench import hf_benchmark

    r = hf_benchmark(gpt2_dir=gpt2_dir, repeats=repeats)
    if r is None:
        return None
    return {"vocabulary": r.vocabulary, "documents": r.documents, "text_mb": round(r.text_bytes / 1e6, 2),
            "ours_s": round(r.ours_total_s, 2), "ours_load_s": round(r.ours_load_s, 2),
            "tokenizers_s": round(r.theirs_total_s, 2), "tokenizers_load_s": round(r.theirs_load_s, 2),
            "speed_vs_tokenizers": round(r.ratio, 2), "method": "encode per document, 1 thread"}


# ------------------------------------------------------------------------------------------------
# Today's decoders: a Qwen3-0.6B-shaped model, ours against transformers' eager implementation

DECODER_PRESET = "qwen3-0.6b"


def _blas_threads() -> int:
    """The thread count NumPy's BLAS was started with (from the usual variables; else every core)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return os.cpu_count() or 1


def _ours_prefill_decode(model, ids: np.ndarray, new_tokens: int):
    """Greedy: one forward pass over the prompt (prefill), then ``new_tokens`` steps that each pick
    the next token and run it through the model with the KV cache (decode).
    -> (prefill seconds, decode seconds, the new ids (b, new_tokens), cache)."""
    import minigrad as mg

    with mg.no_grad():
        cache = model.new_kv_cache(ids.shape[0])
        t0 = time.perf_counter()
        logits = model(ids, kv_cache=cache, last_only=True)
        t1 = time.perf_counter()
        out = []
        for _ in range(new_tokens):
            nxt = logits.data[:, -1].argmax(-1)[:, None]
            out.append(nxt)
            logits = model(nxt, kv_cache=cache, last_only=True)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, np.concatenate(out, axis=1), cache


def _torch_prefill_decode(model, ids: np.ndarray, new_tokens: int):
    """The same loop for a transformers model (its DynamicCache). -> (prefill s, decode s, ids, cache)."""
    import inspect

    import torch

    # transformers 5.2x names the cache argument ``cache``; earlier versions ``past_key_values``
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    with torch.no_grad():
        x = torch.as_tensor(ids)
        t0 = time.perf_counter()
        o = model(x, use_cache=True, logits_to_keep=1)
        t1 = time.perf_counter()
        out = []
        for _ in range(new_tokens):
            nxt = o.logits[:, -1].argmax(-1)[:, None]
            out.append(nxt.numpy())
            o = model(nxt, use_cache=True, logits_to_keep=1, **{name: o[name]})
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1, np.concatenate(out, axis=1), o[name]


def _torch_cache_bytes(cache) -> int | None:
    """Bytes of a transformers DynamicCache's key and value tensors (None if its layout is unknown)."""
    try:
        return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))
    except AttributeError:
        return None


def _torch_twin(model):
    """transformers' Qwen3ForCausalLM (eager attention, float32) with ``model``'s weights, or None
    when torch or transformers is missing."""
    try:
        import torch
        import transformers
    except ImportError:
        return None
    from gpt.hf import to_hf_tensors
    from gpt.hf.config import hf_config

    config = transformers.Qwen3Config.from_dict(hf_config(model.cfg), attn_implementation="eager")
    twin = transformers.Qwen3ForCausalLM(config).float().eval()
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in to_hf_tensors(model).items()}
    missing = set(twin.load_state_dict(state, strict=False).missing_keys)
    if missing - {"lm_head.weight"}:
        raise RuntimeError(f"transformers' Qwen3 has parameters gpt.hf does not name: {sorted(missing)[:3]}")
    twin.tie_weights()
    return twin


def decoder_speed(layers: int | None = None, prompt: int = 128, new_tokens: int = 16, repeats: int = 3,
                  compare: bool = True, preset: str = DECODER_PRESET) -> dict:
    """Prefill and decode speed of a Qwen3-0.6B-shaped model (random weights, ``layers`` of its 28),
    batch 1, greedy, ``prompt`` tokens then ``new_tokens``; with ``compare``, transformers' eager
    Qwen3 with the same weights runs the same loop, alternating with ours ``repeats`` times (medians).
    ``preset``: another Qwen3 preset of :mod:`gpt.architectures.presets` (the tests use a small one).

    Reports seconds for the prefill, tokens/s for the decode (medians), the ratios (``decode_speedup``:
    ours over theirs, above 1 is faster; ``prefill_time_ratio``: ours over theirs, below 1 is faster;
    each the median of the ratios within a round, whose order alternates),
    whether both produced the same ids, and the KV cache: the bytes of the positions held, against a
    cache with all ``n_heads`` heads (what GPT-2's multi-head attention would keep).
    """
    import minigrad as mg
    from gpt.architectures import DecoderConfig, build_model

    base = DecoderConfig.from_preset(preset)
    if base.arch != "qwen3":
        raise ValueError(f"the decoder bench compares Qwen3 models; {preset!r} is {base.arch}")
    layers = layers or base.n_layers
    cfg = DecoderConfig.from_preset(preset, n_layers=layers)
    mg.manual_seed(0)
    model = build_model(cfg)
    model.eval()
    threads = _blas_threads()
    twin = _torch_twin(model) if compare else None
    if twin is not None:
        import torch
        torch.set_num_threads(threads)
    ids = np.random.default_rng(0).integers(0, cfg.vocab_size, (1, prompt))

    out = {"shape": f"{preset} with {layers} of {base.n_layers} layers (emb {cfg.emb_dim}, "
                    f"{cfg.n_heads} query / {cfg.n_kv_heads} kv heads of {cfg.head_dim}, ffn {cfg.hidden_dim}, "
                    f"vocab {cfg.vocab_size})",
           "prompt_tokens": prompt, "new_tokens": new_tokens, "threads": threads}
    ours_runs, theirs_runs = [], []
    _ours_prefill_decode(model, ids, 2)                    # warm-up: first-call allocations
    if twin is not None:
        _torch_prefill_decode(twin, ids, 2)
    for i in range(repeats):      # alternating, and each side first in every other round: on a shared
        order = ["ours", "theirs"] if i % 2 == 0 else ["theirs", "ours"]   # machine speed drifts
        for side in order:
            if side == "ours":
                ours_runs.append(_ours_prefill_decode(model, ids, new_tokens))
            elif twin is not None:
                theirs_runs.append(_torch_prefill_decode(twin, ids, new_tokens))
    prefill = statistics.median(r[0] for r in ours_runs)
    decode = new_tokens / statistics.median(r[1] for r in ours_runs)
    out.update(prefill_s=round(prefill, 6), decode_tok_s=round(decode, 2))

    cache = ours_runs[-1][3]
    positions = prompt + new_tokens                        # each of the new tokens is fed back once
    per_head = 2 * layers * positions * cfg.head_dim * np.dtype(np.float32).itemsize
    out.update(kv_cache_mb=round(per_head * cfg.n_kv_heads / 1e6, 2),
               full_head_cache_mb=round(per_head * cfg.n_heads / 1e6, 2),
               kv_cache_allocated_mb=round(cache.nbytes / 1e6, 2))
    if twin is not None:
        t_prefill = statistics.median(r[0] for r in theirs_runs)
        t_decode = new_tokens / statistics.median(r[1] for r in theirs_runs)
        torch_cache = _torch_cache_bytes(theirs_runs[-1][3])
        # ratios within each round (neighbours in time), then their median
        decode_speedup = statistics.median(b[1] / a[1] for a, b in zip(ours_runs, theirs_runs))
        prefill_ratio = statistics.median(a[0] / b[0] for a, b in zip(ours_runs, theirs_runs))
        out.update(torch_prefill_s=round(t_prefill, 6), torch_decode_tok_s=round(t_decode, 2),
                   decode_speedup=round(decode_speedup, 2), prefill_time_ratio=round(prefill_ratio, 2),
                   same_ids=all(np.array_equal(a[2], b[2]) for a, b in zip(ours_runs, theirs_runs)))
        if torch_cache is not None:
            out["torch_kv_cache_mb"] = round(torch_cache / 1e6, 2)
    return out


def torch_reference(script: str, gen: int = 30, steps: int = 3) -> dict:
    """Run ``shared/bench/torch_ref.py`` (PyTorch, same architecture) and parse its key=value line."""
    cmd = [sys.executable, script, "--cfg", "124M", "--batch", "2", "--ctx", "256", "--steps", str(steps),
           "--gen", str(gen)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    line = done.stdout.strip().splitlines()[-1]
    return {k: float(v) for k, v in (item.split("=") for item in line.split())}


def _ratios(results: dict, ref: dict) -> dict:
    """Ours over PyTorch for the gpt2-small measurements present: time ratios for the training step
    and forward pass (below 1 is faster), speed ratios for generation (above 1 is faster)."""
    out = {}
    if "train/gpt2-small" in results:
        out["train_step_ratio"] = round(results["train/gpt2-small"]["step_s"] / ref["train_step_s"], 2)
    if "forward/gpt2-small" in results:
        out["forward_ratio"] = round(results["forward/gpt2-small"]["forward_s"] / ref["forward_s"], 2)
    if "generate/gpt2-small" in results:
        g = results["generate/gpt2-small"]
        out["kvcache_speedup_vs_torch"] = round(g["kvcache_tok_s"] / ref["gen_kvcache_tok_s"], 2)
        out["nocache_speedup_vs_torch"] = round(g["nocache_tok_s"] / ref["gen_nocache_tok_s"], 2)
    return out


# ------------------------------------------------------------------------------------------------
# Sentence embeddings: all-MiniLM-L6-v2, ours against sentence-transformers

MINILM = "all-MiniLM-L6-v2"


def minilm_folder(root: str | os.PathLike = ".") -> str | None:
    """all-MiniLM-L6-v2's folder: in ``$GPT_REFERENCE_DATA``, else in ``root/data``; None if neither has it."""
    from pathlib import Path

    from gpt.download import REFERENCE_ENV

    for base in (os.environ.get(REFERENCE_ENV), Path(root) / "data"):
        if base and (Path(base) / MINILM / "model.safetensors").is_file():
            return str(Path(base) / MINILM)
    return None


def benchmark_sentences(n: int = 512) -> list[str]:
    """``n`` sentences of the default corpus, 5 to 60 words each, in the corpus's order."""
    import regex

    from gpt.corpus import default_corpus

    found = []
    for piece in regex.split(r"(?<=[.!?])\s+", default_corpus(max_chars=400_000)):
        words = piece.split()
        if 5 <= len(words) <= 60:
            found.append(" ".join(words))
            if len(found) == n:
                break
    return found


def embeddings_speed(folder: str | None = None, batch_size: int = 32, sentences: int = 512,
                     repeats: int = 3) -> dict | None:
    """Sentences/s of all-MiniLM-L6-v2 at ``batch_size`` (None without the model folder): ours
    (SentenceEncoder), and sentence-transformers' on the CPU with the same threads when installed.
    The two take turns (ours, theirs, ours, ...) after a warm-up each, and each reports its median,
    so that a shared machine's drift weighs on both alike."""
    from gpt.embeddings import SentenceEncoder

    folder = folder or minilm_folder()
    if folder is None:
        return None
    texts = benchmark_sentences(sentences)
    ours = SentenceEncoder.from_pretrained(folder)
    threads = _blas_threads()
    out = {"model": MINILM, "sentences": len(texts), "batch": batch_size, "threads": threads}
    run_ours = lambda: ours.encode(texts, batch_size=batch_size)  # noqa: E731
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        out["ours_sent_s"] = round(len(texts) / _median_time(run_ours, repeats), 1)
        out["sentence_transformers"] = "not installed"
        return out
    torch.set_num_threads(threads)
    try:                                    # no "Loading weights" bar in the report
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    theirs = SentenceTransformer(folder, device="cpu")

    def run_theirs():
        with torch.inference_mode():
            return theirs.encode(texts, batch_size=batch_size, show_progress_bar=False)

    ours_times, theirs_times = [], []
    for i in range(repeats + 1):                       # the first round warms both up
        for fn, times in ((run_ours, ours_times), (run_theirs, theirs_times)):
            t0 = time.perf_counter()
            fn()
            if i:
                times.append(time.perf_counter() - t0)
    ours_s, theirs_s = statistics.median(ours_times), statistics.median(theirs_times)
    out["ours_sent_s"] = round(len(texts) / ours_s, 1)
    out["sentence_transformers_sent_s"] = round(len(texts) / theirs_s, 1)
    out["speed_vs_sentence_transformers"] = round(theirs_s / ours_s, 2)
    return out


def run_benchmarks(sections=SECTIONS, repeats: int = 3, models=tuple(MODELS), gpt2_dir: str | None = None,
                   torch_script: str | None = None, rounds: int = 1,
                   report: Callable[[str, dict], None] | None = None, decoder_layers: int | None = None) -> dict:
    """Run the chosen sections; returns {section: result}. ``report(section, result)`` is called as
    each finishes (for live printing).

    With ``torch_script``, the PyTorch reference runs right after the model sections, and
    ``results["torch"]["ours_over_torch"]`` holds the ratios. With ``rounds`` > 1 the model sections
    and the reference alternate that many times (on a shared machine the speed drifts within
    minutes, so a ratio is only fair between neighbours); ``results["rounds"]`` lists each round's
    ratios and ``results["median_ratios"]`` their medians. The other sections run once.
    ``decoder_layers``: how many of Qwen3-0.6B's 28 layers the ``decoder`` section builds (default: all).
    """
    results: dict = {}

    def done(key: str, value: dict) -> None:
        value["peak_rss_mb"] = round(peak_rss_mb())
        results[key] = value
        if report is not None:
            report(key, value)

    done("setup", setup())
    peak = None
    if "matmul" in sections:
        r = matmul_peak(max(repeats, 3))
        peak = r["peak_gflops"]
        done("matmul", r)
    if "tokenizer" in sections:
        done("tokenizer", tokenizer_speed(gpt2_dir))
        hf = hf_tokenizer_speed(gpt2_dir, max(repeats, 3))
        if hf is not None:
            done("tokenizer/tokenizer.json", hf)
    if "breakdown" in sections:
        for m in models:
            done(f"breakdown/forward/{m}", op_breakdown(_forward_pass(m)[0]))
            done(f"breakdown/train/{m}", op_breakdown(_training_step(m)[1]))
    per_round = []
    for _ in range(rounds if torch_script else 1):
        if "train" in sections:
            for m in models:
                done(f"train/{m}", train_step(m, repeats, peak))
        if "forward" in sections:
            for m in models:
                done(f"forward/{m}", forward_pass(m, repeats))
        if "generate" in sections:
            done("generate/gpt2-small", generation("gpt2-small"))
        if torch_script:
            ref = torch_reference(torch_script)
            if "error" not in ref:
                ref["ours_over_torch"] = _ratios(results, ref)
                per_round.append(ref["ours_over_torch"])
            results["torch"] = ref
            if report is not None:
                report("torch", ref)
            if "error" in ref:
                break
    if "decoder" in sections:
        done(f"decoder/{DECODER_PRESET}", decoder_speed(decoder_layers, repeats=repeats))
    if "embeddings" in sections:
        r = embeddings_speed(repeats=repeats)
        done(f"embeddings/{MINILM}", r if r is not None else {"skipped": f"no {MINILM} folder in "
                                                                         "$GPT_REFERENCE_DATA or data/"})
    if per_round and rounds > 1:   # (a reference that failed in a later round keeps the earlier ones)
        results["rounds"] = per_round
        results["median_ratios"] = {k: round(statistics.median(r[k] for r in per_round), 2) for k in per_round[0]}
    return results
