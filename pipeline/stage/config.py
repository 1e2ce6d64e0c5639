"""Stage settings: a dataclass of defaults, overridden by a YAML file, then by ``key=value``.

The dataclass is the single source of truth for names, types and defaults; YAML and the
command line can only set fields that exist, converted to the field's declared type, so a typo
in a config is an error rather than a silently ignored setting.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from core.errors import UsageError
from core.files import json_ready

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _convert(name, value, inner[0])
    if origin in (list, tuple):
        items = value.split(",") if isinstance(value, str) else list(value)
        items = [i.strip() if isinstance(i, str) else i for i in items if i != ""]
        converted = [_convert(name, i, args[0]) for i in items] if args else items
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, dict):
            raise UsageError(f"config key {name!r} expects a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise UsageError(f"config key {name!r} expects true/false, got {value!r}")
    if hint in (int, float, str):
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise UsageError(f"config key {name!r} expects an integer, got {value!r}")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise UsageError(
                f"config key {name!r} expects {hint.__name__}, got {value!r}"
            ) from None
    return value


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; a pair without ``=`` is an error."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"expected key=value, got {pair!r}")
        out[key.strip()] = value
    return out


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping from a file, with a one-line error for anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise UsageError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"cannot read config {path}: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"config {path} must be a mapping of key: value")
    return data


def build_config(cls: type[T], values: dict[str, Any], where: str = "config") -> T:
    """An instance of dataclass ``cls`` with ``values`` converted to its field types."""
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UsageError(
            f"unknown {where} key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    kwargs = {k: _convert(k, v, hints[k]) for k, v in values.items()}
    return cls(**kwargs)


def read_section(yaml_path: str | Path, section: str | None) -> dict[str, Any]:
    """The YAML file's ``section`` mapping (empty when absent), or the whole file for None:
    one corpus-wide config holds a section per stage."""
    data = read_yaml(yaml_path)
    if section is None:
        return data
    data = data.get(section) or {}
    if not isinstance(data, dict):
        raise UsageError(f"config section {section!r} in {yaml_path} must be a mapping")
    return data


def load_config(
    cls: type[T],
    yaml_path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    section: str | None = None,
) -> T:
    """Defaults of ``cls``, then the YAML file (or its ``section`` mapping), then overrides."""
    values: dict[str, Any] = {}
    if yaml_path:
        values.update(read_section(yaml_path, section))
    if overrides:
        values.update(parse_overrides(overrides) if isinstance(overrides, list) else overrides)
    return build_config(cls, values)


def config_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a config dataclass, for stats.json and reports."""
    return json_ready(dataclasses.asdict(cfg))
