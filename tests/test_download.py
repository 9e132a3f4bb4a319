"""gpt.download and ``python -m gpt download`` against a real HTTP server on 127.0.0.1.

The server (http.server in a background thread, ephemeral port) serves bytes the tests generate and
can misbehave on request: ignore Range, close the socket part-way through a body, stall, answer 5xx,
redirect with Hugging Face's checksum headers. It is shut down after each test.
"""
import hashlib
import io
import json
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from gpt import download as dl
from gpt import safetensors as sf
from gpt.cli import main

FAST = dict(progress=False, backoff=0.0, timeout=5.0)


class FixtureServer:
    """In-memory files behind a real HTTP server, plus a script of misbehaviours and a request log."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.honour_range = True
        self.drops: list[int] = []        # per request, in order: body bytes sent before closing the socket
        self.stalls: list[int] = []       # per request: body bytes sent before going silent
        self.statuses: list[int] = []     # per request: an error status to answer instead
        self.redirects: dict[str, tuple[str, dict[str, str]]] = {}  # path -> (target, extra headers)
        self.log: list[tuple[str, str | None]] = []                 # (path, Range header) per request
        self.auth: list[tuple[str, str | None]] = []                # (path, Authorization header) per request
        self.protected: dict[str, str] = {}  # path prefix -> the bearer token it needs (401 without, 403 wrong)
        self.body_bytes = 0
        self.release = threading.Event()  # set at teardown: stalled handlers return
        self.lock = threading.Lock()
        self.url = ""

    def handler(self):
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # a client that goes away never pins a server thread for long

            def log_message(self, *args):  # keep test output clean
                pass

            def _body(self, data: bytes, drop: int | None, stall: int | None) -> None:
                if drop is not None:
                    self.wfile.write(data[:drop])
                    with srv.lock:
                        srv.body_bytes += min(drop, len(data))
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if stall is not None:
                    self.wfile.write(data[:stall])
                    self.wfile.flush()
                    srv.release.wait(10)
                    self.close_connection = True
                    return
                self.wfile.write(data)
                with srv.lock:
                    srv.body_bytes += len(data)

            def do_GET(self):
                with srv.lock:
                    srv.log.append((self.path, self.headers.get("Range")))
                    srv.auth.append((self.path, self.headers.get("Authorization")))
                    token = next((t for prefix, t in srv.protected.items() if self.path.startswith(prefix)), None)
                if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                    self.send_response(403 if self.headers.get("Authorization") else 401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with srv.lock:
                    status = srv.statuses.pop(0) if srv.statuses else None
                    drop = srv.drops.pop(0) if srv.drops else None
                    stall = srv.stalls.pop(0) if srv.stalls else None
                if status is not None:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path in srv.redirects:
                    target, headers = srv.redirects[self.path]
                    self.send_response(302)
                    self.send_header("Location", target)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = srv.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                rng = self.headers.get("Range")
                if rng and srv.honour_range and rng.startswith("bytes=") and rng.endswith("-"):
                    start = int(rng[6:-1])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    data = data[start:]
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self._body(data, drop, stall)

        return Handler


@pytest.fixture
def server(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    srv = FixtureServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), srv.handler())
    httpd.daemon_threads = True
    srv.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def payload(n: int = 300_000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).bytes(n)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------------
# fetch: one URL -> one file


def test_success_verifies_size_and_sha256_and_reports_progress(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    seen = []
    out = dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), size=len(data),
                   progress=lambda done, total: seen.append((done, total)), backoff=0.0)
    assert out.read_bytes() == data and leftovers(tmp_path) == ["f.bin"]
    assert server.log == [("/f.bin", None)]
    assert seen[-1] == (len(data), len(data))
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_progress_display_shows_size_percent_and_rate(server, tmp_path, capsys):
    server.files["/f.bin"] = payload(100_000)
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", progress=True, backoff=0.0)
    err = capsys.readouterr().err
    assert "f.bin" in err and "100%" in err and "MB/s" in err and "0.1 / 0.1 MB" in err


def test_resumes_a_partial_file_with_a_range_request(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data[:100_000])
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data and leftovers(tmp_path) == ["f.bin"]
    assert server.log == [("/f.bin", "bytes=100000-")]
    assert server.body_bytes == len(data) - 100_000  # only the missing bytes travelled


def test_a_server_that_ignores_range_makes_it_start_over(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    server.honour_range = False
    (tmp_path / "f.bin.part").write_bytes(b"\xff" * 100_000)  # if appended to, the sha would fail
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert server.log == [("/f.bin", "bytes=100000-")] and server.body_bytes == len(data)


def test_a_part_that_is_already_complete_is_finished_without_a_body(server, tmp_path):
    data = payload(50_000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(data)
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), **FAST)  # server answers 416
    assert (tmp_path / "f.bin").read_bytes() == data and server.body_bytes == 0


def test_a_connection_dropped_midway_is_resumed(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    server.drops = [120_000, 50_000]  # the first two responses are cut short
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), retries=2, **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data and leftovers(tmp_path) == ["f.bin"]
    assert server.log == [("/f.bin", None), ("/f.bin", "bytes=120000-"), ("/f.bin", "bytes=170000-")]


def test_a_dropped_connection_with_a_server_ignoring_range_still_completes(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    server.honour_range = False
    server.drops = [120_000]
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data and len(server.log) == 2


def test_a_stalled_connection_times_out_and_resumes(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    server.stalls = [1000]  # headers and 1000 bytes, then silence
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), progress=False,
             backoff=0.0, timeout=2.0)
    assert (tmp_path / "f.bin").read_bytes() == data
    # the stalled request, then a resume from byte 1000 (a slow machine may need one more retry,
    # so the count of requests is not pinned: that would make the test depend on timing)
    assert server.log[0] == ("/f.bin", None) and server.log[1] == ("/f.bin", "bytes=1000-")


def test_server_errors_are_retried(server, tmp_path):
    server.files["/f.bin"] = data = payload(10_000)
    server.statuses = [503, 500]
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data and len(server.log) == 3


def test_giving_up_keeps_the_part_and_a_later_run_resumes_it(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data
    server.drops = [80_000, 0, 0]  # progress once, then two retries that get no body at all
    with pytest.raises(dl.DownloadError) as info:
        dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", retries=2, **FAST)
    message = str(info.value)
    assert "after 3 attempts" in message and "80,000 bytes kept" in message and "\n" not in message
    assert leftovers(tmp_path) == ["f.bin.part"] and len(server.log) == 3
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data and server.log[-1] == ("/f.bin", "bytes=80000-")


def test_ctrl_c_leaves_only_a_part_file_which_the_next_run_resumes(server, tmp_path):
    data = payload()
    server.files["/f.bin"] = data

    def interrupt(done, total):
        if done >= 100_000:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", progress=interrupt, backoff=0.0)
    assert leftovers(tmp_path) == ["f.bin.part"]  # never a half-written file under the final name
    kept = (tmp_path / "f.bin.part").read_bytes()
    assert 100_000 <= len(kept) < len(data) and data.startswith(kept)
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert server.log[-1] == ("/f.bin", f"bytes={len(kept)}-")


def test_checksum_mismatch_deletes_everything(server, tmp_path):
    server.files["/f.bin"] = payload()
    with pytest.raises(dl.ChecksumError, match="sha256 .* but 0{64} was expected"):
        dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256="0" * 64, **FAST)
    assert leftovers(tmp_path) == []


def test_size_mismatch_is_reported_before_downloading(server, tmp_path):
    data = payload(10_000)
    server.files["/f.bin"] = data
    with pytest.raises(dl.ChecksumError, match="10,000 bytes but 10,001 were expected"):
        dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", size=10_001, **FAST)
    assert leftovers(tmp_path) == []


def test_404_is_one_clear_error_without_retries(server, tmp_path):
    url = f"{server.url}/missing.bin"
    with pytest.raises(dl.DownloadError) as info:
        dl.fetch(url, tmp_path / "m.bin", retries=3, **FAST)
    assert str(info.value) == f"{url}: HTTP 404 Not Found: no such file there (check the name or the mirror)"
    assert len(server.log) == 1 and leftovers(tmp_path) == []


def test_no_network_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "*")
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(dl.DownloadError) as info:
        dl.fetch(f"http://127.0.0.1:{port}/x", tmp_path / "x", retries=1, **FAST)
    message = str(info.value)
    assert "could not connect to 127.0.0.1" in message and "refused" in message and "\n" not in message
    assert "after 2 attempts" in message and leftovers(tmp_path) == []


def test_huggingface_style_checksum_on_the_redirect_is_verified(server, tmp_path):
    data = payload()
    server.files["/cdn/model.safetensors"] = data
    good = {"X-Linked-Etag": f'"{sha(data)}"', "X-Linked-Size": str(len(data))}
    server.redirects["/hf/good"] = ("/cdn/model.safetensors", good)
    server.redirects["/hf/bad"] = ("/cdn/model.safetensors", {"X-Linked-Etag": f'"{"a" * 64}"'})
    server.redirects["/hf/short"] = ("/cdn/model.safetensors", {"X-Linked-Size": str(len(data) + 5)})
    dl.fetch(f"{server.url}/hf/good", tmp_path / "good", **FAST)
    assert (tmp_path / "good").read_bytes() == data
    with pytest.raises(dl.ChecksumError, match="a{64} was expected"):
        dl.fetch(f"{server.url}/hf/bad", tmp_path / "bad", **FAST)
    with pytest.raises(dl.ChecksumError, match="published"):
        dl.fetch(f"{server.url}/hf/short", tmp_path / "short", **FAST)
    assert leftovers(tmp_path) == ["good"]


def test_existing_files_are_kept_unless_stale_or_forced(server, tmp_path):
    data = payload(20_000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin").write_bytes(data)
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), **FAST)
    assert server.log == []  # verified in place, nothing fetched
    (tmp_path / "f.bin").write_bytes(b"stale")
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", sha256=sha(data), **FAST)
    assert (tmp_path / "f.bin").read_bytes() == data and len(server.log) == 1
    dl.fetch(f"{server.url}/f.bin", tmp_path / "f.bin", force=True, **FAST)
    assert len(server.log) == 2


def test_a_file_mirror_works_without_http(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    target = mirror / "example.org" / "a" / "b.json"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"[1, 2, 3]")
    url = dl.mirror_url("https://example.org/a/b.json", mirror.as_uri())
    assert url == mirror.as_uri() + "/example.org/a/b.json"
    (tmp_path / "out").mkdir()
    dl.fetch(url, tmp_path / "out" / "b.json", sha256=sha(b"[1, 2, 3]"), **FAST)
    assert (tmp_path / "out" / "b.json").read_bytes() == b"[1, 2, 3]"
    with pytest.raises(dl.DownloadError, match="No such file"):
        dl.fetch(mirror.as_uri() + "/nothing", tmp_path / "out" / "n", **FAST)


def test_mirror_url_mapping_and_validation():
    hf = "https://huggingface.co/openai-community/gpt2/resolve/main/model.safetensors"
    assert dl.mirror_url(hf, None) == hf and dl.mirror_url(hf, "") == hf
    assert dl.mirror_url(hf, "http://10.0.0.1:8000/m/") == \
        "http://10.0.0.1:8000/m/huggingface.co/openai-community/gpt2/resolve/main/model.safetensors"
    with pytest.raises(ValueError, match="must start with http"):
        dl.mirror_url(hf, "10.0.0.1:8000")


# ------------------------------------------------------------------------------------------------
# download: the catalogue, through a mirror pointing at the local server


def serve_as_mirror(server, url: str, data: bytes) -> None:
    server.files["/" + dl.mirror_url(url, "http://m").removeprefix("http://m/")] = data


def test_catalog_names_match_the_cli_and_pinned_checksums_match_the_reference_files(reference_data):
    from gpt.cli.download import NAMES

    assert tuple(dl.CATALOG) == NAMES
    assert all(f.url.startswith("https://") for item in dl.CATALOG.values() for f in item.files)
    for f in dl._BPE_FILES:
        local = (reference_data / "gpt2" / f.filename).read_bytes()
        assert sha(local) == f.sha256 and len(local) == f.size
    for f in dl.CATALOG["book-data"].files:   # the reference folder's layout, every file pinned
        local = (reference_data / f.filename).read_bytes()
        assert sha(local) == f.sha256 and len(local) == f.size


def test_download_gpt2_through_a_mirror(server, tmp_path, monkeypatch, reference_data):
    weights = sf.save({"wte.weight": np.ones((4, 3), np.float32), "wpe.weight": np.zeros((2, 3), np.float32)})
    item = dl.CATALOG["gpt2-medium"]
    serve_as_mirror(server, item.files[0].url, weights)
    for f in item.files[1:]:
        serve_as_mirror(server, f.url, (reference_data / "gpt2" / f.filename).read_bytes())
    monkeypatch.setenv(dl.MIRROR_ENV, server.url)  # the environment variable is honoured
    paths = dl.download("gpt2-medium", tmp_path / "m", **FAST)
    assert [p.name for p in paths] == ["model.safetensors", "encoder.json", "vocab.bpe"]
    assert paths[0].read_bytes() == weights
    assert sorted(p for p, _ in server.log) == sorted(
        ["/huggingface.co/openai-community/gpt2-medium/resolve/main/model.safetensors",
         "/openaipublic.blob.core.windows.net/gpt-2/models/124M/encoder.json",
         "/openaipublic.blob.core.windows.net/gpt-2/models/124M/vocab.bpe"])
    assert leftovers(tmp_path / "m") == ["encoder.json", "model.safetensors", "vocab.bpe"]


def test_an_html_page_instead_of_weights_is_rejected(server, tmp_path):
    serve_as_mirror(server, dl.CATALOG["gpt2-small"].files[0].url, b"<html>rate limited</html>" * 10)
    with pytest.raises(dl.DownloadError, match="model.safetensors .* is not what was expected: .*header"):
        dl.download("gpt2-small", tmp_path, mirror=server.url, **FAST)
    assert leftovers(tmp_path) == []


def test_bpe_files_from_a_wrong_mirror_fail_their_pinned_checksum(server, tmp_path):
    item = dl.CATALOG["gpt2-small"]
    serve_as_mirror(server, item.files[0].url, sf.save({"w": np.zeros(2, np.float32)}))
    serve_as_mirror(server, item.files[1].url, b"x" * item.files[1].size)  # right size, wrong bytes
    with pytest.raises(dl.ChecksumError, match="encoder.json"):
        dl.download("gpt2-small", tmp_path, mirror=server.url, **FAST)
    assert leftovers(tmp_path) == ["model.safetensors"]


def sms_zip(text: bytes, member: str = "SMSSpamCollection") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(member, text)
        z.writestr("readme", "fixture")
    return buf.getvalue()


def test_download_sms_spam_extracts_the_tsv(server, tmp_path):
    text = b"ham\tGo until jurong point\nspam\tWINNER!! claim now\nham\tOk lar...\n"
    serve_as_mirror(server, dl.CATALOG["sms-spam"].files[0].url, sms_zip(text))
    paths = dl.download("sms-spam", tmp_path, mirror=server.url, **FAST)
    assert paths[-1] == tmp_path / "SMSSpamCollection.tsv" and paths[-1].read_bytes() == text
    assert server.log[0][0] == "/archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"


@pytest.mark.parametrize("archive, problem", [
    (sms_zip(b"ham\tfine\nnot a label line\n"), "line 2"),
    (sms_zip(b"ham\tx\n", member="other.txt"), "no SMSSpamCollection"),
    (b"PK\x03\x04 truncated", "not a zip"),
])
def test_a_wrong_sms_archive_is_rejected(server, tmp_path, archive, problem):
    serve_as_mirror(server, dl.CATALOG["sms-spam"].files[0].url, archive)
    with pytest.raises(dl.DownloadError, match=problem):
        dl.download("sms-spam", tmp_path, mirror=server.url, **FAST)
    assert "SMSSpamCollection.tsv" not in leftovers(tmp_path)


def test_download_instruction_data_checks_the_entries(server, tmp_path):
    url = dl.CATALOG["instruction-data"].files[0].url
    good = json.dumps([{"instruction": "Add 2 and 3.", "input": "", "output": "5"}]).encode()
    serve_as_mirror(server, url, good)
    assert dl.download("instruction-data", tmp_path / "a", mirror=server.url, **FAST)[0].read_bytes() == good
    serve_as_mirror(server, url, b'{"not": "a list"}')
    with pytest.raises(dl.DownloadError, match="instruction, input, output"):
        dl.download("instruction-data", tmp_path / "b", mirror=server.url, **FAST)
    assert leftovers(tmp_path / "b") == []


def test_download_preference_data_checks_the_entries(server, tmp_path):
    """The book's DPO file: fetched over loopback, checked for {instruction, input, chosen, rejected}
    entries (no pinned sha256: none could be verified offline, so it is not part of book-data)."""
    from gpt.finetune.dpo import load_preference_data

    item = dl.CATALOG["preference-data"]
    assert item.files[0].url.endswith("/ch07/04_preference-tuning-with-dpo/instruction-data-with-preference.json")
    assert item.files[0].sha256 is None and item.files[0] not in dl.CATALOG["book-data"].files
    good = json.dumps([{"instruction": "Add 2 and 3.", "input": "", "output": "5", "rejected": "Obviously 5.",
                        "chosen": "5"}], indent=4).encode()
    serve_as_mirror(server, item.files[0].url, good)
    path = dl.download("preference-data", tmp_path / "a", mirror=server.url, **FAST)[0]
    assert path.name == "instruction-data-with-preference.json" and path.read_bytes() == good
    assert load_preference_data(path)[0]["chosen"] == "5"
    serve_as_mirror(server, item.files[0].url, json.dumps([{"instruction": "a", "input": "", "output": "b"}]).encode())
    with pytest.raises(dl.DownloadError, match="chosen, rejected"):
        dl.download("preference-data", tmp_path / "b", mirror=server.url, **FAST)
    assert leftovers(tmp_path / "b") == []


BOOK_LAYOUT = ["gpt2/encoder.json", "gpt2/vocab.bpe", "instruction-data.json", "the-verdict.txt"]


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_book_data_has_the_reference_layout_under_data_book():
    item = dl.CATALOG["book-data"]
    assert sorted(f.filename for f in item.files) == BOOK_LAYOUT
    assert all(f.sha256 and f.size for f in item.files)
    assert dl.default_directory("book-data") == Path("data/book")
    assert dl.default_directory("sms-spam") == Path("data/sms-spam")


def test_download_book_data_makes_a_reference_folder(server, tmp_path, monkeypatch, reference_data):
    """The CLI's default folder, through GPT_DOWNLOAD_MIRROR; the result is what GPT_REFERENCE_DATA
    names (same relative paths, same bytes), resumes per file, and is found without configuration."""
    from gpt.finetune.instruct import load_instruction_data
    from gpt.tokenizer import BPETokenizer

    for f in dl.CATALOG["book-data"].files:
        serve_as_mirror(server, f.url, (reference_data / f.filename).read_bytes())
    work = tmp_path / "checkout"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv(dl.MIRROR_ENV, server.url)
    assert main(["download", "book-data", "-q"]) == 0
    book = work / "data" / "book"
    assert files_under(book) == BOOK_LAYOUT
    for name in BOOK_LAYOUT:
        assert (book / name).read_bytes() == (reference_data / name).read_bytes()

    # interrupted in the subfolder: only the missing bytes of that one file travel again
    vocab = (book / "gpt2" / "vocab.bpe").read_bytes()
    (book / "gpt2" / "vocab.bpe").unlink()
    (book / "gpt2" / "vocab.bpe.part").write_bytes(vocab[:100_000])
    server.log.clear()
    assert main(["download", "book-data", "-q"]) == 0
    assert server.log == [("/openaipublic.blob.core.windows.net/gpt-2/models/124M/vocab.bpe", "bytes=100000-")]
    assert files_under(book) == BOOK_LAYOUT and (book / "gpt2" / "vocab.bpe").read_bytes() == vocab

    # works as GPT_REFERENCE_DATA, and is found without it from the folder it was downloaded in
    monkeypatch.setenv(dl.REFERENCE_ENV, str(book))
    assert dl.reference_data_dir(tmp_path / "elsewhere") == book
    monkeypatch.delenv(dl.REFERENCE_ENV)
    assert dl.reference_data_dir(work) == Path("data/book").absolute() == book
    tok = BPETokenizer.from_gpt2_files(book / "gpt2" / "encoder.json", book / "gpt2" / "vocab.bpe")
    assert len(tok.encode((book / "the-verdict.txt").read_text(encoding="utf-8"))) == 5145   # the book's count
    assert len(load_instruction_data(book / "instruction-data.json")) == 1100


def test_book_data_files_fail_their_pins_when_the_bytes_differ(server, tmp_path):
    verdict = dl.CATALOG["book-data"].files[0]
    serve_as_mirror(server, verdict.url, b"x" * verdict.size)   # right size, wrong bytes
    with pytest.raises(dl.ChecksumError, match="the-verdict.txt"):
        dl.download("book-data", tmp_path, mirror=server.url, **FAST)
    serve_as_mirror(server, verdict.url, b"x" * (verdict.size + 1))
    with pytest.raises(dl.ChecksumError, match="20,479 were expected"):
        dl.download("book-data", tmp_path, mirror=server.url, **FAST)
    assert leftovers(tmp_path) == []


def test_a_file_in_a_subfolder_is_resumed_in_place(server, tmp_path, monkeypatch):
    data = payload()
    item = dl.Item("sub", "a file in a subfolder",
                   (dl.RemoteFile("https://example.org/x/b.bin", "deep/er/b.bin", sha256=sha(data)),))
    monkeypatch.setitem(dl.CATALOG, "sub", item)
    server.files["/example.org/x/b.bin"] = data
    (tmp_path / "deep" / "er").mkdir(parents=True)
    (tmp_path / "deep" / "er" / "b.bin.part").write_bytes(data[:1000])
    assert dl.download("sub", tmp_path, mirror=server.url, **FAST) == [tmp_path / "deep" / "er" / "b.bin"]
    assert files_under(tmp_path) == ["deep/er/b.bin"] and server.log == [("/example.org/x/b.bin", "bytes=1000-")]
    assert item.outputs(tmp_path) == [tmp_path / "deep" / "er" / "b.bin"]


@pytest.mark.parametrize("filename", ["", "/etc/x", "../x", "a/../../x", "a\\b"])
def test_a_filename_that_leaves_the_target_folder_is_refused(filename):
    with pytest.raises(ValueError, match="relative path inside the target folder"):
        dl.RemoteFile("https://example.org/x", filename)


def test_reference_data_dir_prefers_the_variable_then_data_book(tmp_path, monkeypatch):
    monkeypatch.delenv(dl.REFERENCE_ENV, raising=False)
    assert dl.reference_data_dir(tmp_path) is None                  # nothing downloaded here
    book = tmp_path / "data" / "book"
    for path in dl.CATALOG["book-data"].outputs(book)[:-1]:         # an interrupted download
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert dl.reference_data_dir(tmp_path) is None                  # incomplete: not used
    dl.CATALOG["book-data"].outputs(book)[-1].write_text("x")
    assert dl.reference_data_dir(tmp_path) == book
    monkeypatch.setenv(dl.REFERENCE_ENV, str(tmp_path / "mine"))   # the variable wins, even unmade
    assert dl.reference_data_dir(tmp_path) == tmp_path / "mine"
    monkeypatch.setenv(dl.REFERENCE_ENV, "")                        # set but empty: as if unset
    assert dl.reference_data_dir(tmp_path) == tmp_path / "data" / "book"


def test_unknown_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown download 'gpt5'; choose one of: gpt2-small"):
        dl.download("gpt5")


# ------------------------------------------------------------------------------------------------
# The command line


def test_cli_bad_name_is_one_line(capsys):
    assert main(["download", "gpt2-tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown download 'gpt2-tiny'")
    assert main(["download"]) == 2
    assert "name what to download" in capsys.readouterr().err


def test_cli_list_shows_every_name(capsys):
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in dl.CATALOG)


def test_cli_downloads_through_a_mirror(server, tmp_path, capsys):
    good = json.dumps([{"instruction": "Say hi.", "input": "", "output": "hi"}]).encode()
    serve_as_mirror(server, dl.CATALOG["instruction-data"].files[0].url, good)
    code = main(["download", "instruction-data", "--dir", str(tmp_path), "--mirror", server.url, "--quiet"])
    assert code == 0
    out, err = capsys.readouterr()
    assert str(tmp_path / "instruction-data.json") in out and err == ""
    assert (tmp_path / "instruction-data.json").read_bytes() == good


def test_cli_default_folder_and_mirror_variable(server, tmp_path, capsys, monkeypatch):
    good = json.dumps([{"instruction": "Say hi.", "input": "", "output": "hi"}]).encode()
    serve_as_mirror(server, dl.CATALOG["instruction-data"].files[0].url, good)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(dl.MIRROR_ENV, server.url)
    assert main(["download", "instruction-data", "-q"]) == 0
    assert (tmp_path / "data" / "instruction-data" / "instruction-data.json").read_bytes() == good


def test_cli_http_error_is_one_line(server, tmp_path, capsys):
    code = main(["download", "sms-spam", "--dir", str(tmp_path), "--mirror", server.url, "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HTTP 404" in err and "sms+spam+collection.zip" in err
