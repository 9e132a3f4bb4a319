"""The look-inside page's HTTP server: the standard library's threaded server, the files of
``static/``, and the JSON API of :class:`gpt.serve.api.Session` under ``/api/``.

    GET  /api/info          the model, its tokenizer, the limits, which panels apply
    GET  /api/training      the run's log.csv as columns, and its checkpoints
    POST /api/tokenize      {"text"}
    POST /api/next          {"text", "temperature", "top_k", "top_p"}
    POST /api/generate      {"text" | "ids", "max_new_tokens", "temperature", "top_k", "top_p", "seed"}
                            streamed: one JSON object per line (application/x-ndjson, chunked)
    POST /api/attention     {"text", "layer"}
    POST /api/lens          {"text"}
    POST /api/compare       {"text", "a", "b"} (two checkpoint names of the run)
    POST /api/fill_mask     {"text" with [MASK], "k"} (an encoder with its MLM head)
    POST /api/chat          {"messages": [{"role", "content"}], sampling settings}, streamed

Safe to leave running: only regular files inside ``static/`` are served (the resolved path must lie
inside it, so ``..``, ``%2e%2e``, absolute paths and symlinks pointing out are refused); bodies over
the limit get 413; a bad request gets 400 with ``{"error": "..."}``; an unexpected failure gets 500
with a generic message while the server logs one line; the server goes on serving after each.
Bound to 127.0.0.1 (the default), it answers only requests addressed to localhost (403 otherwise:
DNS rebinding), and a POST must be ``application/json`` (415 otherwise: a page of another site
cannot make the browser send that without asking first, and this server never says yes).
"""
from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from gpt.serve.api import RequestError, Session

STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".js": "text/javascript; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml",
                 ".ico": "image/x-icon", ".json": "application/json"}
# the page loads nothing from elsewhere; the browser can enforce that too
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"}


def static_file(url_path: str, root: Path = STATIC) -> Path | None:
    """The file under ``root`` that ``url_path`` names ("/" is index.html), or None when it names
    nothing there: a missing file, a folder, or anything that leads outside ``root`` (``..`` or its
    percent-encoded form, an absolute path, a symlink to elsewhere, a NUL or a backslash)."""
    path = unquote(url_path)
    if "\x00" in path or "\\" in path:
        return None
    relative = path[1:] if path.startswith("/") else path
    if relative == "":
        relative = "index.html"
    if relative.startswith("/") or any(part == ".." for part in relative.split("/")):
        return None
    root = root.resolve()
    try:
        target = (root / relative).resolve()
    except (OSError, RuntimeError):
        return None
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


class Handler(BaseHTTPRequestHandler):
    """One connection; HTTP/1.1 so that streamed answers can be chunked."""

    protocol_version = "HTTP/1.1"
    server_version = "gpt-serve"
    timeout = 120                       # an idle kept-alive connection is closed after this
    GET_ROUTES = {"/api/info": "info", "/api/training": "training"}
    POST_ROUTES = {"/api/tokenize": "tokenize", "/api/next": "next", "/api/attention": "attention",
                   "/api/lens": "lens", "/api/compare": "compare", "/api/fill_mask": "fill_mask"}
    STREAM_ROUTES = {"/api/generate": ("prepare_generate", "generate"), "/api/chat": ("prepare_chat", "chat")}

    @property
    def session(self) -> Session:
        return self.server.session

    # ------------------------------------------------------------------ plumbing
    def log_message(self, format, *args) -> None:
        if self.server.log_requests:
            self.server.log(f"{self.address_string()} {format % args}")

    def _send(self, status: int, body: bytes, content_type: str, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, close: bool = False) -> None:
        self._send(status, json.dumps(obj, allow_nan=False).encode("utf-8"), "application/json", close)

    def send_error(self, code, message=None, explain=None) -> None:
        """The base class's errors (a malformed request line, an unknown method) as JSON too."""
        try:
            self._json(code, {"error": message or self.responses.get(code, ("error",))[0]}, close=True)
        except OSError:
            self.close_connection = True

    def _failed(self, e: Exception) -> None:
        """An unexpected error: one line in the server's log, a generic message to the client."""
        self.server.log(f"error: {self.command} {self.path}: {type(e).__name__}: {e}")

    def _body(self):
        """The request's JSON body; RequestError for a missing length, too large or malformed body."""
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(411, "send the body with a Content-Length, not chunked")
        try:
            length = int(length) if length is not None else 0
        except ValueError:
            raise RequestError(400, "Content-Length is not a number") from None
        limit = self.session.limits["max_body_bytes"]
        if length < 0:
            raise RequestError(400, "Content-Length is negative")
        if length > limit:
            if length <= 8 * limit:        # read and drop it, so that the client gets to read the answer
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(65536, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            else:                          # far too large: answer at once and close the connection
                self.close_connection = True
            raise RequestError(413, f"the request body has more than {limit:,} bytes, the limit")
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw.decode("utf-8")) if raw else {}
        except (UnicodeDecodeError, ValueError) as e:
            raise RequestError(400, f"the body is not valid JSON ({e})") from None

    def _refused(self) -> RequestError | None:
        """A request this server does not take whatever it asks: from a page that reached a loopback
        server under another host name (DNS rebinding), or a POST that is not JSON (which a page of
        another site could send without the browser asking this server first)."""
        if self.server.loopback_only:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
            if host not in LOOPBACK_NAMES:
                return RequestError(403, f"this server answers only as localhost, not as {host or 'no host'!r}")
        if self.command == "POST":
            kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if kind != "application/json":
                return RequestError(415, "send the body as application/json")
        return None

    # ------------------------------------------------------------------ methods
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        try:
            refused = self._refused()
            if refused is not None:
                raise refused
            if path in self.GET_ROUTES:
                self._json(200, getattr(self.session, self.GET_ROUTES[path])())
            elif path.startswith("/api/"):
                raise RequestError(404 if path not in self.POST_ROUTES and path not in self.STREAM_ROUTES else 405,
                                   f"{path}: no such GET endpoint")
            else:
                target = static_file(path)
                if target is None:
                    raise RequestError(404, "not found")
                content_type = CONTENT_TYPES.get(target.suffix, "application/octet-stream")
                self._send(200, target.read_bytes(), content_type)
        except RequestError as e:
            self._json(e.status, {"error": str(e)}, close=self.close_connection or e.status == 411)
        except OSError as e:                     # the client went away: nothing to answer
            self._failed(e)
            self.close_connection = True
        except Exception as e:                   # noqa: BLE001 -- a bug: the server must go on
            self._failed(e)
            self._json(500, {"error": "internal error (the server's log has one line about it)"}, close=True)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            refused = self._refused()
            if refused is not None:
                self.close_connection = True        # its body, if any, is not read
                raise refused
            if path not in self.POST_ROUTES and path not in self.STREAM_ROUTES:
                raise RequestError(405 if path in self.GET_ROUTES else 404, f"{path}: no such POST endpoint")
            body = self._body()
            if path in self.POST_ROUTES:
                self._json(200, getattr(self.session, self.POST_ROUTES[path])(body))
                return
            prepare, run = self.STREAM_ROUTES[path]
            settings = getattr(self.session, prepare)(body)
        except RequestError as e:
            self._json(e.status, {"error": str(e)}, close=self.close_connection or e.status == 411)
            return
        except OSError as e:
            self._failed(e)
            self.close_connection = True
            return
        except Exception as e:                   # noqa: BLE001
            self._failed(e)
            self._json(500, {"error": "internal error (the server's log has one line about it)"}, close=True)
            return
        self._stream(getattr(self.session, run), settings)

    def _stream(self, run, settings) -> None:
        """Chunked JSON lines; an error after the first line is sent as a last ``{"error"}`` line."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-store")
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()

        def send(obj) -> None:
            data = json.dumps(obj, allow_nan=False).encode("utf-8") + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            try:
                run(settings, send)
            except RequestError as e:
                send({"error": str(e)})
            except OSError:
                raise
            except Exception as e:               # noqa: BLE001
                self._failed(e)
                send({"error": "internal error (the server's log has one line about it)"})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError as e:                     # the page stopped reading (Stop, a branch, a closed tab)
            self.server.log(f"{self.command} {self.path}: the client stopped reading ({type(e).__name__})")
            self.close_connection = True


class LookInsideServer(ThreadingHTTPServer):
    """A threaded HTTP server holding one :class:`Session`. ``url`` is where it listens."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, session: Session, host: str = "127.0.0.1", port: int = 8000, log_requests: bool = False,
                 log_file=None):
        self.session = session
        self.log_requests = log_requests
        # bound to this machine only: then only requests addressed to it by such a name are taken
        self.loopback_only = host in LOOPBACK_NAMES
        self._log_file = log_file
        self._log_lock = threading.Lock()
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def log(self, line: str) -> None:
        with self._log_lock:
            print(line, file=self._log_file or sys.stderr, flush=True)

    def handle_error(self, request, client_address) -> None:
        """Whatever escaped a handler: one line, never a traceback."""
        e = sys.exc_info()[1]
        self.log(f"error: request from {client_address[0]}: {type(e).__name__}: {e}")


def make_server(session: Session, host: str = "127.0.0.1", port: int = 8000, **options) -> LookInsideServer:
    """A server for ``session`` bound to ``host:port`` (port 0: any free port; see ``server.url``).
    Call ``serve_forever()`` on it (in a thread for tests) and ``shutdown()`` / ``server_close()``."""
    return LookInsideServer(session, host, port, **options)
