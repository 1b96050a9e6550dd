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
