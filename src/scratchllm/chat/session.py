"""A chat's settings and its file: what ``/set``, ``/save`` and ``/load`` read and write.

The settings are a ``SamplingConfig`` (so ``/set`` checks a value exactly as ``--temperature``
does); the chat calls ``max_new_tokens`` ``max_tokens``, as OpenAI's API does. A chat file is
JSON::

    {"scratchllm_chat": 1,
     "messages": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}],
     "settings": {"temperature": 0.0, "top_k": null, "top_p": null, "max_tokens": 256,
                  "seed": null}}
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scratchllm.config import SamplingConfig
from scratchllm.errors import ConfigError, ScratchLLMError
from scratchllm.finetune.prompts import CHAT_ROLES
from scratchllm.io import atomic_write_text, read_user_json

FILE_VERSION = 1
# the chat's name for each setting -> SamplingConfig's field
SETTINGS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "max_tokens": "max_new_tokens",
    "seed": "seed",
}
OPTIONAL = ("top_k", "top_p", "seed")  # "none" turns these off


class ChatFileError(ScratchLLMError):
    """A chat file is missing, not JSON, or not a chat: the message names the file and the
    problem."""


def settings_dict(settings: SamplingConfig) -> dict[str, Any]:
    """The chat's settings by their chat names."""
    return {name: getattr(settings, field) for name, field in SETTINGS.items()}


def describe_settings(settings: SamplingConfig) -> str:
    """One line: ``temperature=0.0 top_k=none ...``."""
    return " ".join(
        f"{name}={'none' if value is None else value}"
        for name, value in settings_dict(settings).items()
    )


def set_setting(settings: SamplingConfig, name: str, text: str) -> SamplingConfig:
    """``settings`` with ``name`` set from the text a user typed, checked by
    ``SamplingConfig``.

    >>> set_setting(SamplingConfig(), "top_k", "40").top_k
    40
    >>> set_setting(SamplingConfig(), "top_p", "2")
    Traceback (most recent call last):
        ...
    scratchllm.errors.ConfigError: top_p must be in (0, 1] (or None to keep all), got 2.0
    """
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting {name!r}; the settings: {', '.join(SETTINGS)}")
    if name in OPTIONAL and text.lower() in ("none", "off"):
        value: Any = None
    else:
        kind = float if name in ("temperature", "top_p") else int
        try:
            value = kind(text)
        except ValueError:
            optional = " (or none)" if name in OPTIONAL else ""
            raise ConfigError(
                f"{name} takes {'a number' if kind is float else 'an integer'}{optional}, "
                f"got {text!r}"
            ) from None
    return dataclasses.replace(settings, **{SETTINGS[name]: value})


def save_chat(
    path: str | os.PathLike[str], messages: Sequence[Mapping[str, str]], settings: SamplingConfig
) -> None:
    """Write the conversation and its settings to ``path`` (atomically: an old file is
    replaced whole or not at all)."""
    data = {
        "scratchllm_chat": FILE_VERSION,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "settings": settings_dict(settings),
    }
    try:
        atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    except OSError as error:  # a folder, no permission, a full disk, ...
        raise ChatFileError(f"cannot write {path}: {error.strerror or error}") from None


def load_chat(
    path: str | os.PathLike[str], settings: SamplingConfig
) -> tuple[list[dict[str, str]], SamplingConfig]:
    """The messages of a chat file, and ``settings`` with the file's settings applied."""
    path = Path(path)
    data = read_user_json(path, ChatFileError, missing="give a file that /save wrote")
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise ChatFileError(
            f"{path} is not a chat file: it needs a JSON object with a list of messages "
            "(write one with /save)"
        )
    if data.get("scratchllm_chat", FILE_VERSION) != FILE_VERSION:
        raise ChatFileError(
            f"{path} is a version {data['scratchllm_chat']!r} chat file; this scratchllm reads "
            f"version {FILE_VERSION}"
        )
    messages = [_message(path, index, item) for index, item in enumerate(data["messages"])]
    saved = data.get("settings", {})
    if not isinstance(saved, dict):
        raise ChatFileError(f"{path}: settings must be a JSON object, got {saved!r}")
    unknown = set(saved) - set(SETTINGS)
    if unknown:
        raise ChatFileError(
            f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; the settings: "
            f"{', '.join(SETTINGS)}"
        )
    for name, value in saved.items():
        kind = (int, float) if name in ("temperature", "top_p") else (int,)
        if not (value is None and name in OPTIONAL) and (
            isinstance(value, bool) or not isinstance(value, kind)
        ):
            raise ChatFileError(f"{path}: setting {name} must be a number, got {value!r}")
    try:
        settings = dataclasses.replace(
            settings, **{SETTINGS[name]: value for name, value in saved.items()}
        )
    except ConfigError as error:
        raise ChatFileError(f"{path}: {error}") from None
    return messages, settings


def _message(path: Path, index: int, item: Any) -> dict[str, str]:
    if (
        not isinstance(item, dict)
        or item.get("role") not in CHAT_ROLES
        or not isinstance(item.get("content"), str)
    ):
        raise ChatFileError(
            f"{path}: message {index} must be an object with a role ({', '.join(CHAT_ROLES)}) "
            f"and a text content; got {json.dumps(item)[:80]}"
        )
    return {"role": item["role"], "content": item["content"]}
