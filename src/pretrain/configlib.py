"""Typed configuration machinery: dataclasses <-> dicts, TOML/YAML files, dotted overrides, validation.

Every stage keeps its own config dataclass next to its code (``pretrain/model/config.py`` and so on);
this module knows nothing about them. It converts plain dicts into those dataclasses strictly (unknown
keys and wrong types are errors naming the dotted field), applies ``a.b.c=value`` overrides, and runs
each dataclass's optional ``validate()`` method, turning its complaints into a one-line
:class:`ConfigError` such as ``config field 'train.lr': must be > 0 (got -1.0)``.

Field documentation lives in attribute docstrings (a string literal right below the field), which
:func:`field_docs` reads back for ``pretrain config explain``.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import sys
import textwrap
import tomllib
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A bad configuration value; the message names the dotted field and why, on one line."""

    def __init__(self, field: str, why: str):
        self.field = field
        self.why = why
        super().__init__(f"config field '{field}': {why}" if field else f"config: {why}")


def check(condition: bool, field: str, why: str) -> None:
    """Raise :class:`ConfigError` for ``field`` (relative to the dataclass being validated) unless ``condition``."""
    if not condition:
        raise ConfigError(field, why)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    """Convert ``value`` to type ``tp`` or raise ConfigError naming ``path``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as exc:
                errors.append(exc.why)
        raise ConfigError(path, "; ".join(errors) or f"expected {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(path, f"must be one of {', '.join(repr(c) for c in choices)} (got {value!r})")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a table of {tp.__name__} fields (got {value!r})")
        return from_dict(tp, value, path)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list (got {value!r})")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(path, f"expected {len(args)} items (got {len(value)})")
            return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(path, f"expected a table (got {value!r})")
        kt, vt = get_args(tp) or (Any, Any)
        return {_coerce(k, kt, path): _coerce(v, vt, _join(path, str(k))) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(path, f"expected true or false (got {value!r})")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(path, f"expected an integer (got {value!r})")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, f"expected a number (got {value!r})")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string (got {value!r})")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(path, f"expected {_type_name(tp)} (got {value!r})")
    return value


def from_dict(cls: type, data: dict[str, Any], path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys and bad types raise ConfigError."""
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    data = _move_renamed(cls, data, path)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(_join(path, key), f"unknown field{hint}")
        kwargs[key] = _coerce(value, hints[key], _join(path, key))
    return cls(**kwargs)


_told: set[str] = set()  # renamed-field notes already printed


def _move_renamed(cls: type, data: dict[str, Any], path: str) -> dict[str, Any]:
    """Keys a config class lists in ``renamed_fields`` (old name -> "section.field") go to their new place,
    each reported in one line on stderr (once per process); a value already set at the new place wins."""
    renamed = getattr(cls, "renamed_fields", None) or {}
    if not any(k in data for k in renamed):
        return data
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for old, new in renamed.items():
        if old not in data:
            continue
        value = data.pop(old)
        section, _, name = new.partition(".")
        data.setdefault(section, {}).setdefault(name, value)
        line = f"config field '{_join(path, old)}' is now '{_join(path, new)}' (the old name still works)"
        if line not in _told:
            _told.add(line)
            print(f"note: {line}", file=sys.stderr)
    return data


def to_dict(obj: Any) -> Any:
    """Dataclass (nested) -> plain dict of TOML-friendly values (None values are dropped)."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            v = to_dict(getattr(obj, f.name))
            if v is not None:
                out[f.name] = v
        return out
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items() if v is not None}
    return obj


def validate(obj: Any, path: str = "") -> None:
    """Run ``validate()`` on every nested dataclass, prefixing errors with their dotted path."""
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            validate(getattr(obj, f.name), _join(path, f.name))
        method = getattr(obj, "validate", None)
        if callable(method):
            try:
                method()
            except ConfigError as exc:
                raise ConfigError(_join(path, exc.field), exc.why) from None
            except ValueError as exc:
                raise ConfigError(path, str(exc)) from None
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            validate(v, f"{path}[{i}]")


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge: tables merge, everything else (lists included) is replaced."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_value(text: str) -> Any:
    """Parse an override's right-hand side as a TOML value; bare words stay strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``a.b.c=value`` overrides to a nested dict (a new dict is returned)."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(item, "override must look like key.sub=value")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(key, f"'{p}' is not a table")
        node[parts[-1]] = parse_value(raw.strip())
    return out


def read_file(path: str | Path) -> dict:
    """Read a TOML or YAML config file into a dict; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:  # noqa: BLE001 - parser errors vary by library
        raise ConfigError("", f"cannot parse {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"{path} must hold a table of settings")
    return data


def write_toml(data: dict, path: str | Path) -> None:
    import tomli_w

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(tomli_w.dumps(data), encoding="utf-8")


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass: {field name: the string literal right below it}."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    docs: dict[str, str] = {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for prev, node in zip(body, body[1:], strict=False):
        if (
            isinstance(prev, ast.AnnAssign)
            and isinstance(prev.target, ast.Name)
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            docs[prev.target.id] = " ".join(node.value.value.split())
    return docs


def describe(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Flatten a config class into rows (dotted name, type, default, doc) for help output."""
    rows = []
    docs = field_docs(cls)
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        name = _join(prefix, f.name)
        if dataclasses.is_dataclass(tp):
            rows.extend(describe(tp, name))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = None
        rows.append((name, _type_name(tp), default, docs.get(f.name, "")))
    return rows


__all__ = [
    "ConfigError",
    "apply_overrides",
    "check",
    "describe",
    "field_docs",
    "from_dict",
    "merge",
    "parse_value",
    "read_file",
    "to_dict",
    "validate",
    "write_toml",
]
