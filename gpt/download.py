"""Fetch the book's data sets and GPT-2's published weights, with nothing but urllib.

Not in the book (its notebooks call ``urllib.request.urlretrieve`` and hope); this module makes the
same downloads safe to interrupt and repeat:

- bytes arrive in ``<name>.part`` and only a complete, verified file is renamed to ``<name>``, so a
  file under its final name is always whole;
- a ``.part`` left by an interrupted run is resumed with an HTTP ``Range`` request (a server that
  ignores the range and sends everything again is detected, and the download restarts cleanly);
- a connection that drops or stalls is retried with the same resume, a few times;
- the size is checked against ``Content-Length`` (or ``Content-Range``) and the sha256 against the
  published checksum where there is one: pinned here for the BPE files, and for Hugging Face files
  the ``X-Linked-Etag`` that its ``resolve`` URLs send; a mismatch deletes the bad bytes;
- each file is checked for what it should be (a safetensors header that matches the file size, a
  JSON list of instructions, a zip holding the SMS collection), so an HTML error page served with
  status 200 is caught before anyone tries to train on it.

``GPT_DOWNLOAD_MIRROR`` (or ``mirror=``) replaces each file's scheme and host with a mirror laid out as
``<mirror>/<host>/<path>`` - the tree ``wget -x`` creates - so an offline machine can fetch from a
folder served with ``python -m http.server`` or read it straight from ``file:///...``.

Hugging Face model repositories (``qwen3-0.6b``, ``llama3.2-1b``, ``gemma3-270m``, ...) are fetched
from ``$HF_ENDPOINT`` (default https://huggingface.co) with ``$HF_TOKEN`` as a bearer token when set
(needed for gated repositories such as Llama 3.2 and Gemma 3; a refusal says how to get access); the
weights are one ``model.safetensors`` or the shards named by ``model.safetensors.index.json``.

Entry points: :func:`download` (a named item of :data:`CATALOG` into a folder) and :func:`fetch`
(one URL to one file). :func:`reference_data_dir` says where the book's reference files are (the
folder ``download("book-data")`` fills, or ``GPT_REFERENCE_DATA``), for the tests and examples.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Callable, TextIO

from gpt.atomic import fsync_dir, write_bytes_atomic

__all__ = ["DownloadError", "ChecksumError", "NotFoundError", "AccessError", "RemoteFile", "Item", "HFRepo",
           "CATALOG", "HF_ENDPOINT_ENV", "HF_TOKEN_ENV", "MIRROR_ENV", "REFERENCE_ENV",
           "BOOK_DATA", "download", "fetch", "mirror_url", "default_directory", "reference_data_dir"]

MIRROR_ENV = "GPT_DOWNLOAD_MIRROR"
REFERENCE_ENV = "GPT_REFERENCE_DATA"  # a folder laid out like the one BOOK_DATA downloads
BOOK_DATA = "book-data"
USER_AGENT = "llm-from-scratch-numpy/0.1 (+urllib)"
CHUNK = 1 << 16
_MAX_ATTEMPTS = 1000  # hard ceiling on requests for one file, whatever progress each makes

ProgressFn = Callable[[int, "int | None"], None]  # (bytes in the file so far, expected total or None)


class DownloadError(OSError):
    """A download that failed in a way the user can act on; the message is one line."""


class ChecksumError(DownloadError):
    """The bytes received do not match the published sha256 (or size); they have been deleted."""


class NotFoundError(DownloadError):
    """HTTP 404: the server has no such file."""


class AccessError(DownloadError):
    """HTTP 401 or 403: the server wants credentials, or refused the ones sent."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: where from, its path in the target folder, and what is known about it.

    ``filename`` is relative and ``/``-separated; it may name a subfolder (``gpt2/encoder.json``),
    which is created. An absolute path or a ``..`` that would leave the target folder is refused.
    """

    url: str
    filename: str
    sha256: str | None = None
    size: int | None = None
    check: Callable[[Path], None] | None = field(default=None, compare=False)  # raises ValueError
    optional: bool = False  # a 404 skips the file instead of failing the download

    def __post_init__(self) -> None:
        path = PurePosixPath(self.filename)
        if not path.parts or path.is_absolute() or ".." in path.parts or "\\" in self.filename:
            raise ValueError(f"RemoteFile filename {self.filename!r} must be a relative path "
                             "inside the target folder ('name' or 'sub/name')")


@dataclass(frozen=True)
class Item:
    """A name the ``download`` command accepts: its files and, optionally, a step after fetching them."""

    name: str
    description: str
    files: tuple[RemoteFile, ...]
    finish: Callable[[Path, bool], list[Path]] | None = field(default=None, compare=False)
    folder: str | None = None  # the default folder's name under data/, when it is not ``name``
    hf: "HFRepo | None" = None  # a Hugging Face model repository: weights found at download time

    def outputs(self, directory: Path) -> list[Path]:
        return [directory / f.filename for f in self.files]


# ------------------------------------------------------------------------------------------------
# Content checks: is a fully downloaded file what it claims to be?


def _check_safetensors(path: Path) -> None:
    from gpt.safetensors import read_header  # validates the header against the file's size

    header = read_header(path)
    if not header.tensors:
        raise ValueError(f"{path}: a safetensors file with no tensors, not model weights")


def _check_instruction_json(path: Path) -> None:
    try:
        entries = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and {"instruction", "input", "output"} <= e.keys() for e in entries):
        raise ValueError(f"{path}: expected a JSON list of {{instruction, input, output}} entries")


def _check_preference_json(path: Path) -> None:
    try:
        entries = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(entries, list) or not entries or not all(
            isinstance(e, dict) and {"instruction", "input", "chosen", "rejected"} <= e.keys() for e in entries):
        raise ValueError(f"{path}: expected a JSON list of {{instruction, input, chosen, rejected}} entries")


_SMS_MEMBER = "SMSSpamCollection"


def _check_sms_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            if not any(Path(n).name == _SMS_MEMBER for n in z.namelist()):
                raise ValueError(f"{path}: the zip has no {_SMS_MEMBER} file (it has {z.namelist()})")
            bad = z.testzip()
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: not a zip file ({e})") from None
    if bad is not None:
        raise ValueError(f"{path}: {bad} inside the zip is damaged (CRC mismatch)")


def _extract_sms(directory: Path, force: bool) -> list[Path]:
    """Unzip ``SMSSpamCollection`` to ``SMSSpamCollection.tsv`` (label<TAB>text per line), atomically."""
    out = directory / "SMSSpamCollection.tsv"
    if out.exists() and not force:
        return [out]
    with zipfile.ZipFile(directory / "sms_spam_collection.zip") as z:
        member = next(n for n in z.namelist() if Path(n).name == _SMS_MEMBER)
        data = z.read(member)
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip() and not (line.startswith(b"ham\t") or line.startswith(b"spam\t")):
            raise DownloadError(f"{member} line {number} is not 'ham<TAB>text' or 'spam<TAB>text'; "
                                "the archive is not the SMS Spam Collection")
    write_bytes_atomic(out, data)
    return [out]


# ------------------------------------------------------------------------------------------------
# What can be downloaded

_BPE_BASE = "https://openaipublic.blob.core.windows.net/gpt-2/models/124M"
_BPE_FILES = (
    RemoteFile(f"{_BPE_BASE}/encoder.json", "encoder.json",
               sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783", size=1042301),
    RemoteFile(f"{_BPE_BASE}/vocab.bpe", "vocab.bpe",
               sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5", size=456318),
)


_INSTRUCTION_DATA = RemoteFile(
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/instruction-data.json",
    "instruction-data.json", check=_check_instruction_json)

# Not pinned (no sha256 could be checked against the published file from here), so not in book-data.
_PREFERENCE_DATA = RemoteFile(
    "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/04_preference-tuning-with-dpo/"
    "instruction-data-with-preference.json", "instruction-data-with-preference.json", check=_check_preference_json)

# The files the tests and examples compare with the book's figures (GPT_REFERENCE_DATA's layout),
# so every one is pinned: a changed upstream file fails its checksum instead of moving a figure.
_BOOK_FILES = (
    RemoteFile("https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch02/01_main-chapter-code/"
               "the-verdict.txt", "the-verdict.txt",
               sha256="b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f", size=20479),
    *(replace(f, filename=f"gpt2/{f.filename}") for f in _BPE_FILES),
    replace(_INSTRUCTION_DATA,
            sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944", size=203524),
)


# ------------------------------------------------------------------------------------------------
# Hugging Face model repositories (today's decoders, loaded by gpt.hf.load_model)

HF_ENDPOINT_ENV = "HF_ENDPOINT"  # another hub (or a test server) instead of https://huggingface.co
HF_TOKEN_ENV = "HF_TOKEN"        # sent as "Authorization: Bearer ..." for gated repositories
HF_DEFAULT_ENDPOINT = "https://huggingface.co"


@dataclass(frozen=True)
class HFRepo:
    """A model repository on the Hugging Face hub: ``owner/name``, the revision (branch, tag or
    commit) and whether it is gated (its licence must be accepted on the model page first)."""

    repo: str
    revision: str = "main"
    gated: bool = False

    def url(self, filename: str, endpoint: str = HF_DEFAULT_ENDPOINT) -> str:
        return f"{endpoint.rstrip('/')}/{self.repo}/resolve/{self.revision}/{filename}"


def _json_object(path: Path, must_have: str | None = None) -> dict:
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(value, dict) or (must_have is not None and must_have not in value):
        raise ValueError(f"{path}: expected a JSON object" + (f" with {must_have!r}" if must_have else ""))
    return value


def _check_hf_config(path: Path) -> None:
    _json_object(path, "model_type")


def _check_tokenizer_json(path: Path) -> None:
    _json_object(path, "model")


def _check_json(path: Path) -> None:
    _json_object(path)


def _check_index(path: Path) -> None:
    from gpt.hf.files import read_index

    read_index(path)


_HF_WEIGHTS, _HF_INDEX = "model.safetensors", "model.safetensors.index.json"


def _hf(name: str, repo: str, description: str, gated: bool = False) -> Item:
    """An item for a Hugging Face repository: its config, tokenizer and weights (a single
    ``model.safetensors`` or the shards its index names, decided when downloading)."""
    r = HFRepo(repo, gated=gated)
    files = (
        RemoteFile(r.url("config.json"), "config.json", check=_check_hf_config),
        RemoteFile(r.url("generation_config.json"), "generation_config.json", check=_check_json, optional=True),
        RemoteFile(r.url("tokenizer.json"), "tokenizer.json", check=_check_tokenizer_json),
        RemoteFile(r.url("tokenizer_config.json"), "tokenizer_config.json", check=_check_json, optional=True),
    )
    gate = "; gated: accept the licence on its page, set HF_TOKEN" if gated else ""
    return Item(name, f"{description} (huggingface.co/{repo}{gate})", files, hf=r)


def _gpt2(name: str, repo: str, params: str, size: str) -> Item:
    weights = RemoteFile(f"https://huggingface.co/openai-community/{repo}/resolve/main/model.safetensors",
                         "model.safetensors", check=_check_safetensors)
    return Item(name, f"GPT-2 {params} weights (model.safetensors, about {size}) + BPE vocabulary",
                (weights, *_BPE_FILES))


CATALOG: dict[str, Item] = {item.name: item for item in (
    _gpt2("gpt2-small", "gpt2", "124M", "548 MB"),
    _gpt2("gpt2-medium", "gpt2-medium", "355M", "1.5 GB"),
    _gpt2("gpt2-large", "gpt2-large", "774M", "3.2 GB"),
    _gpt2("gpt2-xl", "gpt2-xl", "1558M", "6.4 GB"),
    Item("sms-spam", "SMS Spam Collection (chapter 6), unzipped to SMSSpamCollection.tsv",
         (RemoteFile("https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
                     "sms_spam_collection.zip", check=_check_sms_zip),),
         finish=_extract_sms),
    Item("instruction-data", "the book's 1,100 instruction/response pairs (chapter 7)", (_INSTRUCTION_DATA,)),
    Item("preference-data", "the book's 1,100 instructions with a chosen and a rejected response (chapter 7's "
         "DPO bonus)", (_PREFERENCE_DATA,)),
    Item(BOOK_DATA, "the book's files the tests and examples read (the-verdict.txt, GPT-2's BPE "
         "vocabulary, the instruction data), into data/book", _BOOK_FILES, folder="book"),
    _hf("qwen3-0.6b", "Qwen/Qwen3-0.6B", "Qwen3 0.6B, BF16, about 1.5 GB"),
    _hf("qwen3-1.7b", "Qwen/Qwen3-1.7B", "Qwen3 1.7B, BF16, about 4 GB"),
    _hf("llama3.2-1b", "meta-llama/Llama-3.2-1B", "Llama 3.2 1B base, BF16, about 2.5 GB", gated=True),
    _hf("llama3.2-1b-instruct", "meta-llama/Llama-3.2-1B-Instruct", "Llama 3.2 1B instruct, about 2.5 GB",
        gated=True),
    _hf("gemma3-270m", "google/gemma-3-270m", "Gemma 3 270M base, about 540 MB", gated=True),
    _hf("gemma3-270m-it", "google/gemma-3-270m-it", "Gemma 3 270M instruct, about 540 MB", gated=True),
    _hf("gemma3-1b-it", "google/gemma-3-1b-it", "Gemma 3 1B instruct, about 2 GB", gated=True),
)}


def default_directory(name: str) -> Path:
    """Where ``download(name)`` puts files when no folder is given: ``data/<name>`` (``data/book``
    for ``book-data``), relative to the current folder."""
    item = CATALOG.get(name)
    return Path("data") / (item.folder if item is not None and item.folder else name)


def reference_data_dir(root: str | os.PathLike) -> Path | None:
    """The folder of the book's reference files: ``$GPT_REFERENCE_DATA`` when set (returned even if
    it is not a folder, so that the caller can say so), else ``root/data/book`` (what
    ``python -m gpt download book-data`` fills when run in ``root``) when it holds every file (an
    interrupted download leaves it incomplete), else None.

    The tests and examples pass the repository's root; ``python -m gpt bench`` the current folder.
    """
    named = os.environ.get(REFERENCE_ENV)
    if named:
        return Path(named)
    folder = Path(root) / default_directory(BOOK_DATA)
    complete = all(path.is_file() for path in CATALOG[BOOK_DATA].outputs(folder))
    return folder if complete else None


def mirror_url(url: str, mirror: str | None) -> str:
    """``https://host/path`` -> ``<mirror>/host/path`` (unchanged when ``mirror`` is empty)."""
    if not mirror:
        return url
    if urllib.parse.urlsplit(mirror).scheme not in ("http", "https", "file"):
        raise ValueError(f"mirror {mirror!r} must start with http://, https:// or file:// "
                         f"(check --mirror or {MIRROR_ENV})")
    parts = urllib.parse.urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


# ------------------------------------------------------------------------------------------------
# Progress


class _Progress:
    """``model.safetensors  123.4 / 548.1 MB  22%  31.5 MB/s`` on stderr, redrawn a few times a second
    on a terminal, one line every 10 s elsewhere (CI logs); or a callback ``fn(done, total)``."""

    def __init__(self, label: str, progress: bool | ProgressFn, stream: TextIO | None = None):
        self.label = label
        self.fn = progress if callable(progress) else None
        self.enabled = bool(progress)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if hasattr(self.stream, "isatty") else False
        self.every = 0.2 if self.tty else 10.0
        self.total: int | None = None
        self.start_bytes = 0
        self.t0 = self.last = time.monotonic()

    def begin(self, done: int, total: int | None) -> None:
        self.total, self.start_bytes = total, done
        self.t0 = self.last = time.monotonic()
        self.update(done, force=self.fn is not None)

    def update(self, done: int, force: bool = False) -> None:
        if self.fn is not None:
            self.fn(done, self.total)
            return
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < self.every):
            return
        self.last = now
        rate = (done - self.start_bytes) / max(now - self.t0, 1e-6) / 1e6
        text = f"{self.label}  {done / 1e6:,.1f}"
        if self.total:
            text += f" / {self.total / 1e6:,.1f} MB  {100 * done / self.total:3.0f}%"
        else:
            text += " MB"
        text += f"  {rate:.1f} MB/s"
        self.stream.write(("\r" + text + "\033[K") if self.tty else text + "\n")
        self.stream.flush()

    def end(self, done: int) -> None:
        self.update(done, force=True)
        if self.enabled and self.fn is None and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def note(self, message: str) -> None:
        if self.enabled and self.fn is None:
            self.stream.write(("\r\033[K" if self.tty else "") + f"{self.label}: {message}\n")
            self.stream.flush()


# ------------------------------------------------------------------------------------------------
# One URL -> one file


class _RecordRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects like urllib does, keeping each redirect's headers: Hugging Face puts the
    sha256 and size of large files on the redirect (``X-Linked-Etag`` / ``X-Linked-Size``)."""

    def __init__(self) -> None:
        self.headers: list = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        self.headers.append(headers)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        # a token is for the host it was given to, not for the storage host a file redirects to
        if new is not None and urllib.parse.urlsplit(newurl).netloc != urllib.parse.urlsplit(req.full_url).netloc:
            new.remove_header("Authorization")
        return new


class _Retry(Exception):
    """A transient failure (dropped connection, timeout, 5xx): try again, resuming."""


def _published(headers_seen: list) -> tuple[str | None, int | None]:
    """(sha256, size) announced by a server through X-Linked-Etag / X-Linked-Size, if any."""
    sha, size = None, None
    for h in headers_seen:
        etag = (h.get("X-Linked-Etag") or "").strip()
        etag = etag[2:] if etag.startswith("W/") else etag
        etag = etag.strip('"').lower()
        if sha is None and re.fullmatch(r"[0-9a-f]{64}", etag):
            sha = etag
        if size is None and (h.get("X-Linked-Size") or "").strip().isdigit():
            size = int(h["X-Linked-Size"])
    return sha, size


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes 100-999/1000`` -> (100, 1000); ``bytes */1000`` -> (None, 1000); unknowns -> None."""
    m = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(2)) if m.group(2) != "*" else None
    return start, total


def _sha256_of(path: Path, upto: int | None = None) -> "hashlib._Hash":
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = upto
        while left is None or left > 0:
            block = f.read(CHUNK if left is None else min(CHUNK, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _describe_network_error(e: BaseException) -> str:
    reason = getattr(e, "reason", e)
    if isinstance(reason, socket.gaierror):
        return f"the host name could not be resolved ({reason.strerror or reason})"
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "the server did not answer in time"
    return str(reason) or type(reason).__name__


def fetch(url: str, dest: str | os.PathLike, *, sha256: str | None = None, size: int | None = None,
          check: Callable[[Path], None] | None = None, progress: bool | ProgressFn = True,
          retries: int = 4, timeout: float = 30.0, backoff: float = 1.0, force: bool = False,
          headers: dict[str, str] | None = None) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part`` if present) and return ``dest``.

    ``sha256`` / ``size``: expected values; when absent, those the server publishes (Hugging Face's
    ``X-Linked-Etag`` / ``X-Linked-Size``, and ``Content-Length``) are checked instead. ``check(path)``
    runs on the complete ``.part`` before it is renamed and raises ValueError if the content is wrong.
    ``retries``: how many times a failed attempt is retried (resuming); an attempt that got further
    than any before it starts the count again, so a long download survives many brief drops.
    ``timeout``: seconds to connect and for each read. ``backoff``: first pause between attempts,
    doubling, at most 30 s. ``progress``: show progress on stderr, or a callback
    ``fn(bytes_so_far, total_or_None)``. An existing ``dest`` is kept (re-checked against
    ``sha256`` when given) unless ``force``. ``headers``: extra request headers (e.g. an
    ``Authorization`` token, which is not sent on to another host a redirect points at).

    Raises :class:`DownloadError` (one-line message) for HTTP errors, unreachable hosts and content
    that fails ``check`` (:class:`NotFoundError` for 404, :class:`AccessError` for 401/403);
    :class:`ChecksumError` when size or sha256 disagree (the bytes are deleted).
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    show = _Progress(dest.name, progress)
    if dest.exists() and not force:
        if sha256 is None or _sha256_of(dest).hexdigest() == sha256:
            return dest
        show.note("the existing file does not match its sha256; downloading it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if force:
        _unlink(part)

    recorder = _RecordRedirects()
    opener = urllib.request.build_opener(recorder)
    failures, best, made, last_error = 0, -1, 0, "no attempt made"
    while failures <= retries and made < _MAX_ATTEMPTS:
        if failures:
            time.sleep(min(backoff * 2 ** (failures - 1), 30.0))
        made += 1
        have = part.stat().st_size if part.exists() else 0
        try:
            done = _attempt(opener, recorder, url, part, have, size, timeout, show, headers)
        except _Retry as e:
            last_error = str(e)
            now = part.stat().st_size if part.exists() else 0
            if now > best:
                best, failures = now, 0
            failures += 1
            if failures <= retries:
                show.note(f"{last_error}; retrying ({failures}/{retries})")
            continue
        # Complete: verify and rename.
        published_sha, _ = _published(recorder.headers)
        want_sha = sha256 or published_sha
        if want_sha is not None and done.hexdigest() != want_sha.lower():
            _unlink(part)
            raise ChecksumError(f"{dest.name} from {url} has sha256 {done.hexdigest()} but "
                                f"{want_sha} was expected; the download was deleted, try again")
        if check is not None:
            try:
                check(part)
            except ValueError as e:
                _unlink(part)
                raise DownloadError(f"{dest.name} from {url} is not what was expected: "
                                    f"{str(e).replace(str(part), dest.name)}; deleted it") from None
        os.replace(part, dest)
        fsync_dir(dest.parent)
        return dest
    have = part.stat().st_size if part.exists() else 0
    kept = f"; {have:,} bytes kept in {part.name}, run again to resume" if have else ""
    raise DownloadError(f"could not download {url} after {made} attempts: {last_error}{kept}")


def _attempt(opener, recorder, url: str, part: Path, have: int, size: int | None, timeout: float,
             show: _Progress, headers: dict[str, str] | None = None):
    """One request: resume or restart ``part``, stream the body into it. -> sha256 of the whole part.

    Raises _Retry for failures worth another attempt, DownloadError/ChecksumError for the rest.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
                                                   **(headers or {})})
    if have:
        request.add_header("Range", f"bytes={have}-")
    recorder.headers.clear()
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:  # nothing left after `have`: complete already, or a stale part
            _, total = _content_range(e.headers.get("Content-Range"))
            if total == have and (size is None or size == have):
                show.begin(have, have)
                show.end(have)
                return _sha256_of(part)
            _unlink(part)
            raise _Retry(f"the partial file does not fit the server's ({total} bytes); starting over")
        if e.code in (408, 429) or 500 <= e.code < 600:
            raise _Retry(f"HTTP {e.code} {e.reason}") from None
        hint = {404: "no such file there (check the name or the mirror)",
                401: "the server wants credentials", 403: "access denied"}.get(e.code, "")
        kind = NotFoundError if e.code == 404 else AccessError if e.code in (401, 403) else DownloadError
        error = kind(f"{url}: HTTP {e.code} {e.reason}" + (f": {hint}" if hint else ""))
        error.status = e.code
        raise error from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (FileNotFoundError, NotADirectoryError, PermissionError)):
            raise DownloadError(f"{url}: {e.reason.strerror or e.reason}") from None
        if isinstance(e.reason, ssl.SSLCertVerificationError):
            raise DownloadError(f"{url}: the server's TLS certificate was rejected "
                                f"({e.reason.verify_message})") from None
        host = urllib.parse.urlsplit(url).netloc
        raise _Retry(f"could not connect to {host}: {_describe_network_error(e)} "
                     f"(no network? set {MIRROR_ENV} to use a mirror)") from None
    except (http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout) as e:
        raise _Retry(f"the connection failed: {_describe_network_error(e)}") from None

    with response:
        status = response.status or 200  # file:// responses have no status
        start, total = _content_range(response.headers.get("Content-Range"))
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.strip().isdigit() else None
        if status == 206 and have:
            if start != have:
                _unlink(part)
                raise _Retry(f"the server resumed at byte {start}, not {have}; starting over")
            if total is None and length is not None:
                total = have + length
        else:
            if have:
                show.note("the server ignored the resume request; starting over")
            have = 0
            total = length
        _, published_size = _published(recorder.headers)
        for expected, source in ((size, "expected"), (published_size, "published")):
            if expected is not None and total is not None and expected != total:
                _unlink(part)
                raise ChecksumError(f"{url} is {total:,} bytes but {expected:,} were {source}; "
                                    "the server has a different file")
        total = total if total is not None else (size or published_size)
        if total is not None:
            free = shutil.disk_usage(part.parent).free
            if total - have > free:
                raise DownloadError(f"not enough disk space for {part.name[:-5]}: {total - have:,} more "
                                    f"bytes needed, {free:,} free in {part.parent}")

        hasher = _sha256_of(part, upto=have) if have else hashlib.sha256()
        done = have
        # read1 returns whatever has arrived, so bytes received before a stall are kept, not lost
        # inside a half-filled read(CHUNK) when the timeout fires.
        read = getattr(response, "read1", response.read)
        show.begin(done, total)
        with open(part, "r+b" if have else "wb") as f:
            f.seek(have)
            f.truncate()
            try:
                while True:
                    block = read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    hasher.update(block)
                    done += len(block)
                    show.update(done)
            except (http.client.HTTPException, ConnectionError, TimeoutError, socket.timeout) as e:
                raise _Retry(f"the connection dropped after {done:,} bytes "
                             f"({_describe_network_error(e)})") from None
            finally:
                f.flush()
                os.fsync(f.fileno())
        show.end(done)
    if total is not None and done < total:
        raise _Retry(f"the connection closed after {done:,} of {total:,} bytes")
    if total is not None and done > total:
        _unlink(part)
        raise ChecksumError(f"{url} sent {done:,} bytes, more than the {total:,} announced")
    return hasher


# ------------------------------------------------------------------------------------------------
# A named item -> a folder


def download(name: str, directory: str | os.PathLike | None = None, *, mirror: str | None = None,
             progress: bool | ProgressFn = True, force: bool = False, retries: int = 4,
             timeout: float = 30.0, backoff: float = 1.0) -> list[Path]:
    """Fetch the files of ``CATALOG[name]`` into ``directory`` (default: :func:`default_directory`) -> their paths.

    ``mirror`` (default: the ``GPT_DOWNLOAD_MIRROR`` environment variable) replaces every file's
    ``https://host`` with ``<mirror>/host``. Files already present are kept (checked against their
    sha256 where one is pinned) unless ``force``. Other arguments as in :func:`fetch`.
    For ``sms-spam`` the returned paths end with the extracted ``SMSSpamCollection.tsv``.
    """
    if name not in CATALOG:
        raise ValueError(f"unknown download {name!r}; choose one of: {', '.join(CATALOG)}")
    item = CATALOG[name]
    folder = Path(directory) if directory is not None else default_directory(name)
    if mirror is None:
        mirror = os.environ.get(MIRROR_ENV) or None
    options = dict(progress=progress, retries=retries, timeout=timeout, backoff=backoff, force=force)
    if item.hf is not None:
        return _download_hf(item, folder, mirror, options)
    paths = [fetch(mirror_url(f.url, mirror), folder / f.filename, sha256=f.sha256, size=f.size,
                   check=f.check, **options)
             for f in item.files]
    if item.finish is not None:
        paths += item.finish(folder, force)
    return paths


def _download_hf(item: Item, folder: Path, mirror: str | None, options: dict) -> list[Path]:
    """The files of a Hugging Face repository: config, tokenizer, then the weights.

    URLs are ``{HF_ENDPOINT or https://huggingface.co}/{repo}/resolve/{revision}/{file}``. The
    weights are one ``model.safetensors``, or the shards ``model.safetensors.index.json`` names
    (fetched first when the repository has one). Large files are checked against the sha256 and size
    the hub publishes with them (``X-Linked-Etag`` / ``X-Linked-Size``), small ones against their
    ``Content-Length`` and their content. ``HF_TOKEN`` is sent as a bearer token; a refusal (401/403)
    becomes a one-line :class:`AccessError` that says how to get access.
    """
    repo = item.hf
    endpoint = os.environ.get(HF_ENDPOINT_ENV) or HF_DEFAULT_ENDPOINT
    token = (os.environ.get(HF_TOKEN_ENV) or "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else None

    def get(filename: str, check, optional: bool = False) -> Path | None:
        url = repo.url(filename, endpoint)
        if endpoint == HF_DEFAULT_ENDPOINT:
            url = mirror_url(url, mirror)
        try:
            return fetch(url, folder / filename, check=check, headers=headers, **options)
        except NotFoundError:
            if optional:
                return None
            raise
        except AccessError as e:
            raise AccessError(_access_hint(repo, e.status, bool(token))) from None

    paths = [p for f in item.files if (p := get(f.filename, f.check, f.optional)) is not None]
    force = options["force"]
    if (folder / _HF_WEIGHTS).is_file() and not (folder / _HF_INDEX).exists() and not force:
        index = None                                  # downloaded before as a single file
    else:
        index = get(_HF_INDEX, _check_index, optional=True)
    if index is None:
        paths.append(get(_HF_WEIGHTS, _check_safetensors))
        return paths
    from gpt.hf.files import read_index

    paths.append(index)
    for shard in sorted(set(read_index(index).values())):
        paths.append(get(shard, _check_safetensors))
    return paths


def _access_hint(repo: HFRepo, status: int, sent_token: bool) -> str:
    page = f"{HF_DEFAULT_ENDPOINT}/{repo.repo}"
    if sent_token:
        return (f"{repo.repo}: HTTP {status}, the token in {HF_TOKEN_ENV} was refused; accept the licence "
                f"at {page} with the account the token belongs to (approval can take a while), or "
                f"create a new read token at {HF_DEFAULT_ENDPOINT}/settings/tokens")
    why = "the repository is gated" if repo.gated else "the hub wants a token for it (private, or gated)"
    return (f"{repo.repo}: HTTP {status}, {why}; accept its licence at {page}, create "
            f"a read token at {HF_DEFAULT_ENDPOINT}/settings/tokens and set {HF_TOKEN_ENV}=hf_... before "
            "downloading")
