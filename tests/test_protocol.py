"""The contract itself: error codes, method table, and that the daemon implements it."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from karmad import protocol
from karmad.protocol import ERRORS, METHODS, ErrorCode

JSONRPC_STANDARD = {-32700, -32600, -32601, -32602, -32603}


def test_every_code_is_in_a_range_the_specification_allows() -> None:
    for code in ErrorCode:
        if code < 0:
            # Reserved range: only the five standard codes or the server-error range.
            assert -32768 <= code <= -32000
            assert code in JSONRPC_STANDARD or -32099 <= code <= -32000, code
        else:
            assert code >= 1000, f"{code!r}: application codes start at 1000"


def test_every_code_has_a_unique_stable_reason() -> None:
    assert set(ERRORS) == set(ErrorCode)
    reasons = [info.reason for info in ERRORS.values()]
    assert len(reasons) == len(set(reasons))
    for reason in reasons:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", reason), reason


def test_method_names_are_noun_verb_and_types_are_structs() -> None:
    for name, spec in METHODS.items():
        assert re.fullmatch(r"[a-z]+(\.[a-z][a-zA-Z]*)+", name), name
        assert spec.name == name
        assert issubclass(spec.params, protocol.Params)
        assert spec.params.__struct_config__.forbid_unknown_fields, name
        assert spec.summary.endswith("."), name
        # Every result type must be encodable (no arbitrary Python objects).
        msgspec.json.schema(spec.result)


def test_daemon_registers_every_declared_method(tmp_path: Path) -> None:
    from karmad import app, paths
    from karmad.config import Config
    from karmad.index.schema import INDEX_SCHEMA
    from karmad.state_schema import STATE_SCHEMA
    from karmad.store import Store

    store = Store.open(tmp_path / "karmad.db", STATE_SCHEMA)
    index = Store.open(tmp_path / "index.db", INDEX_SCHEMA)
    resolved = paths.resolve(environ={"HOME": str(tmp_path)})
    services, _, _ = app.assemble(resolved, Config(), store, index, "asyncio", lambda: None)
    assert app.build_router(services).missing() == []
    store.close()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_params_accept_empty_object_or_say_what_is_missing(name: str) -> None:
    spec = METHODS[name]
    try:
        msgspec.convert({}, spec.params)
    except msgspec.ValidationError as exc:
        assert "required" in str(exc)


def _reasons_in_code() -> dict[str, list[str]]:
    """Every reason string the code raises or tests for, with where it appears.

    Raised: the first argument of `DomainError(...)` and of helpers that pass their first
    parameter on to it, `reason=` of those and of `ErrorData(...)`, and strings stored
    under `["reason"]`. Tested for: string constants compared with a `.reason`.
    """
    import ast

    root = Path(__file__).resolve().parents[1]
    trees = {
        path: ast.parse(path.read_text())
        for package in ("karmad", "karmactl")
        for path in sorted((root / package).rglob("*.py"))
    }

    def name_of(func: ast.expr) -> str:
        return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")

    makers = {"DomainError"}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.args.args:
                first = node.args.args[0].arg
                for ret in ast.walk(node):
                    if (
                        isinstance(ret, ast.Return)
                        and isinstance(ret.value, ast.Call)
                        and name_of(ret.value.func) == "DomainError"
                        and ret.value.args
                        and isinstance(ret.value.args[0], ast.Name)
                        and ret.value.args[0].id == first
                    ):
                        makers.add(node.name)
    found: dict[str, list[str]] = {}
    for path, tree in trees.items():
        where = str(path.relative_to(root))
        for node in ast.walk(tree):
            constants: list[ast.expr] = []
            if isinstance(node, ast.Call) and name_of(node.func) in {*makers, "ErrorData"}:
                if node.args and name_of(node.func) != "ErrorData":
                    constants.append(node.args[0])
                constants.extend(k.value for k in node.keywords if k.arg == "reason")
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Subscript)
                and isinstance(t.slice, ast.Constant)
                and t.slice.value == "reason"
                for t in node.targets
            ):
                constants.append(node.value)
            if isinstance(node, ast.Compare) and any(
                isinstance(side, ast.Attribute) and side.attr == "reason"
                for side in (node.left, *node.comparators)
            ):
                constants.extend((node.left, *node.comparators))
            for c in constants:
                if isinstance(c, ast.Constant) and isinstance(c.value, str):
                    found.setdefault(c.value, []).append(f"{where}:{c.lineno}")
    return found


def test_every_reason_in_the_code_is_in_the_table_and_the_docs() -> None:
    found = _reasons_in_code()
    assert {"invalid_argument", "not_found", "invalid_code", "method_not_found"} <= set(found)
    known = {info.reason for info in ERRORS.values()}
    unknown = {reason: where for reason, where in found.items() if reason not in known}
    assert not unknown, f"reasons missing from protocol.ERRORS: {unknown}"
    doc = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    for code, info in ERRORS.items():
        assert f"| {int(code)} | `{info.reason}` |" in doc, info.reason


def _enum_values() -> list[tuple[object, set[str]]]:
    from karmad import domain
    from karmad.sync.model import Role

    return [
        (protocol.RoleName, {r.value for r in Role}),
        (protocol.PhaseName, {p.value for p in domain.Phase}),
        (protocol.TeamStateName, {s.value for s in domain.TeamState}),
        (protocol.MemberStateName, {s.value for s in domain.MemberState}),
        (protocol.ProjectStateName, {s.value for s in domain.ProjectState}),
        (protocol.SubscriptionStateName, {s.value for s in domain.SubscriptionState}),
        (protocol.DirectionName, {d.value for d in domain.Direction}),
        (protocol.EventKindName, {k.value for k in domain.EventKind}),
    ]


def test_closed_sets_in_the_protocol_are_the_domain_s() -> None:
    """The protocol names the values of the domain's enums as literals (karmactl imports
    nothing else of karmad); the two lists cannot drift apart."""
    from typing import get_args

    for literal, values in _enum_values():
        assert set(get_args(literal)) == values, literal


def test_a_value_outside_a_closed_set_is_refused_with_the_field() -> None:
    from karmad import codec

    with pytest.raises(codec.InvalidData) as caught:
        codec.convert({"team": "t", "project": "p", "direction": "sideways"}, protocol.AcceptParams)
    assert caught.value.path == "$.direction"
