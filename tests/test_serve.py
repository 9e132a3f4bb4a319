"""The look-inside page (``python -m gpt serve``): the library under it (gpt.serve.inspect_model) on
every architecture, and the JSON API over real HTTP on an ephemeral port, refusals included."""
import concurrent.futures
import json
import math
import signal
import struct
import subprocess
import sys
import urllib.request

import numpy as np
import pytest

import minigrad as mg
from gpt.finetune.instruct import demo_tokenizer
from gpt.generate import generate, sampling_probs
from gpt.serve import inspect_model as look
from gpt.serve.api import LIMITS, Session
from gpt.serve.server import STATIC, static_file
from gpt.train import calc_loss_batch
from tests.cli_helpers import subprocess_env
from tests.serve_helpers import PROMPT, api, api_lines, architectures, make_run, request, running_server, tiny_gpt

ARCHS = architectures()


def serve_checkpoint(folder):
    """Yield (server, session, log) serving ``folder``'s newest checkpoint as 'serve --checkpoint' does."""
    from types import SimpleNamespace

    from gpt.cli.serve import session_from_args

    session = session_from_args(SimpleNamespace(checkpoint=str(folder), gpt2=None, vocab=None, hf=None))
    with running_server(session) as (server, log):
        yield server, session, log


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="module")
def served(run_folder):
    """A server for the run's newest checkpoint, as 'python -m gpt serve --checkpoint' makes it."""
    yield from serve_checkpoint(run_folder)


def alive(server) -> None:
    """The server still answers after whatever the test did."""
    status, info = api(server, "/api/info")
    assert status == 200 and info["model"]["n_layers"] == 2


def ids_of(text: str) -> list:
    return look.encode(demo_tokenizer(), text)


# ---------------------------------------------------------------------- the library, every architecture
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_internals_agree_with_the_model_and_leave_no_trace(arch):
    model = ARCHS[arch](seed=1)
    ids = ids_of(PROMPT)
    with look.evaluating(model):
        expected = model(np.asarray([ids])).data[0]
    got = look.run_with_internals(model, ids, attention_layers=[0, 1])
    np.testing.assert_allclose(got["logits"], expected, rtol=1e-5, atol=1e-6)
    assert got["hidden"].shape == (model.cfg.n_layers + 1, len(ids), model.cfg.emb_dim)
    # the last hidden state through the final norm and head is the model's own output
    with look.evaluating(model):
        again = model.out_head(model.final_norm(mg.Tensor(got["hidden"][-1][None]))).data[0]
    np.testing.assert_allclose(again, expected, rtol=1e-4, atol=1e-5)
    for layer, w in got["attention"].items():
        assert w.shape[1:] == (len(ids), len(ids))
        np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)
        assert np.all(np.triu(w, k=1) == 0), "a query attended to a later token"
    # nothing is left behind: no hooks, attention no longer kept, the model's mode restored
    assert all(not m._forward_hooks for m in model.modules())
    assert all(not m.keep_attention and m.last_attn_weights is None
               for b in model.trf_blocks for m in look.attention_modules(b))
    assert model.training


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_logit_lens_reads_each_layer_with_its_own_statistics(arch):
    model = ARCHS[arch](seed=2)
    ids = ids_of(PROMPT)
    internals = look.run_with_internals(model, ids)
    lens = look.logit_lens(model, ids, internals)
    hidden = internals["hidden"].astype(np.float64)
    layers = model.cfg.n_layers + 1
    assert lens["top_ids"].shape == lens["top_probs"].shape == lens["norms"].shape == (layers, len(ids))
    np.testing.assert_allclose(lens["norms"], np.sqrt((hidden ** 2).sum(-1)), rtol=1e-6)
    logits = internals["logits"].astype(np.float64)
    np.testing.assert_array_equal(lens["top_ids"][-1], logits.argmax(-1))
    np.testing.assert_allclose(lens["top_probs"][-1], sampling_probs(logits, 1.0).max(-1), rtol=1e-4)
    if arch.startswith("gpt-"):      # LayerNorm written out: each row normalised by its own mean and variance
        n = model.final_norm
        for layer in range(layers):
            h = hidden[layer]
            normed = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + n.eps)
            direct = (normed * n.scale.data + n.shift.data) @ model.out_head.weight.data.T.astype(np.float64)
            np.testing.assert_array_equal(lens["top_ids"][layer], direct.argmax(-1))
            np.testing.assert_allclose(lens["top_probs"][layer], sampling_probs(direct, 1.0).max(-1), rtol=1e-4)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_attention_is_what_the_layer_computes(arch):
    model = ARCHS[arch](seed=3)
    ids = ids_of("Below is an")
    weights = look.attention(model, ids, 1)
    attn = look.attention_modules(model.trf_blocks[1])[0]
    # keeping the weights changes nothing the model computes
    with look.evaluating(model):
        plain = model(np.asarray([ids])).data
        attn.keep_attention = True
        kept = model(np.asarray([ids])).data
        attn.keep_attention = False
    np.testing.assert_array_equal(plain, kept)
    np.testing.assert_array_equal(attn.last_attn_weights[0], weights)
    if arch == "gpt-learned":      # softmax(q k^T / sqrt(hd)) with the causal mask, written out
        x = look.run_with_internals(model, ids)["hidden"][1].astype(np.float64)
        block = model.trf_blocks[1]
        n = block.norm1
        xn = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + n.eps) * n.scale.data + n.shift.data
        H, hd = model.cfg.n_heads, model.cfg.head_dim
        q = (xn @ attn.W_query.weight.data.T).reshape(len(ids), H, hd).transpose(1, 0, 2)
        k = (xn @ attn.W_key.weight.data.T).reshape(len(ids), H, hd).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        scores[:, np.triu(np.ones((len(ids), len(ids)), bool), 1)] = -np.inf
        expected = np.exp(scores - scores.max(-1, keepdims=True))
        expected /= expected.sum(-1, keepdims=True)
        np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)


def test_attention_weights_are_not_kept_unless_asked():
    model = tiny_gpt()
    model(np.asarray([ids_of("Below")]))
    assert all(m.last_attn_weights is None for b in model.trf_blocks for m in look.attention_modules(b))


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, None, None), (0.7, 5, None), (1.3, None, 0.6),
                                                      (0.9, 10, 0.8), (0.0, None, None)])
def test_next_token_distribution_is_what_sampling_draws_from(temperature, top_k, top_p):
    logits = np.random.default_rng(0).normal(size=300).astype(np.float32) * 3
    d = look.next_token_distribution(logits, temperature, top_k, top_p, n=300)
    expected = sampling_probs(logits[None], temperature, top_k, top_p)[0]
    np.testing.assert_allclose(d["p_sample"], expected[d["ids"]])
    np.testing.assert_array_equal(d["ids"], np.argsort(-logits, kind="stable"))
    np.testing.assert_allclose(d["p_model"], sampling_probs(logits[None], 1.0)[0][d["ids"]])
    assert d["kept"] == int((expected > 0).sum())
    if temperature > 0:
        # the cumulative mass is the running sum of p_scaled; top-p keeps a token iff the mass before it is below top_p
        np.testing.assert_allclose(d["cumulative"], np.cumsum(d["p_scaled"]), rtol=1e-9)
        if top_p is not None:
            before = d["cumulative"] - d["p_scaled"]
            np.testing.assert_array_equal(d["p_sample"] > 0, (before < top_p) & (d["p_scaled"] > 0))
    else:
        assert d["p_sample"][0] == 1.0 and d["kept"] == 1


def test_tokens_carry_their_bytes_and_merge_rank():
    tok = demo_tokenizer()
    ids = tok.encode("Below is an instruction<|endoftext|>", allowed_special="all")
    tokens = look.describe_tokens(tok, ids)
    assert b"".join(bytes(t["bytes"]) for t in tokens) == b"Below is an instruction<|endoftext|>"
    merged = [t for t in tokens if t["rank"] is not None]
    assert merged, "the demo tokenizer merges its template words"
    for t in merged:           # merge `rank` joins two tokens into exactly this one
        a, b = tok.merges[t["rank"]]
        assert tok.decode_single_token_bytes(a) + tok.decode_single_token_bytes(b) == bytes(t["bytes"])
    assert [t["special"] for t in tokens].count(True) == 1 and tokens[-1]["rank"] is None
    single = look.describe_tokens(tok, [ord("x")])[0]
    assert single["rank"] is None and single["bytes"] == [ord("x")]


def test_position_losses_average_to_the_training_loss():
    model = tiny_gpt(seed=4)
    ids = ids_of(PROMPT)
    losses = look.position_losses(model, ids)
    assert losses.shape == (len(ids) - 1,)
    model.eval()
    with mg.no_grad():
        loss = float(calc_loss_batch(np.asarray([ids[:-1]]), np.asarray([ids[1:]]), model).data)
    assert losses.mean() == pytest.approx(loss, rel=1e-5)


def test_log_csv_is_read_as_the_pretrain_command_writes_it(run_folder):
    columns = look.read_log_csv(run_folder / "log.csv")
    assert columns["step"] == [1.0, 2.0] and columns["train_loss"] == [6.0, 5.5]
    assert columns["val_loss"] == [6.2, None]        # NaN becomes null (JSON has no NaN)
    assert look.run_checkpoints(run_folder) == ["step-000001", "step-000002"]


def test_text_pieces_hold_back_incomplete_characters():
    from gpt.serve.api import TextPieces

    tok = demo_tokenizer()
    ids = tok.encode("héllo wörld ✓ é")

    class OnlyDecode:                    # a tokenizer that cannot give one token's bytes (e.g. tokenizer.json's)
        def decode(self, ids):
            return tok.decode(ids)

    for t in (tok, OnlyDecode()):
        pieces = TextPieces(t)
        out = [pieces.add(i) for i in ids]
        assert "".join(out) + pieces.flush() == "héllo wörld ✓ é"
        assert "\ufffd" not in "".join(out)
        assert "" in out                 # a character split over byte tokens waits for its last byte


def test_generation_stops_at_any_stop_id():
    session = Session(tiny_gpt(seed=6), demo_tokenizer())
    base = session.prepare_generate({"text": PROMPT, "max_new_tokens": 10, "temperature": 0})
    lines = []
    session.generate(base, lines.append)
    free = [line["token"]["id"] for line in lines if "token" in line]
    stop = free[3]
    lines = []
    session.generate({**base, "stop_ids": [12345, stop]}, lines.append)
    cut = [line["token"]["id"] for line in lines if "token" in line]
    assert cut == free[:free.index(stop)] and lines[-1]["stopped"] == "end of text"
    assert lines[-1]["n_new"] == len(cut)


# ---------------------------------------------------------------------- the API over HTTP
def test_static_files_and_page(served):
    server, _, _ = served
    status, headers, body = request(server, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'src="app.js"' in body and b"://" not in body          # nothing loaded from elsewhere
    assert b"://" not in (STATIC / "style.css").read_bytes()
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, body = request(server, "GET", "/" + name)
        assert status == 200 and headers["Content-Type"].startswith(kind)
        assert body == (STATIC / name).read_bytes()
    assert request(server, "HEAD", "/app.js")[0] == 200


@pytest.mark.parametrize("path", ["/../pyproject.toml", "/%2e%2e/%2e%2e/%2e%2e/pyproject.toml", "/%2E%2E%2fserver.py",
                                  "/..%2f..%2fapi.py", "//etc/passwd", "/%2fetc%2fpasswd", "/static/../../server.py",
                                  "/..\\server.py", "/app.js%00.png", "/nothing-here.js", "/.", "/../"])
def test_nothing_outside_static_is_served(served, path):
    server, _, _ = served
    status, _, body = request(server, "GET", path)
    assert status in (400, 403, 404), (path, status)
    assert b"import" not in body and b"root:" not in body
    assert "error" in json.loads(body)
    alive(server)


def test_symlinks_out_of_the_folder_are_refused(tmp_path):
    root = tmp_path / "static"
    root.mkdir()
    (root / "page.html").write_text("page")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    (root / "dir").symlink_to(tmp_path)
    (root / "in.html").symlink_to(root / "page.html")
    assert static_file("/page.html", root) == (root / "page.html").resolve()
    assert static_file("/in.html", root) == (root / "page.html").resolve()     # a link that stays inside
    assert static_file("/out.txt", root) is None
    assert static_file("/dir/secret.txt", root) is None
    assert static_file(str(tmp_path / "secret.txt"), root) is None
    assert static_file("/", root) is None                                       # no index.html there


def test_info_describes_the_model(served):
    server, session, _ = served
    status, info = api(server, "/api/info")
    cfg = session.model.cfg
    assert status == 200
    assert info["model"]["n_layers"] == cfg.n_layers and info["model"]["n_heads"] == cfg.n_heads
    assert info["model"]["vocab_size"] == cfg.vocab_size and info["model"]["heads_per_layer"] == [2, 2]
    assert info["model"]["parameters"] == session.model.num_parameters()
    assert info["training"] is True and info["chat"] is None
    assert info["checkpoints"] == ["step-000001", "step-000002"]
    assert info["limits"]["max_new_tokens"] == LIMITS["max_new_tokens"]


def test_tokenize(served):
    server, _, _ = served
    text = "Below is an instruction. héllo"
    status, r = api(server, "/api/tokenize", {"text": text})
    assert status == 200
    assert [t["id"] for t in r["tokens"]] == ids_of(text)
    assert r["n_tokens"] == len(r["tokens"]) and r["n_chars"] == len(text)
    assert b"".join(bytes(t["bytes"]) for t in r["tokens"]).decode() == text


def test_next_matches_sampling(served):
    server, session, _ = served
    body = {"text": PROMPT, "temperature": 0.7, "top_k": 20, "top_p": 0.9}
    status, r = api(server, "/api/next", body)
    assert status == 200
    with look.evaluating(session.model):
        logits = session.model(np.asarray([ids_of(PROMPT)])).data[0, -1]
    expected = sampling_probs(logits[None], 0.7, 20, 0.9)[0]
    got = {t["id"]: t["p_sample"] for t in r["tokens"]}
    for i, p in got.items():
        assert p == pytest.approx(expected[i], rel=1e-5, abs=1e-9)
    assert r["kept"] == int((expected > 0).sum())
    assert len(r["tokens"]) == LIMITS["top_tokens"]


def test_generate_streams_what_generate_makes(served):
    server, session, _ = served
    body = {"text": PROMPT, "max_new_tokens": 12, "temperature": 1.2, "top_k": 30, "seed": 7}
    status, lines = api_lines(server, "/api/generate", body)
    assert status == 200
    prompt = ids_of(PROMPT)
    assert [t["id"] for t in lines[0]["prompt"]] == prompt
    new = [line["token"]["id"] for line in lines if "token" in line]
    expected = generate(session.model, np.asarray([prompt]), 12, temperature=1.2, top_k=30,
                        eos_id=demo_tokenizer().special_tokens["<|endoftext|>"], rng=np.random.default_rng(7))
    assert new == expected[0, len(prompt):].tolist()
    assert lines[-1]["done"] is True and lines[-1]["n_new"] == len(new)
    for line in lines[1:-1]:     # the token drawn was possible, and its alternatives are the most likely ones
        probs = {a["id"]: a["p_sample"] for a in line["alternatives"]}
        assert len(probs) == LIMITS["alternatives"]
        assert probs.get(line["token"]["id"], 1.0) > 0
        p_model = [a["p_model"] for a in line["alternatives"]]
        assert p_model == sorted(p_model, reverse=True)
    text = "".join(line["token"]["text"] for line in lines[1:-1]) + lines[-1]["tail"]
    assert text == demo_tokenizer().decode(new)
    # branching: continue from given ids (the prompt plus one chosen token)
    branch = prompt + [lines[1]["alternatives"][1]["id"]]
    status, again = api_lines(server, "/api/generate", {"ids": branch, "max_new_tokens": 3, "temperature": 0})
    assert status == 200 and [t["id"] for t in again[0]["prompt"]] == branch
    greedy = generate(session.model, np.asarray([branch]), 3, eos_id=demo_tokenizer().special_tokens["<|endoftext|>"])
    assert [x["token"]["id"] for x in again if "token" in x] == greedy[0, len(branch):].tolist()


def test_attention_and_lens_match_the_library(served):
    server, session, _ = served
    ids = ids_of(PROMPT)
    status, r = api(server, "/api/attention", {"text": PROMPT, "layer": 1})
    assert status == 200
    expected = look.attention(session.model, ids, 1)
    np.testing.assert_allclose(np.array(r["heads"]), expected, atol=1e-5)
    np.testing.assert_allclose(np.array(r["mean"]), expected.mean(0), atol=1e-5)
    assert len(r["tokens"]) == len(ids)
    status, r = api(server, "/api/lens", {"text": PROMPT})
    assert status == 200
    lens = look.logit_lens(session.model, ids)
    assert r["top_ids"] == lens["top_ids"].tolist()
    np.testing.assert_allclose(np.array(r["top_probs"]), lens["top_probs"], atol=1e-5)
    assert r["layers"] == ["embedding", "block 1", "block 2"]
    assert r["top_pieces"][0][0] == look.describe_tokens(demo_tokenizer(), [lens["top_ids"][0, 0]])[0]["piece"]


def test_training_and_compare(served, run_folder):
    server, _, _ = served
    status, r = api(server, "/api/training")
    assert status == 200 and r["columns"]["val_loss"] == [6.2, None] and r["loaded"] == "step-000002"
    status, r = api(server, "/api/compare", {"text": PROMPT, "a": "step-000001", "b": "step-000002"})
    assert status == 200
    from gpt.checkpoint import load_checkpoint

    for key, name in (("a", "step-000001"), ("b", "step-000002")):
        expected = look.position_losses(load_checkpoint(run_folder / name).model, ids_of(PROMPT))
        np.testing.assert_allclose(r[key]["losses"], expected, atol=1e-4)
        assert r[key]["mean"] == pytest.approx(expected.mean(), rel=1e-5)
    assert r["a"]["losses"] != r["b"]["losses"]
    for bad in ("../run/step-000001", "step-000009", str(run_folder / "step-000001")):
        status, e = api(server, "/api/compare", {"text": PROMPT, "a": bad, "b": "step-000002"})
        assert status == 400 and "no checkpoint" in e["error"]
    alive(server)


def test_chat_for_an_instruction_tuned_checkpoint(tmp_path):
    from gpt.finetune.instruct import load_instruct_checkpoint

    run = make_run(tmp_path / "chat", instruct=True)
    ck = load_instruct_checkpoint(run, merge=True)
    session = Session(ck.model, ck.tokenizer, run=run, checkpoint=ck.path, info=ck.info)
    with running_server(session) as (server, _):
        assert api(server, "/api/info")[1]["chat"] == "alpaca"
        body = {"messages": [{"role": "user", "content": "Reverse the word."}], "max_new_tokens": 6, "temperature": 0}
        status, lines = api_lines(server, "/api/chat", body)
        assert status == 200 and lines[-1]["done"]
        new = [line["token"]["id"] for line in lines if "token" in line]
        from gpt.finetune.instruct import extract_response
        from gpt.serve.api import chat_prompt

        prompt, _ = chat_prompt("alpaca", {}, ck.tokenizer, body["messages"])
        assert "### Instruction:\nReverse the word." in ck.tokenizer.decode(prompt)     # the book's prompt
        prompt = prompt[-32:]                                  # the context's worth, as generate_responses
        eos = ck.tokenizer.special_tokens["<|endoftext|>"]
        expected = generate(ck.model, np.asarray([prompt]), 6, eos_id=eos)
        assert new == expected[0, len(prompt):].tolist()
        assert lines[-1]["response"] == extract_response(ck.tokenizer.decode(new))
        for bad in ({"messages": []}, {"messages": [{"role": "assistant", "content": "x"}]},
                    {"messages": [{"role": "user", "content": 5}]}, {"messages": "hi"}):
            status, e = api(server, "/api/chat", bad)
            assert status == 400 and e["error"], bad


def test_chat_is_refused_for_a_model_without_chat_style(served):
    server, _, _ = served
    status, e = api(server, "/api/chat", {"messages": [{"role": "user", "content": "hi"}]})
    assert status == 404 and "instruction-tuned" in e["error"]
    alive(server)


BAD_REQUESTS = [
    ("/api/next", {"text": 5}, "must be a string"),
    ("/api/next", {}, "'text' is missing"),
    ("/api/next", {"text": ""}, "empty"),
    ("/api/next", {"text": "x", "temperature": -1}, "temperature"),
    ("/api/next", {"text": "x", "temperature": "hot"}, "temperature"),
    ("/api/next", {"text": "x", "temperature": 11}, "temperature"),
    ("/api/next", {"text": "x", "top_k": 0}, "top_k"),
    ("/api/next", {"text": "x", "top_k": 1.5}, "top_k"),
    ("/api/next", {"text": "x", "top_k": True}, "top_k"),
    ("/api/next", {"text": "x", "top_p": 0}, "top_p"),
    ("/api/next", {"text": "x", "top_p": 1.5}, "top_p"),
    ("/api/next", [1, 2], "JSON object"),
    ("/api/tokenize", {"text": "x" * (LIMITS["max_chars"] + 1)}, "characters"),
    ("/api/generate", {"text": "x", "max_new_tokens": LIMITS["max_new_tokens"] + 1}, "max_new_tokens"),
    ("/api/generate", {"text": "x", "max_new_tokens": 0}, "max_new_tokens"),
    ("/api/generate", {"text": "x", "seed": -1}, "seed"),
    ("/api/generate", {"ids": [1, 10**9]}, "ids"),
    ("/api/generate", {"ids": "1 2"}, "ids"),
    ("/api/generate", {"text": "Below " * 40}, "tokens"),         # longer than the context (32)
    ("/api/attention", {"text": "x", "layer": 2}, "layer"),
    ("/api/attention", {"text": "x", "layer": -1}, "layer"),
    ("/api/attention", {"text": "x"}, "layer"),
    ("/api/lens", {"text": "Below " * 40}, "tokens"),
    ("/api/compare", {"text": "x", "a": "step-000001"}, "'b' is missing"),
]


@pytest.mark.parametrize("path,body,words", BAD_REQUESTS)
def test_bad_requests_get_400_with_a_message(served, path, body, words):
    server, _, _ = served
    status, e = api(server, path, body)
    assert status == 400 and words in e["error"], e
    assert "Traceback" not in e["error"]
    alive(server)


def test_malformed_and_oversized_bodies(served):
    server, _, _ = served
    for raw in (b"{not json", b'{"text": "x"', b"\xff\xfe", b"[1, 2"):
        status, _, body = request(server, "POST", "/api/next", raw=raw)
        assert status == 400 and "JSON" in json.loads(body)["error"]
        alive(server)
    big = b'{"text": "' + b"x" * (LIMITS["max_body_bytes"] + 10) + b'"}'
    status, _, body = request(server, "POST", "/api/tokenize", raw=big)
    assert status == 413 and "limit" in json.loads(body)["error"]
    alive(server)
    status, headers, body = request(server, "POST", "/api/tokenize", raw=b"{}", headers={"Content-Length": str(10**12)})
    assert status == 413 and headers.get("Connection") == "close"
    alive(server)
    status, _, body = request(server, "POST", "/api/tokenize", raw=b"{}", headers={"Content-Length": "abc"})
    assert status == 400
    alive(server)
    assert api(server, "/api/nothing", {})[0] == 404
    assert api(server, "/api/nothing")[0] == 404
    assert api(server, "/api/next")[0] == 405                   # GET on a POST endpoint
    assert api(server, "/api/info", {})[0] == 405               # POST on a GET endpoint
    status, _, body = request(server, "DELETE", "/api/info")
    assert status == 501 and "error" in json.loads(body)
    alive(server)


def test_other_hosts_and_other_content_types_are_refused(served):
    server, _, _ = served
    port = server.server_address[1]
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.2", ""):
        status, _, body = request(server, "GET", "/api/info", headers={"Host": host})
        assert status == 403 and "localhost" in json.loads(body)["error"], host
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        assert request(server, "GET", "/api/info", headers={"Host": host})[0] == 200
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""):
        status, _, body = request(server, "POST", "/api/tokenize", {"text": "x"}, headers={"Content-Type": kind})
        assert status == 415 and "application/json" in json.loads(body)["error"], kind
    status, _, _ = request(server, "POST", "/api/tokenize", {"text": "x"},
                           headers={"Content-Type": "application/json; charset=utf-8"})
    assert status == 200
    alive(server)


def test_a_failure_inside_is_one_log_line_and_no_traceback(served, monkeypatch):
    server, session, log = served

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(session, "lens", broken)
    status, e = api(server, "/api/lens", {"text": "x"})
    assert status == 500 and "internal error" in e["error"] and "broke" not in e["error"]
    monkeypatch.setattr(session, "generate", broken)
    status, lines = api_lines(server, "/api/generate", {"text": "x"})
    assert status == 200 and "internal error" in lines[-1]["error"]
    broke = [line for line in log.getvalue().splitlines() if "something inside broke" in line]
    assert len(broke) == 2 and all(line.startswith("error: POST /api/") for line in broke)
    assert "Traceback" not in log.getvalue()
    monkeypatch.undo()
    alive(server)
    assert api(server, "/api/lens", {"text": "x"})[0] == 200


def test_ten_concurrent_requests(served):
    server, _, _ = served
    jobs = [("/api/next", {"text": PROMPT, "temperature": 0.5 + i / 10}) for i in range(4)]
    jobs += [("/api/attention", {"text": PROMPT, "layer": i % 2}) for i in range(2)]
    jobs += [("/api/lens", {"text": PROMPT}), ("/api/tokenize", {"text": PROMPT})]
    jobs += [("/api/generate", {"text": PROMPT, "max_new_tokens": 8, "temperature": 1.0, "seed": i}) for i in range(2)]
    def ask(job):
        return api_lines(server, *job) if job[0].endswith("generate") else api(server, *job)

    alone = [ask(job) for job in jobs]
    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        together = list(pool.map(ask, jobs))
    assert [s for s, _ in together] == [200] * 10
    assert together == alone          # the lock: no request saw another's cache or hooks
    alive(server)


def test_a_client_that_stops_reading_frees_the_model(served):
    import socket

    server, _, log = served
    body = json.dumps({"text": PROMPT, "max_new_tokens": LIMITS["max_new_tokens"], "temperature": 1.0}).encode()
    with socket.create_connection(server.server_address[:2], timeout=30) as sock:
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        status_line = b""
        while not status_line.endswith(b"\r\n"):           # the status line, however the reads split it
            chunk = sock.recv(1)
            assert chunk, "the server closed the connection before answering"
            status_line += chunk
        assert b" 200 " in status_line
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close = reset
    status, lines = api_lines(server, "/api/generate", {"text": PROMPT, "max_new_tokens": 3})
    assert status == 200 and lines[-1]["done"]          # the lock was released
    assert "Traceback" not in log.getvalue()
    alive(server)


def test_keep_alive_connection_serves_several_requests(served):
    import http.client

    server, _, _ = served
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    try:
        for _ in range(3):
            conn.request("POST", "/api/tokenize", body=json.dumps({"text": "Below"}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            assert r.status == 200 and json.loads(r.read())["n_tokens"] >= 1
        conn.request("POST", "/api/generate", body=json.dumps({"text": "Below", "max_new_tokens": 2}),
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
        assert json.loads(r.read().decode().splitlines()[-1])["done"]
    finally:
        conn.close()


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_endpoint_on_every_architecture(arch):
    model = ARCHS[arch](seed=5)
    session = Session(model, demo_tokenizer(), source=arch)
    with running_server(session) as (server, _):
        info = api(server, "/api/info")[1]
        assert info["model"]["n_layers"] == model.cfg.n_layers and info["training"] is False
        for path, body in (("/api/tokenize", {"text": PROMPT}), ("/api/next", {"text": PROMPT, "top_p": 0.5}),
                           ("/api/attention", {"text": PROMPT, "layer": 1}), ("/api/lens", {"text": PROMPT})):
            status, r = api(server, path, body)
            assert status == 200, (path, r)
        status, lines = api_lines(server, "/api/generate", {"text": PROMPT, "max_new_tokens": 4, "seed": 1})
        assert status == 200 and lines[-1]["done"]
        assert api(server, "/api/training")[0] == 404


# ---------------------------------------------------------------------- the command
def test_serve_command_prints_the_url_answers_and_stops_on_ctrl_c(run_folder):
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "serve", "--checkpoint", str(run_folder), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/info", timeout=60) as r:
            assert json.loads(r.read())["model"]["n_layers"] == 2
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err and "stopped" in err


def test_serve_command_warns_when_listening_beyond_this_machine(run_folder):
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "serve", "--checkpoint", str(run_folder), "--port", "0",
                             "--host", "0.0.0.0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env())
    try:
        line = proc.stdout.readline()
        assert "http://0.0.0.0:" in line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "anyone" in err and "network" in err


def test_serve_command_errors_are_one_line(tmp_path):
    from tests.cli_helpers import check_one_line_error, run_cli

    code, _, err = run_cli("serve", "--checkpoint", tmp_path / "missing", "--port", "0")
    check_one_line_error(code, err, "missing")
    run = make_run(tmp_path / "run")
    code, _, err = run_cli("serve", "--checkpoint", run, "--port", "70000")
    check_one_line_error(code, err, "--port")
    code, _, err = run_cli("serve", "--hf", tmp_path / "no-folder", "--port", "0")
    check_one_line_error(code, err, "no-folder")


# ---------------------------------------------------------------------- a Hugging Face folder (--hf)
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
          "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    """A tiny random Qwen3 saved by gpt.hf.save_model, a byte-level BPE tokenizer.json with ChatML's
    markers, a chat template and an eos id: what --hf reads."""
    hf = pytest.importorskip("gpt.hf", reason="gpt.hf (the hf branch) is not in this checkout")
    pytest.importorskip("gpt.chat", reason="gpt.chat (the chat branch) is not in this checkout")
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from gpt.architectures import DecoderConfig, build_model

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = "the cat sat on a mat and the dog ran to the red door while a bird sang. " * 30
    tok.train_from_iterator([text], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    mg.manual_seed(0)
    cfg = DecoderConfig(arch="qwen3", vocab_size=tok.get_vocab_size(), context_length=64, emb_dim=32, n_heads=4,
                        n_kv_heads=2, head_dim=8, n_layers=2, hidden_dim=48, qk_norm=True, tie_weights=True)
    out = tmp_path_factory.mktemp("qwen3-tiny")
    hf.save_model(build_model(cfg), out)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML}))
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "eos_token_id": tok.token_to_id("<|endoftext|>")}))
    return out


def test_a_hugging_face_folder_with_its_chat_template(hf_folder):
    from types import SimpleNamespace

    from gpt.chat import apply_chat_template, encode_chat
    from gpt.cli.serve import session_from_args

    session = session_from_args(SimpleNamespace(checkpoint=None, gpt2=None, vocab=None, hf=str(hf_folder)))
    tok = session.tokenizer
    with running_server(session) as (server, _):
        status, info = api(server, "/api/info")
        assert status == 200 and info["chat"] == "chatml" and info["model"]["arch"] == "qwen3"
        assert info["model"]["heads_per_layer"] == [4, 4]
        status, r = api(server, "/api/tokenize", {"text": "the cat sat"})
        assert [t["id"] for t in r["tokens"]] == tok.encode("the cat sat")
        assert all(t["rank"] is None for t in r["tokens"])        # no merge ranks for tokenizer.json's BPE
        for path, body in (("/api/next", {"text": "the cat"}), ("/api/attention", {"text": "the cat", "layer": 0}),
                           ("/api/lens", {"text": "the cat"})):
            assert api(server, path, body)[0] == 200, path
        messages = [{"role": "user", "content": "the dog ran"}]
        status, lines = api_lines(server, "/api/chat", {"messages": messages, "max_new_tokens": 12, "temperature": 0})
        assert status == 200 and lines[-1]["done"]
        new = [line["token"]["id"] for line in lines if "token" in line]
        prompt = encode_chat(tok, apply_chat_template(messages, "chatml"))
        assert tok.decode(prompt).endswith("<|im_start|>assistant\n")
        expected = generate(session.model, np.asarray([prompt]), 12)[0, len(prompt):].tolist()
        stops = {tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")}
        cut = next((i for i, t in enumerate(expected) if t in stops), len(expected))
        assert new == expected[:cut]
        assert lines[-1]["response"] == tok.decode(new).strip()
        text = "".join(line["token"]["text"] for line in lines if "token" in line) + lines[-1]["tail"]
        assert text == tok.decode(new)


# ---------------------------------------------------------------------- an encoder (BERT)
@pytest.fixture(scope="module")
def encoder_run(tmp_path_factory):
    from tests.serve_helpers import make_encoder_run

    return make_encoder_run(tmp_path_factory.mktemp("encoder") / "run")


@pytest.fixture(scope="module")
def encoder_served(encoder_run):
    """A server for a 'pretrain --arch bert' run's newest checkpoint, as 'python -m gpt serve' makes it."""
    yield from serve_checkpoint(encoder_run)


def test_an_encoder_checkpoint_is_served_as_an_encoder(encoder_served, served):
    server, session, _ = encoder_served
    status, info = api(server, "/api/info")
    assert status == 200 and info["kind"] == "encoder" and info["fill_mask"] is True
    assert info["model"]["class"] == "BertForMaskedLM" and info["model"]["heads_per_layer"] == [2, 2]
    assert info["training"] is True and info["checkpoints"] == ["step-000001", "step-000002"]
    assert api(served[0], "/api/info")[1]["kind"] == "decoder"

    # tokens: the text as the encoder reads it, [CLS] ... [SEP]; a [MASK] written in the text is one token
    status, r = api(server, "/api/tokenize", {"text": "the cat [MASK] on the mat"})
    special = session.tokenizer.special_tokens
    ids = [t["id"] for t in r["tokens"]]
    assert status == 200 and ids[0] == special["[CLS]"] and ids[-1] == special["[SEP]"]
    assert ids.count(special["[MASK]"]) == 1 and ids[1:-1] == session.tokenizer.encode("the cat [MASK] on the mat",
                                                                                     allowed_special="all")
    status, training = api(server, "/api/training")
    assert status == 200 and training["columns"]["train_loss"] == [5.9, 5.4]


def test_encoder_attention_sees_both_directions(encoder_served):
    server, session, _ = encoder_served
    text = "the dog sat on the log"
    ids = [t["id"] for t in api(server, "/api/tokenize", {"text": text})[1]["tokens"]]
    bert = session.model.bert
    hidden = look.run_with_internals(bert, ids)["hidden"]                     # (L + 1, T, d)
    for layer in range(2):
        status, r = api(server, "/api/attention", {"text": text, "layer": layer})
        heads = np.array(r["heads"])
        assert status == 200 and r["causal"] is False and heads.shape == (2, len(ids), len(ids))
        np.testing.assert_allclose(heads.sum(axis=-1), 1.0, atol=1e-4)
        assert (heads[:, np.triu_indices(len(ids), 1)[0], np.triu_indices(len(ids), 1)[1]] > 0).all()
        np.testing.assert_allclose(r["mean"], heads.mean(axis=0), atol=1e-5)
        # the weights by the formula, from the layer's input: softmax(q k^T / sqrt(d_head)) with no mask
        att = bert.trf_blocks[layer].att
        x = hidden[layer].astype(np.float64)
        q, k = (x @ lin.weight.data.T.astype(np.float64) + lin.bias.data for lin in (att.W_query, att.W_key))
        q, k = (a.reshape(len(ids), 2, -1).transpose(1, 0, 2) for a in (q, k))
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
        want = np.exp(scores - scores.max(-1, keepdims=True))
        np.testing.assert_allclose(heads, want / want.sum(-1, keepdims=True), atol=1e-4)


def test_fill_mask_gives_the_mlm_heads_probabilities(encoder_served, served):
    server, session, _ = encoder_served
    text = "the [MASK] sat on the [MASK]"
    status, r = api(server, "/api/fill_mask", {"text": text, "k": 4})
    assert status == 200
    ids = [t["id"] for t in api(server, "/api/tokenize", {"text": text})[1]["tokens"]]
    mask_id = session.tokenizer.special_tokens["[MASK]"]
    assert [m["position"] for m in r["masks"]] == [i for i, t in enumerate(ids) if t == mask_id]
    with mg.no_grad():
        logits = session.model(np.array([ids])).data[0].astype(np.float64)
    for m in r["masks"]:
        probs = sampling_probs(logits[m["position"]][None], 1.0)[0]
        got = [c["id"] for c in m["candidates"]]
        assert len(got) == 4 and got == list(np.argsort(-probs, kind="stable")[:4])
        np.testing.assert_allclose([c["p"] for c in m["candidates"]], probs[got], rtol=1e-6)
    status, r = api(server, "/api/fill_mask", {"text": "no mask here"})
    assert status == 400 and "[MASK]" in r["error"]
    status, r = api(served[0], "/api/fill_mask", {"text": "the [MASK] sat"})
    assert status == 400 and "encoder" in r["error"]


@pytest.mark.parametrize("path,body", [
    ("/api/next", {"text": "the cat"}),
    ("/api/lens", {"text": "the cat"}),
    ("/api/compare", {"text": "the cat", "a": "step-000001", "b": "step-000002"}),
    ("/api/generate", {"text": "the cat", "max_new_tokens": 3}),
    ("/api/chat", {"messages": [{"role": "user", "content": "hi"}]}),
])
def test_causal_endpoints_refuse_an_encoder(encoder_served, path, body):
    server, _, log = encoder_served
    status, r = api(server, path, body)
    assert status == 400 and "encoder" in r["error"] and "\n" not in r["error"]
    assert api(server, "/api/info")[0] == 200 and "Traceback" not in log.getvalue()


def test_a_sentence_transformers_folder_is_served_as_an_encoder(reference_data):
    """all-MiniLM-L6-v2 through --hf: a BertModel (no MLM head), its tokenizer.json's [CLS] ... [SEP]."""
    from types import SimpleNamespace

    from gpt.cli.serve import session_from_args

    folder = reference_data / "all-MiniLM-L6-v2"
    if not (folder / "model.safetensors").is_file():
        pytest.skip(f"all-MiniLM-L6-v2 is not in {reference_data}")
    session = session_from_args(SimpleNamespace(hf=str(folder), checkpoint=None, gpt2=None, vocab=None))
    with running_server(session) as (server, _):
        info = api(server, "/api/info")[1]
        assert info["kind"] == "encoder" and info["fill_mask"] is False and info["model"]["n_layers"] == 6
        pieces = [t["piece"] for t in api(server, "/api/tokenize", {"text": "A cat sat."})[1]["tokens"]]
        assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]"
        status, r = api(server, "/api/attention", {"text": "A cat sat on the mat.", "layer": 5})
        heads = np.array(r["heads"])
        assert status == 200 and heads.shape[0] == 12 and np.triu(heads.mean(axis=0), 1).sum() > 0.1
        np.testing.assert_allclose(heads.sum(axis=-1), 1.0, atol=1e-4)
        status, r = api(server, "/api/fill_mask", {"text": "a [MASK] sat"})
        assert status == 400 and "no masked-language-model head" in r["error"]


def test_serve_command_takes_an_encoder_checkpoint(encoder_run):
    proc = subprocess.Popen([sys.executable, "-m", "gpt", "serve", "--checkpoint", str(encoder_run), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/info", timeout=60) as r:
            info = json.loads(r.read())
        assert info["kind"] == "encoder" and info["model"]["class"] == "BertForMaskedLM"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err
