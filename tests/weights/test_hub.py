"""Downloading GPT-2's released weights: a fake Hub on 127.0.0.1 serves a tiny random model.

Oracle: the ``GPT2LMHeadModel`` the fake repository was saved from (logits to 1e-5). The cases
that fail (a wrong checksum, a cut-off transfer, a 404, offline with an empty cache) must each
say what happened and leave nothing in our output folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
from pathlib import Path

import huggingface_hub.file_download
import pytest
import torch

from scratchllm.errors import CheckpointError, DownloadError
from scratchllm.tokenizer import BPETokenizer, get_tokenizer
from scratchllm.weights import hub
from scratchllm.weights.checkpoint import load_checkpoint
from scratchllm.weights.hf_tokenizer import MERGES_TXT, VOCAB_JSON, write_hf_tokenizer
from scratchllm.weights.hub import (
    PRETRAINED,
    download_pretrained,
    pretrained_dir,
    resolve_pretrained,
)

REPO = PRETRAINED["gpt2"].repo_id
REVISION = PRETRAINED["gpt2"].revision
TEXT = "the quick brown fox jumps over the lazy dog; " * 20


@dataclasses.dataclass
class Repo:
    model: object  # the GPT2LMHeadModel the files were saved from
    files: dict[str, bytes]
    tokenizer: object

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.files["model.safetensors"]).hexdigest()


def repo_files(model, tokenizer_dir: Path | None, tmp_path: Path) -> dict[str, bytes]:
    saved = tmp_path / "saved"
    model.save_pretrained(saved, safe_serialization=True)
    files = {name: (saved / name).read_bytes() for name in ("config.json", "model.safetensors")}
    if tokenizer_dir is not None:
        files["vocab.json"] = (tokenizer_dir / VOCAB_JSON).read_bytes()
        files["merges.txt"] = (tokenizer_dir / MERGES_TXT).read_bytes()
    return files


@pytest.fixture
def repo(fake_hub, make_hf_gpt2, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    """openai-community/gpt2 at its pinned revision, holding a tiny model (vocabulary 300)."""
    tokenizer = BPETokenizer.train(TEXT, 300)
    write_hf_tokenizer(tokenizer, tmp_path / "tokenizer", model_max_length=64)
    model = make_hf_gpt2(tokenizer.vocab_size)
    repo = Repo(model, repo_files(model, tmp_path / "tokenizer", tmp_path), tokenizer)
    fake_hub.add(REPO, REVISION, repo.files)
    pinned = dataclasses.replace(PRETRAINED["gpt2"], sha256=repo.sha256, size_bytes=None)
    monkeypatch.setitem(PRETRAINED, "gpt2", pinned)
    return repo


def leftovers(folder: Path) -> list[str]:
    """Everything under ``folder`` (our cache), to show nothing was half-written."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_download_converts_to_a_checkpoint_with_hf_logits(fake_hub, repo: Repo):
    path = download_pretrained("gpt2", show_progress=False)
    assert path == pretrained_dir("gpt2")
    assert path.parent.parent == Path(hub.cache_dir())  # <cache>/models/gpt2
    model, tokenizer = load_checkpoint(path)
    assert (model.config.qkv_bias, model.config.tie_weights, model.config.dropout) == (
        True,
        True,
        0.0,
    )
    assert model.lm_head.weight is model.wte.weight
    token_ids = torch.tensor([repo.tokenizer.encode(TEXT[:120])])
    with torch.no_grad():
        expected = repo.model(token_ids).logits
        torch.testing.assert_close(model(token_ids), expected, atol=1e-5, rtol=0)
    assert tokenizer.fingerprint == repo.tokenizer.fingerprint
    assert tokenizer.encode(TEXT) == repo.tokenizer.encode(TEXT)
    source = json.loads((path / "config.json").read_text())["source"]
    assert source == {
        "format": "huggingface",
        "repo": REPO,
        "revision": REVISION,
        "file": "model.safetensors",
        "sha256": repo.sha256,
    }
    # every file at the pinned commit, through Hugging Face's cache under HF_HOME
    fetched = [path for method, path, _ in fake_hub.requests if method == "GET"]
    assert sorted(fetched) == sorted(f"/{REPO}/resolve/{REVISION}/{name}" for name in repo.files)
    snapshot = Path(hub._hub_cache_dir()) / "models--openai-community--gpt2" / "snapshots"
    assert (snapshot / REVISION / "model.safetensors").is_file()
    assert resolve_pretrained("gpt2") == path


def test_a_second_download_uses_the_cache_even_offline(
    fake_hub, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    first = download_pretrained("gpt2", show_progress=False)
    assert download_pretrained("gpt2", show_progress=False) == first  # already converted
    requests = len(fake_hub.requests)
    # the pinned commit is found in Hugging Face's cache without asking the Hub
    download_pretrained("gpt2", tmp_path / "again", show_progress=False)
    assert len(fake_hub.requests) == requests
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    other = download_pretrained("gpt2", tmp_path / "elsewhere", show_progress=False)
    assert len(fake_hub.requests) == requests  # no network at all
    assert (other / "model.safetensors").read_bytes() == (first / "model.safetensors").read_bytes()


def test_gpt2_vocabulary_files_give_tiktokens_gpt2(
    fake_hub, make_hf_gpt2, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # GPT-2's vocab.json and merges.txt are OpenAI's encoder.json and vocab.bpe
    model = make_hf_gpt2(50257, n_embd=16, n_head=2, n_layer=1)
    files = repo_files(model, None, tmp_path)
    files["vocab.json"] = (shared_data / "encoder.json").read_bytes()
    files["merges.txt"] = (shared_data / "vocab.bpe").read_bytes()
    fake_hub.add(REPO, REVISION, files)
    monkeypatch.setitem(PRETRAINED, "gpt2", dataclasses.replace(PRETRAINED["gpt2"], sha256=None))
    _, tokenizer = load_checkpoint(download_pretrained("gpt2", show_progress=False))
    assert tokenizer.fingerprint == get_tokenizer("gpt2").fingerprint  # tiktoken's own
    assert tokenizer.encode("Every effort moves you") == [6109, 3626, 6100, 345]


def test_a_wrong_checksum_is_refused_and_the_cached_copy_removed(
    fake_hub, repo: Repo, monkeypatch: pytest.MonkeyPatch
):
    wrong = dataclasses.replace(PRETRAINED["gpt2"], sha256="0" * 64)
    monkeypatch.setitem(PRETRAINED, "gpt2", wrong)
    with pytest.raises(DownloadError, match=f"does not match its checksum.*got {repo.sha256}"):
        download_pretrained("gpt2", show_progress=False)
    assert leftovers(hub.cache_dir()) == []
    blobs = Path(hub._hub_cache_dir()) / "models--openai-community--gpt2" / "blobs"
    assert not (blobs / repo.sha256).exists()  # the next try downloads afresh


def test_a_file_that_differs_from_the_hubs_own_hash_is_refused(
    fake_hub, repo: Repo, monkeypatch: pytest.MonkeyPatch
):
    # no pinned hash (another revision): the Hub's ETag is the reference
    monkeypatch.setitem(PRETRAINED, "gpt2", dataclasses.replace(PRETRAINED["gpt2"], sha256=None))
    blob = download_pretrained("gpt2", show_progress=False)
    assert blob.is_dir()
    cached = Path(hub._hub_cache_dir()) / "models--openai-community--gpt2" / "blobs" / repo.sha256
    cached.write_bytes(cached.read_bytes()[:-1] + b"x")  # damaged on disk
    with pytest.raises(DownloadError, match="does not match its checksum"):
        download_pretrained("gpt2", blob.parent / "again", show_progress=False)
    assert not (blob.parent / "again").exists()


def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """huggingface_hub waits a second before each of its 5 retries of a transfer: not here."""
    fake_time = types.SimpleNamespace(sleep=lambda seconds: None)
    monkeypatch.setattr(huggingface_hub.file_download, "time", fake_time)


def test_a_cut_off_transfer_is_resumed(fake_hub, repo: Repo, monkeypatch):
    no_waiting(monkeypatch)
    # huggingface_hub writes in 10 MB chunks and resumes after the last whole one: smaller here
    monkeypatch.setattr(huggingface_hub.constants, "DOWNLOAD_CHUNK_SIZE", 4096)
    fake_hub.cut["model.safetensors"] = "once"
    path = download_pretrained("gpt2", show_progress=False)
    first, second = fake_hub.gets("model.safetensors")
    assert first is None and second.startswith("bytes=") and second != "bytes=0-"
    model, _ = load_checkpoint(path)
    token_ids = torch.tensor([repo.tokenizer.encode(TEXT[:50])])
    with torch.no_grad():
        torch.testing.assert_close(
            model(token_ids), repo.model(token_ids).logits, atol=1e-5, rtol=0
        )


def test_a_transfer_cut_off_every_time_fails_cleanly(
    fake_hub, repo: Repo, monkeypatch: pytest.MonkeyPatch
):
    no_waiting(monkeypatch)
    fake_hub.cut["model.safetensors"] = "always"
    with pytest.raises(DownloadError, match="download of model.safetensors .* failed"):
        download_pretrained("gpt2", show_progress=False)
    assert len(fake_hub.gets("model.safetensors")) == 6  # huggingface_hub tried 5 more times
    assert leftovers(hub.cache_dir()) == []
    snapshot = Path(hub._hub_cache_dir()) / "models--openai-community--gpt2"
    assert not any(p.name.endswith(".incomplete") for p in snapshot.rglob("*"))


def test_a_missing_file_is_a_404_error(fake_hub, repo: Repo):
    del fake_hub.repos[REPO][1]["model.safetensors"]
    with pytest.raises(DownloadError, match=r"no model.safetensors of .*gpt2.*\(HTTP 404\)"):
        download_pretrained("gpt2", show_progress=False)
    assert leftovers(hub.cache_dir()) == []


def test_an_unknown_revision_is_named(fake_hub, repo: Repo):
    with pytest.raises(DownloadError, match="has no revision 1234567"):
        download_pretrained("gpt2", revision="1234567", show_progress=False)


def test_offline_with_an_empty_cache_says_so(fake_hub, repo: Repo, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE is set and config.json of"):
        download_pretrained("gpt2", show_progress=False)
    assert fake_hub.requests == []
    assert leftovers(hub.cache_dir()) == []
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE is set.*scratchllm convert"):
        resolve_pretrained("gpt2")


def test_unknown_names_list_the_known_ones():
    with pytest.raises(CheckpointError, match="gpt2, gpt2-medium, gpt2-large, gpt2-xl"):
        download_pretrained("gpt3")


def test_an_earlier_download_of_the_model_is_replaced_whole(fake_hub, repo: Repo):
    path = download_pretrained("gpt2", show_progress=False)
    config = json.loads((path / "config.json").read_text())
    config["source"]["revision"] = "0" * 40  # as if converted under an older pin
    (path / "config.json").write_text(json.dumps(config))
    download_pretrained("gpt2", show_progress=False)
    assert json.loads((path / "config.json").read_text())["source"]["revision"] == REVISION
    assert [p.name for p in path.parent.iterdir()] == ["gpt2"]  # no temporary or old folder


def test_an_existing_foreign_folder_is_not_overwritten(fake_hub, tmp_path: Path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not a download of gpt2"):
        download_pretrained("gpt2", mine, show_progress=False)
    assert fake_hub.requests == []  # refused before any download
    assert (mine / "notes.txt").read_text() == "keep me"


def test_resolve_names_only_and_says_how_to_download(fake_hub, tmp_path: Path):
    with pytest.raises(CheckpointError, match="run `scratchllm download gpt2-medium`"):
        resolve_pretrained("gpt2-medium")
    assert resolve_pretrained("out/runs/x") == Path("out/runs/x")
    assert resolve_pretrained(Path("gpt2")) == Path("gpt2")  # a Path is a folder, never a name
    assert resolve_pretrained("./gpt2") == Path("gpt2")
