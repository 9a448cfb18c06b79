"""Dataclass configs from plain dicts (YAML) and back, with errors that name the key."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import yaml

from trainground.bounds import Range
from trainground.errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], values: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``values``; unknown keys and wrong types raise ``ConfigError``."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of options, got {type(values).__name__}")
    hints = typing.get_type_hints(cls, include_extras=True)
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{where}: unknown option {key!r}{hint}; known: {', '.join(known)}")
    # where "file.yaml:" + "fit" + "lr" reads "file.yaml: fit.lr" (file, section, key)
    sep = " " if where.endswith(":") else "."
    return cls(**{k: _coerce(hints[k], v, f"{where}{sep}{k}") for k, v in values.items()})


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        value = _coerce(args[0], value, where)
        for bound in (a for a in args[1:] if isinstance(a, Range)):
            problem = None if value is None else bound.violation(value)
            if problem:
                raise ConfigError(f"{where}: {problem}")
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1 and is_dataclass(options[0]) and isinstance(value, Mapping):
            return from_dict(options[0], value, where)  # an optional section: its error names the bad key
        if len(options) == 1:
            return _coerce(options[0], value, where)  # "X | None": X's own error (e.g. its range)
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a valid value ({_describe(tp)})")
    if tp is float and isinstance(value, str):
        # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as the number it plainly is.
        try:
            return _coerce(tp, float(value), where)
        except ValueError:
            pass
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {_coerce(args[0], k, f"{where} key"): _coerce(args[1], v, f"{where}[{k!r}]") for k, v in value.items()}
    if is_dataclass(tp):
        return from_dict(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a config field of a type this module does not know
        raise TypeError(f"{where}: unsupported config type {tp!r}")
    raise ConfigError(f"{where}: expected {_describe(tp)}, got {value!r}")


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def to_dict(obj: Any) -> Any:
    """A dataclass as plain YAML-safe values (tuples become lists)."""
    if is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path`` (``yaml.safe_load``); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        with open(path, encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}{where}: invalid YAML ({problem})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping with sections data/model/fit, got {type(loaded).__name__}")
    return loaded
