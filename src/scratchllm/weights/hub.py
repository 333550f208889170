"""GPT-2's released weights from the Hugging Face Hub, as our checkpoints.

``download_pretrained("gpt2")`` fetches ``config.json``, ``vocab.json``, ``merges.txt`` and
``model.safetensors`` of ``openai-community/gpt2`` at a pinned commit through
``huggingface_hub.hf_hub_download``, so Hugging Face's own machinery applies: its cache
(``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``, shared with
``transformers``), retried and resumed transfers, ``HF_ENDPOINT`` (a mirror) and
``HF_HUB_OFFLINE`` (cache only). These variables are read on every call. The weights are then
checked by SHA-256 (``PRETRAINED``'s pinned hash where we know it, else the hash the Hub
announced for the file, its ETag) and converted (``convert.py``) into our checkpoint folder,
``<cache>/models/<name>`` by default (``corpora.cache_dir()``: ``$SCRATCHLLM_CACHE_DIR``, else
``$XDG_CACHE_HOME/scratchllm``, else ``~/.cache/scratchllm``). The tokenizer is built from the
same commit's ``vocab.json`` + ``merges.txt``, so a download needs nothing else.

Two copies, then: Hugging Face's files in its cache (what a second ``download`` reuses without
network), and our converted folder (what every command loads).

``resolve_pretrained(spec)`` maps the names ``gpt2`` ... ``gpt2-xl`` to the converted folder. It
never downloads: a command that reads a checkpoint does not reach for the network behind the
user's back. When the folder is missing it raises a ``CheckpointError`` that gives the command
to run, or, with ``HF_HUB_OFFLINE`` set, the files to fetch elsewhere and the ``convert``
command that puts them in place. A name means the pretrained model; write ``./gpt2`` for a
folder of that name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import huggingface_hub
from huggingface_hub.utils import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    are_progress_bars_disabled,
    disable_progress_bars,
    enable_progress_bars,
)
from tqdm.auto import tqdm

from scratchllm.corpora import cache_dir
from scratchllm.errors import CheckpointError, DownloadError, ScratchLLMError
from scratchllm.weights.checkpoint import CONFIG_FILE
from scratchllm.weights.convert import (
    HF_CONFIG_FILE,
    HF_SAFETENSORS_FILE,
    atomic_directory,
    gpt_config_from_hf,
    read_hf_weights,
    write_checkpoint_from_hf,
)
from scratchllm.weights.hf_tokenizer import MERGES_TXT, VOCAB_JSON, load_hf_vocab_and_merges

MODELS_DIR = "models"  # under cache_dir()
_CHUNK_BYTES = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class PretrainedModel:
    """One released model on the Hub, pinned to a commit."""

    name: str
    repo_id: str
    # the commit every file is fetched at: the same bytes on every machine, every year
    revision: str
    # SHA-256 and size of model.safetensors at that commit, where we know them; without them the
    # file is checked against the SHA-256 the Hub announces for it (its ETag)
    sha256: str | None = None
    size_bytes: int | None = None

    @property
    def url(self) -> str:
        """Where ``model.safetensors`` is, for people fetching it by hand."""
        return (
            f"https://huggingface.co/{self.repo_id}/resolve/{self.revision}/{HF_SAFETENSORS_FILE}"
        )


# The commits: gpt2's with its file hash and size from the project's data README (checked there
# against the file); the three others are the commits that the openai-community repositories'
# cache snapshots carry in public code (not checked against the files here).
PRETRAINED: dict[str, PretrainedModel] = {
    "gpt2": PretrainedModel(
        "gpt2",
        "openai-community/gpt2",
        "607a30d783dfa663caf39e06633721c8d4cfcd7e",
        sha256="248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
        size_bytes=548_105_171,
    ),
    "gpt2-medium": PretrainedModel(
        "gpt2-medium", "openai-community/gpt2-medium", "6dcaa7a952f72f9298047fd5137cd6e4f05f41da"
    ),
    "gpt2-large": PretrainedModel(
        "gpt2-large", "openai-community/gpt2-large", "32b71b12589c2f8d625668d2335a01cac3249519"
    ),
    "gpt2-xl": PretrainedModel(
        "gpt2-xl", "openai-community/gpt2-xl", "15ea56dee5df4983c59b2538573817e1667135e2"
    ),
}

#: fetched in this order: the small files first, so a wrong name or revision fails in a second
HUB_FILES = (HF_CONFIG_FILE, VOCAB_JSON, MERGES_TXT, HF_SAFETENSORS_FILE)

Log = Callable[[str], None]


def pretrained_model(name: str) -> PretrainedModel:
    """The registry entry for ``name``; an unknown name lists the known ones."""
    if name not in PRETRAINED:
        raise CheckpointError(
            f"unknown pretrained model {name!r}; choose one of {', '.join(PRETRAINED)}"
        )
    return PRETRAINED[name]


def pretrained_dir(name: str) -> Path:
    """Where ``download_pretrained(name)`` puts the converted checkpoint by default."""
    return cache_dir() / MODELS_DIR / pretrained_model(name).name


def is_pretrained_name(spec: str | os.PathLike[str]) -> bool:
    """Whether ``spec`` (a string as typed; a ``Path`` never is) names a pretrained model."""
    return isinstance(spec, str) and spec in PRETRAINED


def resolve_pretrained(spec: str | os.PathLike[str]) -> Path:
    """The checkpoint folder ``spec`` means: for ``gpt2`` ... ``gpt2-xl`` the downloaded and
    converted copy (never downloading it: see the module docstring), anything else as a path.

    A missing copy raises a ``CheckpointError`` that says which command to run.
    """
    if not is_pretrained_name(spec):
        return Path(spec)
    target = pretrained_dir(str(spec))
    if (target / CONFIG_FILE).is_file():
        return target
    raise CheckpointError(_not_downloaded_message(pretrained_model(str(spec)), target))


def _not_downloaded_message(model: PretrainedModel, target: Path) -> str:
    by_hand = (
        f"fetch config.json, vocab.json, merges.txt and model.safetensors from "
        f"https://huggingface.co/{model.repo_id}/tree/{model.revision} into one folder and run "
        f"`scratchllm convert --from hf FOLDER -o {target}`"
    )
    if _offline():
        return (
            f"the pretrained model {model.name} is not converted yet ({target} is missing) and "
            f"HF_HUB_OFFLINE is set, so `scratchllm download {model.name}` can only use files "
            f"already in Hugging Face's cache ({_hub_cache_dir()}); otherwise {by_hand}"
        )
    size = f", {model.size_bytes / 1e6:,.0f} MB" if model.size_bytes else ""
    return (
        f"the pretrained model {model.name} is not downloaded yet ({target} is missing): run "
        f"`scratchllm download {model.name}` (from the Hugging Face Hub{size}), or {by_hand}"
    )


# ---- the environment, read on every call -------------------------------------------------------


def _offline() -> bool:
    """``HF_HUB_OFFLINE`` (or transformers' ``TRANSFORMERS_OFFLINE``) as huggingface_hub reads
    it, but now rather than when it was imported."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in {"1", "ON", "YES", "TRUE"} or huggingface_hub.constants.HF_HUB_OFFLINE


def _hub_cache_dir() -> Path:
    """Hugging Face's cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else its default."""
    if override := os.environ.get("HF_HUB_CACHE"):
        return Path(override).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    return Path(huggingface_hub.constants.HF_HUB_CACHE)


def _endpoint() -> str | None:
    endpoint = os.environ.get("HF_ENDPOINT")
    return endpoint.rstrip("/") if endpoint else None


@contextlib.contextmanager
def _hub_progress_bars(show: bool) -> Iterator[None]:
    """huggingface_hub's download bars off while the block runs if ``show`` is false."""
    if show or are_progress_bars_disabled():
        yield
        return
    disable_progress_bars()
    try:
        yield
    finally:
        enable_progress_bars()


# ---- downloading ---------------------------------------------------------------------------------


def download_pretrained(
    name: str,
    output_dir: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    show_progress: bool = True,
    log: Log | None = None,
) -> Path:
    """Download GPT-2's released weights and convert them into a checkpoint folder; returns it.

    ``name``: ``gpt2`` (124M), ``gpt2-medium`` (355M), ``gpt2-large`` (774M) or ``gpt2-xl``
    (1558M). ``output_dir``: default ``<cache>/models/NAME``, where ``resolve_pretrained``
    finds it. ``revision``: a commit of the Hub repository instead of the pinned one (its file
    is then checked against the Hub's announced SHA-256 only). Files come through Hugging
    Face's cache (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` are
    honoured); a folder already converted from the same files is returned as is. The folder
    is written atomically: on any error nothing is left in ``output_dir``.
    """
    model = pretrained_model(name)
    say = log or (lambda message: None)
    revision = revision or model.revision
    expected_sha256 = model.sha256 if revision == model.revision else None
    target = Path(output_dir) if output_dir is not None else pretrained_dir(name)
    # a branch or tag moves; a commit does not, so only a commit's conversion can be reused
    if _COMMIT.fullmatch(revision) and _converted_from(target, model.repo_id, revision):
        say(f"{name} is already in {target}")
        return target
    replace = _converted_from(target, model.repo_id, None)  # an earlier download of this model
    if not replace and target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CheckpointError(
            f"{target} already exists and is not a download of {name}; remove it or choose "
            f"another output folder"
        )
    offline = _offline()
    files = {}
    with _hub_progress_bars(show_progress):
        for filename in HUB_FILES:
            files[filename] = _fetch(model, filename, revision=revision, offline=offline)
    weights = files[HF_SAFETENSORS_FILE]
    say(f"Hugging Face's copy: {weights.parent}")
    sha256 = _check_sha256(model, weights, expected_sha256, show_progress=show_progress)
    # the snapshot folder is named by the commit the revision resolved to
    commit = weights.parent.name if _COMMIT.fullmatch(weights.parent.name) else revision
    source = {
        "format": "huggingface",
        "repo": model.repo_id,
        "revision": commit,
        "file": HF_SAFETENSORS_FILE,
        "sha256": sha256,
    }
    steps = tqdm(total=3, desc=f"converting {name}", unit="step", disable=not show_progress)
    with steps, atomic_directory(target, replace=replace) as temporary:
        steps.set_postfix_str("reading")
        try:
            config = gpt_config_from_hf(_read_json(files[HF_CONFIG_FILE]), where=model.repo_id)
            tokenizer = load_hf_vocab_and_merges(files[VOCAB_JSON], files[MERGES_TXT], name="gpt2")
        except ScratchLLMError as error:
            raise CheckpointError(f"{model.repo_id}@{commit[:12]}: {error}") from None
        hf_state = read_hf_weights(weights)
        steps.update()
        steps.set_postfix_str("mapping names and writing")
        write_checkpoint_from_hf(temporary, hf_state, config, tokenizer, source=source)
        steps.update(2)
    say(f"wrote {target}")
    return target


def _converted_from(target: Path, repo_id: str, revision: str | None) -> bool:
    """Whether ``target`` is a checkpoint converted from ``repo_id`` (at ``revision``)."""
    try:
        source = json.loads((target / CONFIG_FILE).read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return False
    if not isinstance(source, dict) or source.get("repo") != repo_id:
        return False
    return revision is None or source.get("revision") == revision


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"cannot read {path}: {error}") from None


def _fetch(model: PretrainedModel, filename: str, *, revision: str, offline: bool) -> Path:
    """One file of ``model`` at ``revision``, from Hugging Face's cache or the Hub."""
    where = f"{filename} of {model.repo_id} at revision {revision[:12]}"
    try:
        path = huggingface_hub.hf_hub_download(
            model.repo_id,
            filename,
            revision=revision,
            cache_dir=_hub_cache_dir(),
            endpoint=_endpoint(),
            local_files_only=offline,
        )
    except LocalEntryNotFoundError:
        if offline:
            raise DownloadError(
                f"HF_HUB_OFFLINE is set and {where} is not in Hugging Face's cache "
                f"({_hub_cache_dir()}): unset HF_HUB_OFFLINE on a machine with network, or "
                f"{_by_hand(model, revision)}"
            ) from None
        raise DownloadError(
            f"cannot reach {_endpoint() or 'huggingface.co'} for {where}, and it is not in "
            f"Hugging Face's cache; check the network (and HF_ENDPOINT), or "
            f"{_by_hand(model, revision)}"
        ) from None
    except RevisionNotFoundError:
        raise DownloadError(f"{model.repo_id} has no revision {revision}") from None
    except EntryNotFoundError:
        raise DownloadError(f"the Hub has no {where} (HTTP 404)") from None
    except RepositoryNotFoundError:
        raise DownloadError(f"the Hub has no repository {model.repo_id} (HTTP 404)") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "error"
        raise DownloadError(f"cannot download {where}: HTTP {status}; try again later") from None
    except Exception as error:  # whatever its HTTP client raises: cut transfers, resets, ...
        first_line = str(error).splitlines()[0] if str(error) else ""
        raise DownloadError(
            f"download of {where} failed ({type(error).__name__}: {first_line}); run the command "
            f"again to retry, or {_by_hand(model, revision)}"
        ) from None
    return Path(path)


def _by_hand(model: PretrainedModel, revision: str) -> str:
    return (
        f"fetch {', '.join(HUB_FILES)} from https://huggingface.co/{model.repo_id}/tree/"
        f"{revision} into one folder and run `scratchllm convert --from hf FOLDER -o "
        f"{pretrained_dir(model.name)}`"
    )


def _check_sha256(
    model: PretrainedModel, path: Path, expected: str | None, *, show_progress: bool
) -> str:
    """Hash ``path``; compare with ``expected``, else with the Hub's announced hash (the blob's
    name in Hugging Face's cache). A mismatch removes the cached copy and raises."""
    blob = path.resolve()
    announced = blob.name if _SHA256.fullmatch(blob.name) else None
    expected = expected or announced
    digest = hashlib.sha256()
    size = blob.stat().st_size
    with (
        blob.open("rb") as handle,
        tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=f"checking {path.name}",
            disable=not show_progress,
        ) as progress,
    ):
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
            progress.update(len(chunk))
    actual = digest.hexdigest()
    if expected is not None and actual != expected:
        # a cached copy that is wrong would be reused by every later try: take it out
        for stale in (path, blob):
            with contextlib.suppress(OSError):
                stale.unlink()
        raise DownloadError(
            f"{model.repo_id}'s {path.name} does not match its checksum (expected sha256 "
            f"{expected}, got {actual}); the copy was removed from Hugging Face's cache: run the "
            f"command again to download it afresh, and if it fails again, check HF_ENDPOINT"
        )
    return actual
