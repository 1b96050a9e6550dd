"""karmactl against a real daemon: output, --json, exit codes, and its import diet."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from karmactl.client import Client, RpcError
from karmad import paths
from karmad.socket_rule import default_socket
from tests.support.daemon import Home, KarmadProcess, karmactl_command


def karmactl(
    home: Home, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        karmactl_command(*args),
        env=home.env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_for_people_and_scripts(karmad: KarmadProcess) -> None:
    human = karmactl(karmad.home, "status", "--verbose")
    assert human.returncode == 0, human.stderr
    assert f"pid      {karmad.pid}" in human.stdout
    assert "SUBSYSTEM" in human.stdout
    for flags in (("--json", "status"), ("status", "--json")):
        scripted = karmactl(karmad.home, *flags)
        assert scripted.returncode == 0
        assert json.loads(scripted.stdout)["pid"] == karmad.pid


def test_hello(karmad: KarmadProcess) -> None:
    out = karmactl(karmad.home, "hello", "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout)["protocol"] == 1


def test_socket_flag_and_env(karmad: KarmadProcess, tmp_path: Path) -> None:
    elsewhere = Home(tmp_path / "elsewhere").create()
    assert karmactl(elsewhere, "status").returncode == 3
    assert karmactl(elsewhere, "--socket", str(karmad.socket), "status").returncode == 0
    assert karmactl(elsewhere, "status", env={"KARMAD_SOCKET": str(karmad.socket)}).returncode == 0


def test_not_running_is_exit_3_with_advice(home: Home) -> None:
    out = karmactl(home, "status")
    assert out.returncode == 3
    assert out.stdout == ""
    assert "not running" in out.stderr
    assert "karmad" in out.stderr and "karmactl service install" in out.stderr


def test_usage_error_is_exit_2(home: Home) -> None:
    assert karmactl(home).returncode == 2
    assert karmactl(home, "no-such-command").returncode == 2
    assert karmactl(home, "events", "--lines", "many").returncode == 2


def test_error_reply_is_exit_1(karmad: KarmadProcess) -> None:
    out = karmactl(karmad.home, "team", "show", "nosuch")
    assert out.returncode == 1
    assert "[not_found]" in out.stderr


def test_events_recent_and_follow(karmad: KarmadProcess) -> None:
    out = karmactl(karmad.home, "events", "--json", "--topic", "daemon")
    assert out.returncode == 0
    recent = [json.loads(line) for line in out.stdout.splitlines()]
    assert recent and all(e["topic"].startswith("daemon") for e in recent)

    follower = subprocess.Popen(
        karmactl_command("events", "--follow", "--json", "--topic", "rpc.client", "--count", "3"),
        env=karmad.home.env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Keep causing connection events until the follower has seen three of them.
        deadline = time.monotonic() + 30
        while follower.poll() is None and time.monotonic() < deadline:
            karmad.call("daemon.hello")
            time.sleep(0.05)
        stdout, _ = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0
    streamed = [json.loads(line) for line in stdout.splitlines()]
    assert len(streamed) == 3
    assert all(e["topic"] in ("rpc.client.connected", "rpc.client.disconnected") for e in streamed)
    seqs = [e["seq"] for e in streamed]
    assert seqs == sorted(seqs)


def test_a_connection_closed_as_idle_is_replaced(
    karmad_factory: Callable[..., KarmadProcess], anyio_backend: str
) -> None:
    # A command that asks the user something between two calls may wait longer than
    # the daemon keeps an idle connection.
    daemon = karmad_factory(anyio_backend, start=False)
    daemon.home.write_config("[rpc]\nidle_timeout_s = 1\n")
    daemon.start()
    with Client(str(daemon.socket), timeout=10) as client:
        first = client.call("daemon.status")
        time.sleep(1.5)
        assert client.call("daemon.status")["pid"] == first["pid"]
        time.sleep(1.5)
        with pytest.raises(RpcError) as error:  # and errors still come through
            client.call("no.such")
        assert error.value.reason == "method_not_found"
    timeouts = [e for e in daemon.log_events() if e.get("event") == "idle_timeout"]
    assert len(timeouts) == 2


def test_stop(karmad: KarmadProcess) -> None:
    out = karmactl(karmad.home, "stop")
    assert out.returncode == 0, out.stderr
    assert f"karmad (pid {karmad.pid}) stopped" in out.stdout
    assert karmad.wait() == 0
    assert karmactl(karmad.home, "status").returncode == 3


def run_probe(code: str, env: dict[str, str] | None = None) -> tuple[list[str], set[str]]:
    """Run `code` in a fresh interpreter: (the lines it printed, the modules it loaded)."""
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    *printed, modules = out.stdout.splitlines()
    return printed, set(modules.split())


def test_karmactl_imports_nothing_of_the_daemon() -> None:
    _, modules = run_probe(
        "import karmactl.cli as c\nc.build_parser()\nimport karmactl.client, karmactl.render"
    )
    daemon_modules = {m for m in modules if m == "karmad" or m.startswith("karmad.")}
    # The contract it shares with the daemon: the protocol types and where the socket is.
    assert daemon_modules <= {"karmad", "karmad.protocol", "karmad.socket_rule"}, daemon_modules
    for heavy in ("anyio", "httpx", "structlog", "sqlite3", "watchfiles"):
        assert heavy not in modules, heavy


def test_karmactl_status_imports_only_what_it_uses(tmp_path: Path) -> None:
    """`karmactl status` is meant to start almost as fast as a bare interpreter
    (bench/rpc_latency.py); each of these modules costs a measurable share of that."""
    printed, modules = run_probe(
        "import karmactl.cli as c\nprint(c.main(['status']))",
        {"KARMAD_SOCKET": str(tmp_path / "absent.sock")},
    )
    assert printed == ["3"]
    for heavy in ("socket", "selectors", "shutil", "typing", "msgspec", "karmad.protocol"):
        assert heavy not in modules, heavy


@pytest.mark.parametrize(
    "env",
    [
        {"HOME": "/home/u"},
        {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000"},
        {"HOME": "/home/u", "XDG_RUNTIME_DIR": "relative/ignored"},
        {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000", "KARMAD_RUNTIME_DIR": "/r"},
        {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/x", "KARMAD_SOCKET": "/s/k.sock"},
        {"HOME": "/home/u", "KARMAD_RUNTIME_DIR": "/r", "KARMAD_SOCKET": "/s/k.sock"},
    ],
)
def test_karmactl_finds_the_socket_where_karmad_listens(env: dict[str, str]) -> None:
    assert default_socket(env) == str(paths.resolve(environ=env).socket)


def test_command_modules_declare_exactly_the_commands_they_add() -> None:
    import argparse

    from karmactl import cli

    seen = []
    for module in cli.command_modules():
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers(dest="command")
        module.add_commands(sub, cli.common_options())
        assert tuple(sub.choices) == tuple(module.COMMANDS), module.__name__
        for name in module.COMMANDS:
            assert cli.COMMAND_INDEX[name] == module.__name__.rsplit(".", 1)[1]
        seen.extend(module.COMMANDS)
    assert sorted(seen) == sorted(cli.COMMAND_INDEX)


def test_a_run_builds_only_the_parser_of_its_command_and_it_is_the_same(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each command's options and help are identical whether the run built every
    command's parser or only its own; a misspelt command still hears of every one."""
    from karmactl import cli

    def helps(parser_for: list[str] | None, args: list[str]) -> str:
        with pytest.raises(SystemExit):
            cli.build_parser(parser_for).parse_args(args)
        captured = capsys.readouterr()
        return captured.out + captured.err

    for name in cli.COMMAND_INDEX:
        trimmed = helps([name, "--help"], [name, "--help"])
        assert trimmed == helps(None, [name, "--help"]), name
        assert f"usage: karmactl {name}" in trimmed
    typo = helps(["statsu"], ["statsu"])
    assert "invalid choice: 'statsu'" in typo
    assert all(name in typo for name in cli.COMMAND_INDEX)


def test_help_lists_every_command() -> None:
    out = subprocess.run(
        karmactl_command("--help"), capture_output=True, text=True, check=True, timeout=60
    )
    from karmactl import cli

    for name in cli.COMMAND_INDEX:
        assert name in out.stdout
    version = subprocess.run(
        karmactl_command("--version"), capture_output=True, text=True, check=True, timeout=60
    )
    assert version.stdout.startswith("karmactl ")
