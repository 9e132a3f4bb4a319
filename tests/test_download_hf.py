"""Hugging Face model repositories in ``gpt.download`` against a hub imitation on 127.0.0.1.

The server of tests/test_download.py serves ``/{repo}/resolve/main/{file}``; large files redirect,
as the hub's do, to a storage URL with ``X-Linked-Etag`` (their sha256) and ``X-Linked-Size``.
"""
import json

import numpy as np
import pytest

from gpt import download as dl
from gpt import safetensors as sf
from gpt.cli import main
from tests.test_download import FAST, leftovers, server, sha  # noqa: F401  (server is a fixture)

REPO = "Qwen/Qwen3-0.6B"


def weights_bytes(seed: int, names=("a.weight",)) -> bytes:
    rng = np.random.default_rng(seed)
    return sf.save({n: rng.standard_normal((64, 32)).astype(np.float32) for n in names})


def publish(server, repo: str, files: dict[str, bytes], lfs=(), storage_host: str | None = None) -> None:
    """Serve ``files`` under /{repo}/resolve/main/; those in ``lfs`` through a redirect carrying
    their sha256 and size, to ``storage_host`` (another host name for the same server) if given."""
    for name, data in files.items():
        path = f"/{repo}/resolve/main/{name}"
        if name in lfs:
            target = f"/storage/{repo}/{name}"
            server.files[target] = data
            location = f"{storage_host}{target}" if storage_host else target
            server.redirects[path] = (location, {"X-Linked-Etag": f'"{sha(data)}"',
                                                 "X-Linked-Size": str(len(data))})
        else:
            server.files[path] = data


def small_files() -> dict[str, bytes]:
    return {"config.json": json.dumps({"model_type": "qwen3"}).encode(),
            "generation_config.json": b'{"eos_token_id": 1}',
            "tokenizer.json": json.dumps({"model": {"type": "BPE"}}).encode(),
            "tokenizer_config.json": b"{}"}


@pytest.fixture
def hub(server, monkeypatch):
    monkeypatch.setenv(dl.HF_ENDPOINT_ENV, server.url)
    monkeypatch.delenv(dl.HF_TOKEN_ENV, raising=False)
    return server


def test_catalog_names_hugging_face_repositories_at_their_resolve_urls():
    item = dl.CATALOG["qwen3-0.6b"]
    assert item.hf == dl.HFRepo("Qwen/Qwen3-0.6B") and not item.hf.gated
    assert item.files[0].url == "https://huggingface.co/Qwen/Qwen3-0.6B/resolve/main/config.json"
    assert dl.CATALOG["llama3.2-1b"].hf.gated and dl.CATALOG["gemma3-270m"].hf.gated


def test_single_file_repository_downloads_with_published_checksums(hub, tmp_path):
    weights = weights_bytes(0)
    publish(hub, REPO, {**small_files(), "model.safetensors": weights}, lfs=("model.safetensors",))
    paths = dl.download("qwen3-0.6b", tmp_path, **FAST)
    assert [p.name for p in paths] == ["config.json", "generation_config.json", "tokenizer.json",
                                       "tokenizer_config.json", "model.safetensors"]
    assert (tmp_path / "model.safetensors").read_bytes() == weights
    assert leftovers(tmp_path) == sorted(p.name for p in paths)
    # the index was asked for (404) before the single file
    asked = [path for path, _ in hub.log]
    assert asked.index(f"/{REPO}/resolve/main/model.safetensors.index.json") < asked.index(
        f"/{REPO}/resolve/main/model.safetensors")


def test_sharded_repository_fetches_every_shard_its_index_names(hub, tmp_path):
    shards = {"model-00001-of-00002.safetensors": weights_bytes(1, ("a.weight", "b.weight")),
              "model-00002-of-00002.safetensors": weights_bytes(2, ("c.weight",))}
    index = {"metadata": {"total_size": 3 * 64 * 32 * 4},
             "weight_map": {"a.weight": "model-00001-of-00002.safetensors",
                            "b.weight": "model-00001-of-00002.safetensors",
                            "c.weight": "model-00002-of-00002.safetensors"}}
    publish(hub, REPO, {**small_files(), "model.safetensors.index.json": json.dumps(index).encode(), **shards},
            lfs=tuple(shards))
    paths = dl.download("qwen3-0.6b", tmp_path, **FAST)
    assert [p.name for p in paths][-3:] == ["model.safetensors.index.json", *sorted(shards)]
    for name, data in shards.items():
        assert (tmp_path / name).read_bytes() == data
    assert not (tmp_path / "model.safetensors").exists()
    assert f"/{REPO}/resolve/main/model.safetensors" not in [p for p, _ in hub.log]


def test_a_shard_with_a_wrong_published_checksum_is_deleted(hub, tmp_path):
    shard = weights_bytes(3)
    index = {"weight_map": {"a.weight": "model-00001-of-00001.safetensors"}}
    publish(hub, REPO, {**small_files(), "model.safetensors.index.json": json.dumps(index).encode(),
                        "model-00001-of-00001.safetensors": shard}, lfs=("model-00001-of-00001.safetensors",))
    path = f"/{REPO}/resolve/main/model-00001-of-00001.safetensors"
    target, headers = hub.redirects[path]
    hub.redirects[path] = (target, {**headers, "X-Linked-Etag": '"' + "0" * 64 + '"'})
    with pytest.raises(dl.ChecksumError, match="0{64} was expected"):
        dl.download("qwen3-0.6b", tmp_path, **FAST)
    assert not any(n.startswith("model-00001") for n in leftovers(tmp_path))


def test_an_interrupted_weights_download_resumes(hub, tmp_path):
    weights = weights_bytes(4)
    publish(hub, REPO, {**small_files(), "model.safetensors": weights}, lfs=("model.safetensors",))
    (tmp_path / "model.safetensors.part").write_bytes(weights[:5000])
    dl.download("qwen3-0.6b", tmp_path, **FAST)
    assert (tmp_path / "model.safetensors").read_bytes() == weights
    assert (f"/storage/{REPO}/model.safetensors", "bytes=5000-") in hub.log


def test_gated_repository_refused_without_a_token_says_how_to_get_access(hub, tmp_path, monkeypatch):
    repo = "meta-llama/Llama-3.2-1B"
    publish(hub, repo, {**small_files(), "model.safetensors": weights_bytes(5)})
    hub.protected[f"/{repo}/"] = "hf_secret"
    with pytest.raises(dl.AccessError) as refused:
        dl.download("llama3.2-1b", tmp_path, **FAST)
    message = str(refused.value)
    assert "\n" not in message and "HTTP 401" in message and "gated" in message
    assert "https://huggingface.co/meta-llama/Llama-3.2-1B" in message and "HF_TOKEN" in message
    assert leftovers(tmp_path) == []

    monkeypatch.setenv(dl.HF_TOKEN_ENV, "hf_wrong")
    with pytest.raises(dl.AccessError, match="HTTP 403.*token in HF_TOKEN was refused"):
        dl.download("llama3.2-1b", tmp_path, **FAST)

    monkeypatch.setenv(dl.HF_TOKEN_ENV, "hf_secret")
    dl.download("llama3.2-1b", tmp_path, **FAST)
    assert (tmp_path / "model.safetensors").is_file()
    assert all(auth == "Bearer hf_secret" for _, auth in hub.auth[-6:])


def test_the_token_is_not_sent_to_the_storage_host_a_file_redirects_to(hub, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.HF_TOKEN_ENV, "hf_secret")
    other_host = hub.url.replace("127.0.0.1", "localhost")
    publish(hub, REPO, {**small_files(), "model.safetensors": weights_bytes(6)}, lfs=("model.safetensors",),
            storage_host=other_host)
    dl.download("qwen3-0.6b", tmp_path, **FAST)
    auth = dict(hub.auth)
    assert auth[f"/{REPO}/resolve/main/model.safetensors"] == "Bearer hf_secret"
    assert auth[f"/storage/{REPO}/model.safetensors"] is None


def test_a_missing_optional_file_is_skipped_and_a_missing_tokenizer_is_an_error(hub, tmp_path):
    files = small_files()
    del files["generation_config.json"]
    publish(hub, REPO, {**files, "model.safetensors": weights_bytes(7)})
    names = [p.name for p in dl.download("qwen3-0.6b", tmp_path, **FAST)]
    assert "generation_config.json" not in names and "model.safetensors" in names
    del hub.files[f"/{REPO}/resolve/main/tokenizer.json"]
    with pytest.raises(dl.NotFoundError, match="tokenizer.json.*404"):
        dl.download("qwen3-0.6b", tmp_path / "again", **FAST)


def test_an_html_page_instead_of_the_config_is_rejected(hub, tmp_path):
    publish(hub, REPO, {**small_files(), "config.json": b"<html>sign in</html>"})
    with pytest.raises(dl.DownloadError, match="config.json.*not a JSON file"):
        dl.download("qwen3-0.6b", tmp_path, **FAST)
    assert leftovers(tmp_path) == []


def test_cli_gated_refusal_is_one_line(hub, tmp_path, capsys):
    repo = "google/gemma-3-270m"
    publish(hub, repo, small_files())
    hub.protected[f"/{repo}/"] = "hf_secret"
    assert main(["download", "gemma3-270m", "--dir", str(tmp_path / "g"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "accept its licence" in err and "HF_TOKEN" in err


def test_a_mirror_serves_hugging_face_files_under_its_host_name(server, tmp_path, monkeypatch):
    monkeypatch.delenv(dl.HF_ENDPOINT_ENV, raising=False)
    monkeypatch.delenv(dl.HF_TOKEN_ENV, raising=False)
    weights = weights_bytes(8)
    for name, data in {**small_files(), "model.safetensors": weights}.items():
        server.files[f"/huggingface.co/{REPO}/resolve/main/{name}"] = data
    dl.download("qwen3-0.6b", tmp_path, mirror=server.url, **FAST)
    assert (tmp_path / "model.safetensors").read_bytes() == weights
    assert all(path.startswith("/huggingface.co/") for path, _ in server.log)
