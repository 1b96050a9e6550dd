"""Renders docs/protocol.md from `karmad.protocol`, so the reference cannot drift.

    python -m karmad.protocol_doc > docs/protocol.md

Field descriptions are the attribute docstrings written under each field in
protocol.py (read with `ast`, since Python keeps no such docstrings at run time).
"""

from __future__ import annotations

import ast
import inspect
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
from msgspec import inspect as mi

from karmad import protocol
from karmad.config import RpcConfig
from karmad.protocol import ErrorCode
from karmad.rpc.server import WRITE_TIMEOUT_S

INTRO = """\
# karmad control protocol

This file is generated from `karmad/protocol.py` by `python -m karmad.protocol_doc`;
edit the types, not this file.

## Transport

- **Socket**: a Unix stream socket. Clients find it by this rule (first match wins):
  `$KARMAD_SOCKET`; `$KARMAD_RUNTIME_DIR/karmad.sock`; on macOS
  `~/Library/Application Support/karmad/run/karmad.sock`; `$XDG_RUNTIME_DIR/karmad/karmad.sock`
  (when `$XDG_RUNTIME_DIR` is an absolute path); `/tmp/karmad-$UID/karmad.sock`.
- **Access**: the socket is mode 0600 inside a 0700 directory, and the daemon checks the
  connecting process's uid with kernel credentials (SO_PEERCRED / LOCAL_PEERCRED): only
  the user running karmad is served; other connections are closed without an answer.
- **Framing**: [JSON-RPC 2.0](https://www.jsonrpc.org/specification), one compact JSON
  value per line (UTF-8, `\\n`-terminated). Requests on one connection are answered in
  order; use several connections for parallel calls.
- **Params** are always by name (an object; `[]` and omitted mean "no params"). Unknown
  fields are refused with `invalid_params`, naming the field.
- **Batches** and **notifications** follow the specification: each batch item gets its
  own answer (an invalid item does not spoil the others), notifications get none, not
  even an error, and a batch of only notifications gets nothing. The items of a batch
  run one after the other, interleaved with other clients' requests.
- **Events**: after `events.subscribe`, the daemon pushes notifications on the same
  connection (see below). A client that does not keep up is sent `events.overflow` and
  disconnected; it may reconnect and resubscribe with `since` to fill the gap.
- **Audit**: every call of a mutating method (see the table of methods) is logged with
  the calling process's pid and its outcome (`rpc_mutation`).
"""

LIMITS = [
    (
        "request line",
        "max_message_bytes",
        "bytes, newline excluded",
        ErrorCode.MESSAGE_TOO_LARGE,
        "answered, then the connection is closed (the rest of the line cannot be framed)",
    ),
    (
        "nesting",
        "",
        "levels of arrays and objects, a batch's own array included",
        ErrorCode.MESSAGE_TOO_DEEP,
        "answered with a null id; nothing of the line is run",
    ),
    (
        "batch",
        "max_batch_items",
        "requests and notifications",
        ErrorCode.BATCH_TOO_LARGE,
        "one error with a null id; nothing of the batch is run",
    ),
    (
        "response",
        "max_response_bytes",
        "bytes of results in one response line (the short errors below come on top)",
        ErrorCode.RESPONSE_TOO_LARGE,
        "the answer that would cross the limit is replaced by this error; the batch items "
        "after it are not run and get the same error (detail `not run`)",
    ),
    (
        "connections",
        "max_clients",
        "connections at once",
        ErrorCode.TOO_MANY_CLIENTS,
        "sent with a null id instead of serving the new connection, which is closed",
    ),
    (
        "per process",
        "max_clients_per_process",
        "connections from one process (by the peer's pid)",
        ErrorCode.TOO_MANY_CLIENTS,
        "as above; other processes are still served",
    ),
    (
        "idle",
        "idle_timeout_s",
        "seconds without a complete request, on a connection without an event subscription",
        ErrorCode.IDLE_TIMEOUT,
        "sent with a null id, then the connection is closed; reconnect to go on",
    ),
    (
        "events",
        "client_buffer",
        "notifications queued for a subscriber that does not read",
        None,
        "`events.overflow`, then the connection is closed",
    ),
]
"""What the transport bounds; defaults come from `RpcConfig`, so they cannot drift."""


def _limits() -> Iterator[str]:
    defaults = RpcConfig()
    yield "## Limits"
    yield ""
    yield (
        "Every limit has an error (or notification) of its own. Those marked with a key can be "
        "changed in the `[rpc]` section of karmad's config."
    )
    yield ""
    yield "| limit | key | default | of | when exceeded |"
    yield "|---|---|---|---|---|"
    for name, key, unit, code, effect in LIMITS:
        value = getattr(defaults, key) if key else protocol.MAX_REQUEST_DEPTH
        setting = f"`rpc.{key}`" if key else "(fixed)"
        default = f"{value:g}" if isinstance(value, float) else f"{value}"
        what = f"{int(code)} `{protocol.ERRORS[code].reason}`: " if code is not None else ""
        yield f"| {name} | {setting} | {default} | {unit} | {what}{effect} |"
    yield ""
    yield (
        f"A client that accepts nothing the daemon writes for {WRITE_TIMEOUT_S:g} s is "
        "disconnected."
    )
    yield ""


def _field_docs() -> dict[str, dict[str, str]]:
    source = inspect.getsource(protocol)
    docs: dict[str, dict[str, str]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ClassDef):
            continue
        fields: dict[str, str] = {}
        body = node.body
        for i, stmt in enumerate(body):
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            following = body[i + 1] if i + 1 < len(body) else None
            if (
                isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                fields[stmt.target.id] = " ".join(following.value.value.split())
        docs[node.name] = fields
    return docs


def _type_name(t: mi.Type) -> str:
    simple: dict[type[mi.Type], str] = {
        mi.IntType: "int",
        mi.FloatType: "float",
        mi.StrType: "string",
        mi.BoolType: "bool",
        mi.NoneType: "null",
        mi.AnyType: "any",
        mi.DateTimeType: "datetime (RFC 3339)",
    }
    for cls, name in simple.items():
        if isinstance(t, cls):
            return name
    if isinstance(t, mi.UnionType):
        return " | ".join(_type_name(x) for x in t.types)
    if isinstance(t, mi.ListType):
        return f"list[{_type_name(t.item_type)}]"
    if isinstance(t, mi.DictType):
        return f"map[{_type_name(t.key_type)}, {_type_name(t.value_type)}]"
    if isinstance(t, mi.StructType):
        return f"[{t.cls.__name__}](#{t.cls.__name__.lower()})"
    if isinstance(t, mi.LiteralType):
        return " | ".join(repr(v) for v in t.values)
    if isinstance(t, mi.EnumType):
        return f"{t.cls.__name__}"
    return type(t).__name__.removesuffix("Type").lower()


def _default(field: mi.Field) -> str:
    if field.required:
        return "required"
    if field.default is not msgspec.NODEFAULT:
        return f"`{msgspec.json.encode(field.default).decode()}`"
    if field.default_factory is not msgspec.NODEFAULT:
        return f"`{msgspec.json.encode(field.default_factory()).decode()}`"
    return ""


def _struct_section(cls: type[Any], docs: dict[str, dict[str, str]]) -> Iterator[str]:
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    yield f"### {cls.__name__}"
    yield ""
    if cls.__doc__ and cls.__doc__ is not msgspec.Struct.__doc__:
        yield " ".join(inspect.cleandoc(cls.__doc__).split())
        yield ""
    if not info.fields:
        yield "No fields."
        yield ""
        return
    yield "| field | type | default | meaning |"
    yield "|---|---|---|---|"
    field_docs = {}
    for klass in reversed(cls.__mro__):
        field_docs.update(docs.get(klass.__name__, {}))
    for f in info.fields:
        yield (
            f"| `{f.encode_name}` | {_type_name(f.type)} | {_default(f)} "
            f"| {field_docs.get(f.name, '')} |"
        )
    yield ""


def _referenced(t: mi.Type, seen: dict[str, type[Any]]) -> None:
    if isinstance(t, mi.StructType):
        if t.cls.__name__ in seen:
            return
        seen[t.cls.__name__] = t.cls
        for f in t.fields:
            _referenced(f.type, seen)
    elif isinstance(t, mi.UnionType):
        for x in t.types:
            _referenced(x, seen)
    elif isinstance(t, mi.ListType):
        _referenced(t.item_type, seen)
    elif isinstance(t, mi.DictType):
        _referenced(t.value_type, seen)


def render() -> str:
    docs = _field_docs()
    out: list[str] = [INTRO, *_limits(), f"Protocol version: **{protocol.PROTOCOL_VERSION}**.", ""]
    out += ["## Methods", "", "| method | mutating | summary |", "|---|---|---|"]
    for name in sorted(protocol.METHODS):
        spec = protocol.METHODS[name]
        anchor = name.replace(".", "")
        out.append(f"| [`{name}`](#{anchor}) | {'yes' if spec.mutating else ''} | {spec.summary} |")
    out.append("")
    types: dict[str, type[Any]] = {}
    for name in sorted(protocol.METHODS):
        spec = protocol.METHODS[name]
        out += [f"### `{name}`", "", spec.summary, ""]
        out.append(f"- params: [{spec.params.__name__}](#{spec.params.__name__.lower()})")
        out.append(f"- result: {_type_name(mi.type_info(spec.result))}")
        out.append("")
        _referenced(mi.type_info(spec.params), types)
        _referenced(mi.type_info(spec.result), types)
    out += [
        "## Notifications",
        "",
        f"- `{protocol.NOTIFY_EVENT}` — params: [Event](#event)",
        f"- `{protocol.NOTIFY_OVERFLOW}` — params: [Overflow](#overflow); the connection "
        "is closed after it.",
        "",
    ]
    _referenced(mi.type_info(protocol.Event), types)
    _referenced(mi.type_info(protocol.Overflow), types)
    out += ["## Types", ""]
    for name in sorted(types):
        out.extend(_struct_section(types[name], docs))
    out += [
        "## Errors",
        "",
        "Every error's `data` is an [ErrorData](#errordata) object; `data.reason` is stable "
        "and meant for programs, `message` and `data.detail` are for people.",
        "",
        "| code | reason | message |",
        "|---|---|---|",
    ]
    for code, info in sorted(protocol.ERRORS.items()):
        out.append(f"| {int(code)} | `{info.reason}` | {info.message} |")
    out.append("")
    out.extend(_struct_section(protocol.ErrorData, docs))
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
