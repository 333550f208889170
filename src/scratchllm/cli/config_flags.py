"""Flags made from a config dataclass: one flag per field, its help the field's own.

Every config in ``scratchllm.config`` declares its fields with ``_option(default, help)``, so
the CLI needs no second copy of a help text or a default. ``add_config_flags`` turns the fields
into an argument group:

- ``dropout: float`` becomes ``--dropout X``, ``n_layer: int`` ``--n-layer N``;
- a bool becomes ``--name / --no-name``;
- fixed choices (a ``Literal`` type, or ``choices=`` on the field) become argparse choices;
- ``int | None`` takes an int, ``tuple[str, ...]`` is a repeatable flag;
- the help ends with the default, taken from the field (or from ``defaults``).

Flags not given on the command line are left out of the namespace (``argparse.SUPPRESS``), so
``given_fields`` returns exactly what the user typed and the dataclass itself supplies the rest.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any

_METAVARS = {int: "N", float: "X", str: "TEXT"}


def add_config_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    config_class: type,
    *,
    skip: Collection[str] = (),
    only: Collection[str] | None = None,
    dest_prefix: str = "",
    defaults: Any = None,
    show_defaults: bool = True,
    extra_help: Mapping[str, str] | None = None,
) -> None:
    """Add one flag per field of the dataclass ``config_class`` to ``parser``.

    ``skip``: fields without a flag; ``only``: the fields with one (default: all).
    ``dest_prefix`` keeps two configs' fields apart in one
    namespace. ``defaults``: an instance whose values the help shows (default: the fields'
    defaults); ``show_defaults=False`` shows none (e.g. overrides of a preset's values).
    ``extra_help`` adds text after a field's help.
    """
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if field.name in skip or (only is not None and field.name not in only):
            continue
        if "help" not in field.metadata:
            continue
        help_text = field.metadata["help"] + (extra_help or {}).get(field.name, "")
        default = field.default if defaults is None else getattr(defaults, field.name)
        if show_defaults and "(default" not in help_text:
            shown = _format_default(default)
            if shown is not None:
                help_text += f" (default {shown})"
        flag = "--" + field.metadata.get("flag", field.name).replace("_", "-")
        settings: dict[str, Any] = {
            "dest": dest_prefix + field.name,
            "default": argparse.SUPPRESS,
            "help": help_text,
        }
        settings.update(_value_settings(hints[field.name], field.metadata))
        parser.add_argument(flag, **settings)


def given_fields(
    args: argparse.Namespace, config_class: type, *, dest_prefix: str = ""
) -> dict[str, Any]:
    """The fields of ``config_class`` given on the command line, by field name."""
    given = vars(args)
    return {
        field.name: given[dest_prefix + field.name]
        for field in dataclasses.fields(config_class)
        if dest_prefix + field.name in given
    }


def _value_settings(hint: Any, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """How argparse reads the value of a field of type ``hint``."""
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    value_type = _without_none(hint)
    origin = typing.get_origin(value_type)
    choices = metadata.get("choices")
    if origin is typing.Literal:
        choices = typing.get_args(value_type)
        value_type = type(choices[0])
    settings: dict[str, Any] = {}
    if origin is tuple:  # tuple[str, ...]: repeat the flag for more
        value_type = typing.get_args(value_type)[0]
        settings["action"] = "append"
    settings["type"] = value_type
    if choices is not None:
        settings["choices"] = choices
    else:
        settings["metavar"] = metadata.get("metavar", _METAVARS.get(value_type, "VALUE"))
    return settings


def _without_none(hint: Any) -> Any:
    """``int | None`` -> ``int``; other types as they are."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [member for member in typing.get_args(hint) if member is not type(None)]
        if len(members) == 1:
            return members[0]
    return hint


def _format_default(value: Any) -> str | None:
    """A default as the help shows it; None (and an empty tuple) are not shown.

    >>> _format_default(0.001), _format_default("gpt2"), _format_default(True)
    ('0.001', "'gpt2'", 'True')
    """
    if value is None or value == ():
        return None
    return repr(value)
