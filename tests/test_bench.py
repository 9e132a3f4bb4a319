"""``gpt.bench`` / ``python -m gpt bench``: the report's structure and arithmetic, on tiny models
(the real shapes take minutes). Nothing here asserts a timing: the bench reports, it is not tested
for speed."""
import contextlib
import json

import pytest

from gpt import bench
from gpt.model import GPTConfig, flops_per_token
from tests.cli_helpers import run_cli

TINY = dict(preset="tiny", context_length=16, batch=2, drop_rate=0.1)


@pytest.fixture
def tiny_models(monkeypatch):
    """Both bench models replaced by the tiny preset, under their usual names."""
    monkeypatch.setattr(bench, "MODELS", {"gpt2-small": TINY, "pretrain-default": dict(TINY, batch=3)})


def test_sections_report_consistent_figures(tiny_models):
    seen = []
    r = bench.run_benchmarks(sections=("matmul", "train", "forward", "generate"), repeats=1,
                             report=lambda key, value: seen.append(key))
    assert seen == list(r) == ["setup", "matmul", "train/gpt2-small", "train/pretrain-default",
                               "forward/gpt2-small", "forward/pretrain-default", "generate/gpt2-small"]
    assert r["setup"]["cpus"] >= 1 and isinstance(r["setup"]["keep_freed_memory"], bool)
    peak = r["matmul"]["peak_gflops"]
    assert peak == max(r["matmul"]["by_shape"].values()) > 0

    cfg = GPTConfig.from_preset("tiny", context_length=16)
    for name, batch in (("gpt2-small", 2), ("pretrain-default", 3)):
        train = r[f"train/{name}"]
        tokens = batch * 16
        # the figures are rounded (seconds to 4 decimals): allow for that on a millisecond step
        rel = 0.01 + 5e-5 / train["step_s"]
        assert train["tokens_per_s"] == pytest.approx(tokens / train["step_s"], rel=rel)
        gflops = flops_per_token(cfg, training=True) * tokens / train["step_s"] / 1e9
        # gflops is rounded to 0.1 (0.05 at most) on top of step_s's rounding
        assert abs(train["gflops"] - gflops) <= 0.05 + rel * gflops
        # gflops is rounded to 0.1 and the fraction to 0.001: both roundings bound the difference
        assert train["fraction_of_peak"] == pytest.approx(train["gflops"] / peak, rel=rel, abs=0.0005 + 0.05 / peak)
        fwd = r[f"forward/{name}"]
        assert fwd["tokens_per_s"] == pytest.approx(tokens / fwd["forward_s"], rel=0.01 + 5e-5 / fwd["forward_s"])
    gen = r["generate/gpt2-small"]
    assert gen["new_tokens"] == 30 and gen["nocache_tok_s"] > 0 and gen["kvcache_tok_s"] > 0
    assert all(v["peak_rss_mb"] > 0 for v in r.values())


def test_breakdown_accounts_for_the_whole_call(tiny_models):
    r = bench.run_benchmarks(sections=("breakdown",), models=("gpt2-small",))
    assert list(r) == ["setup", "breakdown/forward/gpt2-small", "breakdown/train/gpt2-small"]
    outside = {}
    for kind, top_ops in (("forward", {"Linear", "MaskedSoftmax", "LayerNorm", "GELU"}),
                          ("train", {"Linear", "CrossEntropy", "MaskedSoftmax"})):
        b = dict(r[f"breakdown/{kind}/gpt2-small"])
        total, outside[kind], rest = b.pop("total_ms"), b.pop("outside_ops_ms"), b.pop("other_ops_ms")
        b.pop("peak_rss_mb")
        assert len(b) == 8 and top_ops & set(b)            # the eight largest ops, by name
        assert list(b.values()) == sorted(b.values(), reverse=True)
        # the ops' time is part of the wall time, never more (0.1 ms rounding per figure)
        assert 0 <= sum(b.values()) + rest <= total + 0.1 * (len(b) + 2)
        # each op in other_ops took less than the smallest one listed (and minigrad has under 40 ops)
        assert outside[kind] >= -0.1 and rest <= min(b.values()) * 40
    assert outside["train"] > outside["forward"]            # the AdamW update and clipping are outside any op


def test_op_breakdown_splits_off_what_no_op_accounts_for():
    import time
    import minigrad as mg

    def fn():
        mg.tensor([1.0, 2.0]).exp()
        time.sleep(0.02)                                   # outside any op
    b = bench.op_breakdown(fn, top=1)
    assert set(b) == {"total_ms", "Exp", "other_ops_ms", "outside_ops_ms"}
    assert b["other_ops_ms"] == 0 and b["outside_ops_ms"] >= 20 and b["total_ms"] >= b["outside_ops_ms"]


def fake_torch_script(tmp_path, body):
    script = tmp_path / "torch_ref.py"
    script.write_text(body)
    return str(script)


def test_ratios_against_the_torch_reference(tiny_models, tmp_path, monkeypatch):
    script = fake_torch_script(tmp_path, "print('some log line')\nprint('params=10 train_step_s=2.0 "
                                         "forward_s=0.5 gen_nocache_tok_s=10 gen_kvcache_tok_s=40')\n")
    fixed = {"train/gpt2-small": {"step_s": 3.0}, "forward/gpt2-small": {"forward_s": 0.25},
             "generate/gpt2-small": {"nocache_tok_s": 5.0, "kvcache_tok_s": 50.0}}
    monkeypatch.setattr(bench, "train_step", lambda name, *a: dict(fixed.get(f"train/{name}", {"step_s": 1.0})))
    monkeypatch.setattr(bench, "forward_pass", lambda name, *a: dict(fixed.get(f"forward/{name}", {"forward_s": 1.0})))
    monkeypatch.setattr(bench, "generation", lambda name: dict(fixed["generate/gpt2-small"]))
    r = bench.run_benchmarks(sections=("train", "forward", "generate"), torch_script=script)
    assert r["torch"]["train_step_s"] == 2.0
    assert r["torch"]["ours_over_torch"] == {"train_step_ratio": 1.5, "forward_ratio": 0.5,
                                             "kvcache_speedup_vs_torch": 1.25, "nocache_speedup_vs_torch": 0.5}


def test_rounds_alternate_and_report_median_ratios(tiny_models, tmp_path, monkeypatch):
    # the fake reference gets slower each time it runs (1 s, 2 s, 4 s per step); ours stays at 2 s
    counter = tmp_path / "runs"
    script = fake_torch_script(tmp_path, f"""
from pathlib import Path
p = Path({str(counter)!r}); n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1))
print(f"params=10 train_step_s={{2.0 ** n}} forward_s=1 gen_nocache_tok_s=1 gen_kvcache_tok_s=1")
""")
    calls = []
    monkeypatch.setattr(bench, "train_step", lambda name, *a: calls.append(name) or {"step_s": 2.0})
    r = bench.run_benchmarks(sections=("train",), models=("gpt2-small",), torch_script=script, rounds=3)
    assert calls == ["gpt2-small"] * 3                      # ours is measured again before each reference run
    assert [x["train_step_ratio"] for x in r["rounds"]] == [2.0, 1.0, 0.5]
    assert r["median_ratios"] == {"train_step_ratio": 1.0}


def test_a_failing_torch_reference_is_reported_not_raised(tmp_path):
    script = fake_torch_script(tmp_path, "raise SystemExit('No module named torch')\n")
    r = bench.run_benchmarks(sections=(), torch_script=script)
    assert r["torch"] == {"error": "No module named torch"}


def test_cli_prints_json(tiny_models):
    code, out, err = run_cli("bench", "--only", "matmul", "--repeats", "1", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert set(r) == {"setup", "matmul"} and r["matmul"]["peak_gflops"] > 0


def test_cli_prints_each_round_and_the_median(tiny_models, tmp_path):
    script = fake_torch_script(tmp_path, "print('params=1 train_step_s=1 forward_s=100 gen_nocache_tok_s=1 "
                                         "gen_kvcache_tok_s=1')\n")
    code, out, err = run_cli("bench", "--only", "forward", "--models", "gpt2-small", "--repeats", "1",
                             "--torch", script, "--rounds", "2")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split(",")[0].split()[0] for line in lines] == [
        "setup", "forward/gpt2-small", "torch", "forward/gpt2-small", "torch", "ratios", "ratios", "median"]
    assert lines[-1].startswith("median ratios") and "forward_ratio=0.0" in lines[-1]


def test_cli_prints_a_table_line_per_section(tiny_models):
    code, out, err = run_cli("bench", "--only", "forward", "--models", "pretrain-default", "--repeats", "1")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["setup", "forward/pretrain-default"]
    assert "forward_s=" in lines[1] and "model=pretrain-default" in lines[1]


@pytest.mark.parametrize("argv, message", [
    (["--torch", "no/such/torch_ref.py"], "no/such/torch_ref.py: no such file"),
    (["--repeats", "0"], "--repeats"),
    (["--only", "everything"], "invalid choice"),
])
def test_cli_bad_input_is_one_line(argv, message):
    code, out, err = run_cli("bench", *argv)
    assert code != 0 and message in err
    assert "Traceback" not in err


def test_the_command_line_knows_the_bench_sections_and_models():
    from gpt.cli import bench as cli_bench

    assert cli_bench.SECTIONS == bench.SECTIONS
    assert cli_bench.MODELS == tuple(bench.MODELS)


def test_decoder_section_reports_speeds_ratios_and_the_gqa_cache():
    from gpt.architectures import DecoderConfig

    r = bench.decoder_speed(layers=2, prompt=8, new_tokens=4, repeats=1, preset="qwen3-mini")
    cfg = DecoderConfig.from_preset("qwen3-mini")
    assert r["shape"].startswith("qwen3-mini with 2 of 4 layers") and r["threads"] >= 1
    assert r["prefill_s"] > 0 and r["decode_tok_s"] > 0
    # the cache holds n_kv_heads heads for 8 + 4 positions in each of 2 layers, keys and values
    per_head = 2 * 2 * (8 + 4) * cfg.head_dim * 4 / 1e6
    assert r["kv_cache_mb"] == pytest.approx(per_head * cfg.n_kv_heads, abs=0.01)
    assert r["full_head_cache_mb"] == pytest.approx(per_head * cfg.n_heads, abs=0.01)
    assert r["kv_cache_allocated_mb"] >= r["kv_cache_mb"]
    if "torch_decode_tok_s" in r:                           # transformers installed: the same model ran
        assert r["same_ids"] is True
        # one round: the medians are that round's figures, and the ratios theirs; every figure is
        # rounded (seconds to 4 decimals, tokens/s to 2, ratios to 2), which on millisecond timings
        # moves a ratio by up to 5e-5 / seconds of each of its two terms
        prefill_rel = 5e-5 / r["prefill_s"] + 5e-5 / r["torch_prefill_s"]
        assert abs(r["prefill_time_ratio"] - r["prefill_s"] / r["torch_prefill_s"]) <= 0.005 + 1.01 * prefill_rel * r["prefill_time_ratio"] + 1e-3
        decode_rel = 0.005 / r["decode_tok_s"] + 0.005 / r["torch_decode_tok_s"]
        assert abs(r["decode_speedup"] - r["decode_tok_s"] / r["torch_decode_tok_s"]) <= 0.005 + 1.01 * decode_rel * r["decode_speedup"] + 1e-3
        assert r["torch_kv_cache_mb"] == pytest.approx(r["kv_cache_mb"], abs=0.01)


def test_embeddings_section_skips_without_the_model_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("GPT_REFERENCE_DATA", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert bench.minilm_folder() is None and bench.embeddings_speed() is None
    r = bench.run_benchmarks(sections=("embeddings",), repeats=1)
    assert "skipped" in r["embeddings/all-MiniLM-L6-v2"]


def test_embeddings_section_reports_sentences_per_second_and_the_ratio(reference_data, monkeypatch):
    """Ours for real; sentence-transformers replaced by a stand-in that takes twice our time per call
    (importing the real one takes longer than the whole test; ``python -m gpt bench`` runs it)."""
    import sys
    import time
    import types

    folder = reference_data / "all-MiniLM-L6-v2"
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"all-MiniLM-L6-v2 is not in {reference_data}")
    sentences = bench.benchmark_sentences(40)
    assert len(sentences) == 40 and all(5 <= len(s.split()) <= 60 for s in sentences)
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)          # not installed
    r = bench.embeddings_speed(str(folder), batch_size=32, sentences=8, repeats=1)
    assert r["sentences"] == 8 and r["batch"] == 32 and r["ours_sent_s"] > 0
    assert r["sentence_transformers"] == "not installed"

    class Slow:
        def __init__(self, folder, device):
            from gpt.embeddings import SentenceEncoder
            assert device == "cpu"
            self.encoder = SentenceEncoder.from_pretrained(folder)

        def encode(self, texts, batch_size, show_progress_bar):
            started = time.perf_counter()
            vectors = self.encoder.encode(texts, batch_size=batch_size)
            time.sleep(time.perf_counter() - started)
            return vectors

    fake_torch = types.SimpleNamespace(set_num_threads=lambda n: None, inference_mode=contextlib.nullcontext)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "transformers", None)          # (it would look into the stand-in torch)
    monkeypatch.setitem(sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=Slow))
    r = bench.embeddings_speed(str(folder), batch_size=32, sentences=8, repeats=1)
    assert r["speed_vs_sentence_transformers"] > 1                        # the stand-in is slower than ours
    assert r["speed_vs_sentence_transformers"] == pytest.approx(
        r["ours_sent_s"] / r["sentence_transformers_sent_s"], rel=0.05)
