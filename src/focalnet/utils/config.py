"""Generic typed configs: nested dataclasses built from dicts/YAML, with type checks and dotted overrides.

Shared by ``focalnet.train``, ``focalnet.det`` and ``focalnet.seg``. A dict becomes a dataclass only if every key
is a field (an unknown key is an error naming the closest valid one) and every value matches its annotation; the
harmless cases are converted (int -> float, ``"1e-3"`` -> float since YAML 1.1 reads it as a string, tuple -> list).
Overrides are ``a.b.c=value`` strings whose value is parsed as YAML (``1e-3``, ``[1, 2]``, ``true``, ``null``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from pathlib import Path
from typing import Any

from focalnet.errors import UsageError, one_line

__all__ = ["ConfigError", "ConfigFileNotFoundError", "from_dict", "to_dict", "parse_override", "apply_overrides",
           "read_yaml", "load_yaml"]

# Message templates; the callers keep the wordings their users (and tests) know.
UNKNOWN = "unknown config key {key!r}"  # also {section}: the dotted prefix, {name}: the bare key
MISMATCH = "{key}: expected {desc}, got {value!r}"
_DESC = {bool: "true/false", float: "a number", int: "an integer", str: "a string", list: "a list", dict: "a mapping"}


class ConfigError(UsageError, ValueError):
    """A configuration file or override is invalid; the message names the key and the fix."""


class ConfigFileNotFoundError(ConfigError, FileNotFoundError):
    """The config file does not exist (both a ConfigError and a FileNotFoundError)."""


def dataclass_in(tp: Any) -> type | None:
    """The dataclass of an annotation such as ``Sub`` or ``Sub | None``; None if there is none."""
    if dataclasses.is_dataclass(tp):
        return tp
    return next((a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)), None)


def _fail(key: str, tp: Any, value: Any, mismatch: str) -> ConfigError:
    base = typing.get_origin(tp) or tp
    return ConfigError(mismatch.format(key=key, desc=_DESC.get(base, getattr(base, "__name__", str(base))),
                                       name=getattr(base, "__name__", str(base)), value=value))


def coerce(value: Any, tp: Any, key: str, unknown: str = UNKNOWN, mismatch: str = MISMATCH) -> Any:
    """Check ``value`` against the annotation ``tp``; convert the harmless cases (int -> float, tuple -> list)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is not type(None):
                try:
                    return coerce(value, a, key, unknown, mismatch)
                except ConfigError as e:
                    errors.append(e)
        raise errors[0]
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key + ".", unknown, mismatch)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _fail(key, list, value, mismatch)
        inner = args[0] if args else Any
        return [coerce(v, inner, f"{key}[{i}]", unknown, mismatch) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _fail(key, dict, value, mismatch)
        return dict(value)
    if tp is bool and isinstance(value, bool):
        return value
    if tp is float and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(value)
            except ValueError:
                pass
    if tp is int and not isinstance(value, bool):
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):  # `pretrained=true` on the command line
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
    if tp in (bool, float, int, str):
        raise _fail(key, tp, value, mismatch)
    return value


def unknown_key(key: str, prefix: str, valid: list[str], unknown: str = UNKNOWN) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"
    return ConfigError(unknown.format(key=prefix + key, section=prefix or "config", name=key) + hint)


def from_dict(cls: type, data: Any, prefix: str = "", unknown: str = UNKNOWN, mismatch: str = MISMATCH) -> Any:
    """Build the dataclass ``cls`` (recursively) from a dict; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix[:-1] or 'config'}: expected a mapping of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for k, v in data.items():
        if k not in names:
            raise unknown_key(k, prefix, names, unknown)
        kwargs[k] = coerce(v, hints[k], prefix + k, unknown, mismatch)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain nested dict of builtins (YAML- and ``weights_only``-safe)."""
    return dataclasses.asdict(cfg)


_LOADER: type | None = None


def _strict_loader() -> type:
    """yaml.SafeLoader that refuses duplicate keys (plain YAML keeps the last one silently)."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class StrictSafeLoader(yaml.SafeLoader):
            pass

        def construct_mapping(loader, node, deep=False):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:  # explicit keys only: one may override a key merged in with `<<:`
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = loader.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark
                    ) from None
                if key in seen:
                    first = seen[key]
                    raise ConfigError(f"duplicate key {key!r} on line {key_node.start_mark.line + 1} (first on line "
                                      f"{first.start_mark.line + 1}); each key may appear once per section")
                seen[key] = key_node
            return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

        StrictSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
        _LOADER = StrictSafeLoader
    return _LOADER


def load_yaml(text: str | bytes, source: str = "YAML") -> Any:
    """Parse YAML like ``yaml.safe_load`` but refuse duplicate keys and non-UTF-8 bytes with a ConfigError.

    Every YAML the package reads (config files, override values) goes through here.
    """
    import yaml

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{source} is not UTF-8 text (byte 0x{text[e.start]:02x} at offset {e.start}); "
                              "save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    except yaml.YAMLError as e:
        problem, mark = getattr(e, "problem", None), getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        context = getattr(e, "context", None)
        what = f"{context}: {problem}" if context and problem else problem or one_line(e)
        raise ConfigError(f"{source} is not valid YAML: {what}{where}") from None
    except RecursionError:
        raise ConfigError(f"{source} is nested too deeply to be a config") from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """``'a.b.c=value'`` -> ``(['a', 'b', 'c'], value parsed as YAML)``; text that is not YAML stays a string."""
    import yaml

    if "=" not in item:
        raise ConfigError(f"override {item!r} is not of the form key.sub=value")
    dotted, text = item.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(p.strip() for p in parts):
        raise ConfigError(f"override {item!r}: {dotted.strip()!r} is not a key such as section.key")
    try:
        value = yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except ConfigError as e:
        raise ConfigError(f"override {item!r}: {e}") from None
    except (yaml.YAMLError, RecursionError):
        value = text
    return [p.strip() for p in parts], value


def apply_overrides(data: dict[str, Any], overrides: list[str], cls: type | None = None,
                    unknown: str = UNKNOWN) -> dict[str, Any]:
    """Apply dotted overrides to ``data`` in place (and return it). With the dataclass ``cls`` as schema, an
    unknown key or a setting used as a section fails here, naming the closest valid key."""
    for item in overrides:
        parts, value = parse_override(item)
        node, sub, prefix = data, cls, ""
        for i, p in enumerate(parts):
            tp = None
            if sub is not None:
                names = [f.name for f in dataclasses.fields(sub)]
                if p not in names:
                    raise unknown_key(p, prefix, names, unknown)
                tp = typing.get_type_hints(sub)[p]
            if i == len(parts) - 1:
                node[p] = value
                break
            if not isinstance(node.get(p), dict):
                if tp is not None and dataclass_in(tp) is None and (typing.get_origin(tp) or tp) is not dict:
                    raise ConfigError(f"{prefix + p!r} is a setting, not a section; use {prefix + p}=VALUE")
                if node.get(p) is not None and tp is None:
                    raise ConfigError(f"override {item!r}: {prefix + p!r} is not a section")
                node[p] = {}
            node, sub, prefix = node[p], dataclass_in(tp) if tp is not None else None, prefix + p + "."
    return data


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in a YAML file ({} for an empty file); a clear ConfigError otherwise (missing, not UTF-8,
    invalid YAML, duplicate keys, not a mapping)."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {p} is a folder; pass a .yaml file")
    if not p.exists():
        raise ConfigFileNotFoundError(f"config file not found: {p}")
    if not p.is_file():
        raise ConfigError(f"config file {p} is not a regular file")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror or e}") from None
    loaded = load_yaml(raw, str(p))
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{p} must hold a mapping of sections, not {type(loaded).__name__}")
    return loaded or {}
