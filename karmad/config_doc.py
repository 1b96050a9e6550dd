"""Renders docs/configuration.md from `karmad.config`, so the reference cannot drift.

    python -m karmad.config_doc > docs/configuration.md

Key descriptions are the attribute docstrings under each field in config.py (read with
`ast`, as Python keeps no such docstrings at run time); types, defaults and ranges come
from the types themselves.
"""

from __future__ import annotations

import ast
import inspect
import math
from collections.abc import Iterator
from typing import Any

import msgspec
from msgspec import inspect as mi

from karmad import config

INTRO = """\
# Configuration reference

This file is generated from `karmad/config.py` by `python -m karmad.config_doc`; edit
the types, not this file.

karmad reads one optional TOML file: `--config PATH`, else `$KARMAD_CONFIG`, else
`~/.config/karmad/config.toml` (`$XDG_CONFIG_HOME/karmad/config.toml`; on macOS
`~/Library/Application Support/karmad/config.toml`). Every key has a default, so a
missing file, section or key means the default. karmad refuses to start — with one line
naming the file and the key — on an unknown section or key, a value of the wrong type,
or a value outside its range: a typo in a security setting silently ignored, or a limit
that makes no sense (`max_received_file_bytes = -1` would refuse every received file),
is worse than a daemon that says what is wrong. The config is read at start-up only:
restart karmad (`karmactl service restart`) after changing it.

Sizes are in bytes unless the key says otherwise, durations in the unit their suffix
names (`_s` seconds, `_ms` milliseconds, `_hours`, `_days`).
"""


def _field_docs() -> dict[str, dict[str, str]]:
    docs: dict[str, dict[str, str]] = {}
    for node in ast.walk(ast.parse(inspect.getsource(config))):
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, str] = {}
        for i, stmt in enumerate(node.body):
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            following = node.body[i + 1] if i + 1 < len(node.body) else None
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                fields[stmt.target.id] = " ".join(following.value.value.split())
        docs[node.name] = fields
    return docs


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


def _size(value: float) -> str:
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if value >= 1 << shift and value % (1 << shift) == 0:
            return f"{int(value) >> shift} {unit}"
    return _number(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return msgspec.json.encode(value).decode()


def _plain(t: mi.Type) -> mi.Type:
    """The type without `| None` (an optional rate is "unset" when left out)."""
    if isinstance(t, mi.UnionType):
        rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
        if len(rest) == 1:
            return rest[0]
    return t


def _type_name(t: mi.Type) -> str:
    t = _plain(t)
    names: dict[type[mi.Type], str] = {
        mi.IntType: "integer",
        mi.FloatType: "number",
        mi.StrType: "string",
        mi.BoolType: "boolean",
    }
    for cls, name in names.items():
        if isinstance(t, cls):
            return name
    if isinstance(t, mi.LiteralType):
        return " \\| ".join(f"`{_toml(v)}`" for v in t.values)
    if isinstance(t, mi.ListType):
        inner = _plain(t.item_type)
        if isinstance(inner, mi.StructType):
            return "list of tables (below)"
        return f"list of {_type_name(inner)}s"
    if isinstance(t, mi.DictType):
        return "tables by name (below)"
    if isinstance(t, mi.StructType):
        return "table (below)"
    raise TypeError(f"config_doc does not know how to name {t!r}")


def _range(t: mi.Type, key: str) -> str:
    t = _plain(t)
    if isinstance(t, mi.IntType | mi.FloatType):
        show = _size if key.endswith("_bytes") else _number
        low = (
            f">= {show(t.ge)}"
            if t.ge is not None
            else f"> {show(t.gt)}"
            if t.gt is not None
            else ""
        )
        high = (
            f"<= {show(t.le)}"
            if t.le is not None
            else f"< {show(t.lt)}"
            if t.lt is not None
            else ""
        )
        return ", ".join(part for part in (low, high) if part)
    if isinstance(t, mi.StrType) and t.max_length is not None:
        return f"at most {t.max_length} characters"
    if isinstance(t, mi.ListType | mi.DictType) and t.max_length is not None:
        return f"at most {t.max_length:,} items"
    return ""


def _duration(seconds: float) -> str:
    for unit, length in (("days", 86400), ("hours", 3600)):
        if seconds >= length and seconds % length == 0:
            return f"{int(seconds // length)} {unit}"
    return ""


def _default(field: mi.Field, key: str) -> str:
    if field.required:
        return "required"
    value = (
        field.default
        if field.default is not msgspec.NODEFAULT
        else field.default_factory()
        if field.default_factory is not msgspec.NODEFAULT
        else None
    )
    if value is None:
        return "unset"
    if isinstance(value, msgspec.Struct):
        return ""
    if isinstance(value, dict) and not value:
        return "none"
    shown = f"`{_toml(value)}`"
    if key.endswith("_bytes") and isinstance(value, int) and value >= 1024:
        shown += f" ({_size(value)})"
    if key.endswith("_s") and isinstance(value, int | float) and _duration(value):
        shown += f" ({_duration(value)})"
    return shown


def _table(
    table: str, cls: type[Any], docs: dict[str, dict[str, str]], *, level: int = 2
) -> Iterator[str]:
    """One TOML table; `table` is its header (`[index]`, `[[redaction.patterns]]`)."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    title = table.strip("[]")
    yield f"{'#' * level} `{table}`"
    yield ""
    if cls.__doc__ and cls.__doc__ is not msgspec.Struct.__doc__:
        yield " ".join(inspect.cleandoc(cls.__doc__).split())
        yield ""
    field_docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        field_docs.update(docs.get(klass.__name__, {}))
    yield "| key | type | default | range | meaning |"
    yield "|---|---|---|---|---|"
    nested: list[tuple[str, type[Any]]] = []
    for f in info.fields:
        yield (
            f"| `{f.encode_name}` | {_type_name(f.type)} | {_default(f, f.encode_name)} "
            f"| {_range(f.type, f.encode_name)} | {field_docs.get(f.name, '')} |"
        )
        t = _plain(f.type)
        if isinstance(t, mi.StructType):
            nested.append((f"[{title}.{f.encode_name}]", t.cls))
        elif isinstance(t, mi.DictType) and isinstance(_plain(t.value_type), mi.StructType):
            value = _plain(t.value_type)
            assert isinstance(value, mi.StructType)
            nested.append((f'[{title}.{f.encode_name}."<name>"]', value.cls))
        elif isinstance(t, mi.ListType) and isinstance(_plain(t.item_type), mi.StructType):
            item = _plain(t.item_type)
            assert isinstance(item, mi.StructType)
            nested.append((f"[[{title}.{f.encode_name}]]", item.cls))
    yield ""
    for sub_title, sub_cls in nested:
        yield from _table(sub_title, sub_cls, docs, level=level + 1)


def render() -> str:
    docs = _field_docs()
    out: list[str] = [INTRO]
    info = mi.type_info(config.Config)
    assert isinstance(info, mi.StructType)
    for f in info.fields:
        section = _plain(f.type)
        assert isinstance(section, mi.StructType)
        out.extend(_table(f"[{f.encode_name}]", section.cls, docs))
    return "\n".join(out).rstrip() + "\n"


def undocumented() -> list[str]:
    """Keys without a description: each key must say what it does."""
    docs = _field_docs()
    missing: list[str] = []

    def walk(cls: type[Any], prefix: str) -> None:
        info = mi.type_info(cls)
        assert isinstance(info, mi.StructType)
        field_docs: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            field_docs.update(docs.get(klass.__name__, {}))
        for f in info.fields:
            t = _plain(f.type)
            key = f"{prefix}{f.encode_name}"
            if isinstance(t, mi.StructType) and cls is config.Config:
                walk(t.cls, f"{key}.")
                continue
            if not field_docs.get(f.name):
                missing.append(key)
            if isinstance(t, mi.StructType):
                walk(t.cls, f"{key}.")
            elif isinstance(t, mi.DictType) and isinstance(_plain(t.value_type), mi.StructType):
                value = _plain(t.value_type)
                assert isinstance(value, mi.StructType)
                walk(value.cls, f"{key}.<name>.")
            elif isinstance(t, mi.ListType) and isinstance(_plain(t.item_type), mi.StructType):
                item = _plain(t.item_type)
                assert isinstance(item, mi.StructType)
                walk(item.cls, f"{key}[].")

    walk(config.Config, "")
    return missing


if __name__ == "__main__":
    print(render(), end="")
