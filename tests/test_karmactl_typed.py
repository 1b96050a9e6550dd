"""karmactl's commands read the daemon's answers as `karmad.protocol` structs.

A field looked up by a string (`answer["name"]`, `answer.get("name")`) is a KeyError or a
silent None the day the protocol renames it; a struct attribute is a mypy error. The check
reads the source (no daemon needed): in every function of a `cmd_*.py`, an answer of
`….call(...)` — used directly or through a name it was assigned to — is never looked into
with a string key. The raw answer may still be passed on whole (`--json` prints it as it
came); `karmactl.typed` is the one place that looks inside one.

Left out on purpose: `status` and `hello`, which must start as fast as a bare interpreter
and so read plain JSON without msgspec (tests/test_karmactl.py holds their import budget),
and `cmd_usage.py`, not converted yet.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

KARMACTL = Path(__file__).resolve().parent.parent / "karmactl"

# (module, function) reading plain JSON on purpose; see the module docstring.
FAST_PATH = {("cmd_daemon.py", "status"), ("cmd_daemon.py", "hello")}
NOT_YET = {"cmd_usage.py"}


def _is_call_answer(node: ast.AST) -> bool:
    """`ctx.call(...)`, `client.call(...)`, `ctx.client.call(...)`: an RPC answer."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "call"
    )


def _string(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def _bound_names(func: ast.FunctionDef) -> set[str]:
    """Names assigned an RPC answer anywhere in `func` (`raw = ctx.call(...)`)."""
    names: set[str] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and _is_call_answer(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif (
            isinstance(node, ast.AnnAssign | ast.NamedExpr)
            and node.value is not None
            and _is_call_answer(node.value)
            and isinstance(node.target, ast.Name)
        ):
            names.add(node.target.id)
    return names


def string_lookups(source: str, filename: str) -> list[str]:
    """`file:line function: code` for each answer looked into by a string key."""
    tree = ast.parse(source)
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef) or (filename, func.name) in FAST_PATH:
            continue
        names = _bound_names(func)

        def answer(node: ast.AST, names: set[str] = names) -> bool:
            return _is_call_answer(node) or (isinstance(node, ast.Name) and node.id in names)

        for node in ast.walk(func):
            hit = (
                isinstance(node, ast.Subscript)
                and isinstance(node.ctx, ast.Load)
                and answer(node.value)
                and _string(node.slice)
            ) or (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
                and answer(node.func.value)
                and bool(node.args)
                and _string(node.args[0])
            )
            if hit and isinstance(node, ast.expr):
                found.append(f"{filename}:{node.lineno} {func.name}: {ast.unparse(node)}")
    return sorted(set(found))


def test_commands_read_answers_as_protocol_structs() -> None:
    modules = sorted(p for p in KARMACTL.glob("cmd_*.py") if p.name not in NOT_YET)
    assert len(modules) >= 10  # the glob found the commands
    found = [hit for p in modules for hit in string_lookups(p.read_text(), p.name)]
    assert found == [], "decode the answer with karmactl.typed.decode:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "code",
    [
        'def f(ctx):\n    return ctx.call("team.get")["name"]\n',
        'def f(ctx):\n    r = ctx.call("team.get")\n    return r["name"]\n',
        'def f(ctx):\n    r = ctx.call("team.get")\n    return r.get("name")\n',
        'def f(client):\n    return int(client.call("daemon.status")["pid"])\n',
        'def f(ctx):\n    r: dict = ctx.call("x")\n    return [t for t in r["teams"]]\n',
    ],
)
def test_the_check_sees_string_lookups(code: str) -> None:
    assert len(string_lookups(code, "cmd_x.py")) == 1


@pytest.mark.parametrize(
    "code",
    [
        'def f(ctx):\n    r = ctx.call("team.get")\n    print(r)\n    return decode(r, T).name\n',
        'def f(ctx):\n    doc = dict(ctx.call("x"))\n    doc["more"] = 1\n',
        'def f(ctx):\n    r = ctx.call("x")\n    return r[0]\n',
        'def status(ctx):\n    return ctx.call("daemon.overview")["pid"]\n',
    ],
)
def test_the_check_leaves_the_rest(code: str) -> None:
    assert string_lookups(code, "cmd_daemon.py") == []
