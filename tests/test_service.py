"""`karmactl service`: the unit and plist, and install/uninstall against stubbed managers."""

from __future__ import annotations

import json
import os
import plistlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from karmactl.service.units import LAUNCHD_LABEL, launchd_plist, systemd_unit
from tests.support.daemon import REPO, Home, KarmadProcess, karmactl_command
from tests.support.stubs import ServiceStubs

INSTALLED_KARMAD = str(Path(os.path.abspath(sys.executable)).parent / "karmad")


@pytest.fixture
def stubs(tmp_path: Path) -> Iterator[ServiceStubs]:
    s = ServiceStubs(tmp_path / "stubs")
    yield s
    s.cleanup()


def karmactl(
    home: Home, stubs: ServiceStubs, *args: str, env: dict[str, str] | None = None, **kw: bool
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        karmactl_command(*args),
        env=stubs.env(home.env(env), only_stubs=bool(kw.get("only_stubs"))),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


def unit_path(home: Home) -> Path:
    return home.home / ".config" / "systemd" / "user" / "karmad.service"


def systemctl_calls(stubs: ServiceStubs) -> list[list[str]]:
    return [c[2:] for c in stubs.calls("systemctl")]


# --------------------------------------------------------------------------- the files


def test_shipped_unit_is_the_rendered_one() -> None:
    """systemd/karmad.service is what packagers install; install renders the same."""
    assert (REPO / "systemd" / "karmad.service").read_text() == systemd_unit(["/usr/bin/karmad"])


def test_shipped_plist_is_the_rendered_one() -> None:
    shipped = (REPO / "launchd" / f"{LAUNCHD_LABEL}.plist").read_bytes()
    assert shipped == launchd_plist(["/usr/local/bin/karmad"])


def test_plist_is_a_valid_launchd_agent() -> None:
    job = plistlib.loads(launchd_plist(["/opt/k/bin/karmad"], stderr_log="/Users/u/L/x.log"))
    assert job["Label"] == LAUNCHD_LABEL == "org.karmad.karmad"
    assert job["ProgramArguments"] == ["/opt/k/bin/karmad", "--log-file"]
    assert job["RunAtLoad"] is True
    assert job["KeepAlive"] == {"SuccessfulExit": False}
    assert isinstance(job["ThrottleInterval"], int)
    assert job["ThrottleInterval"] >= 10
    assert job["StandardErrorPath"] == "/Users/u/L/x.log"
    assert "/opt/homebrew/bin" in job["EnvironmentVariables"]["PATH"].split(":")
    # Only keys launchd knows (launchd.plist(5)); a typo would be silently ignored.
    known = {
        "Label",
        "ProgramArguments",
        "RunAtLoad",
        "KeepAlive",
        "ThrottleInterval",
        "ExitTimeOut",
        "EnvironmentVariables",
        "StandardOutPath",
        "StandardErrorPath",
    }
    assert set(job) <= known


def test_unit_has_the_promised_settings() -> None:
    text = systemd_unit(["/usr/bin/karmad"])
    settings = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#"
    )
    assert settings["Type"] == "notify"
    assert settings["ExecStart"] == "/usr/bin/karmad"
    assert settings["Restart"] == "on-failure"
    assert settings["WatchdogSec"] == "30s"
    assert settings["RuntimeDirectory"] == "karmad"
    for key in (
        "NoNewPrivileges",
        "LockPersonality",
        "RestrictRealtime",
        "RestrictSUIDSGID",
    ):
        assert settings[key] == "yes"
    assert settings["SystemCallArchitectures"] == "native"
    assert set(settings["RestrictAddressFamilies"].split()) >= {"AF_UNIX", "AF_INET", "AF_INET6"}


@pytest.fixture
def odd_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="karmad odd %i $HOME ", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def systemd_verify(unit: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    runtime = tmp_path / "verify-run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    # --man=no: the man pages come with distribution packages, not with a pip install.
    return subprocess.run(
        ["systemd-analyze", "verify", "--user", "--man=no", str(unit)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / "karmad.service"
    unit.write_text(systemd_unit([INSTALLED_KARMAD], path=["/opt/x/bin", "/usr/bin"]))
    done = systemd_verify(unit, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", "no warnings either (unknown keys, bad values)"


def test_executables_systemd_refuses_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="systemd cannot run"):
        systemd_unit(['/opt/it"s/karmad'])


def test_systemd_analyze_finds_karmad_behind_awkward_quoting(tmp_path: Path, odd_dir: Path) -> None:
    """Spaces, % and $ in paths, quotes in arguments survive systemd's own parsing."""
    program = odd_dir / "karmad"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    unit = tmp_path / "karmad.service"
    odd_arg = str(odd_dir / 'it\'s "quoted" \\ $HOME')
    unit.write_text(systemd_unit([str(program), "--state-dir", odd_arg]))
    done = systemd_verify(unit, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""
    # The check is real: the same unit pointing at a missing file is refused.
    program.unlink()
    assert systemd_verify(unit, tmp_path).returncode != 0


# --------------------------------------------------------------------------- systemd


def test_install_writes_enables_and_is_idempotent(home: Home, stubs: ServiceStubs) -> None:
    stubs.scenario(
        {
            "systemctl": [{"match": ["is-active"], "rc": 3}],
            "loginctl": [{"match": ["show-user"], "stdout": "no\n"}],
        }
    )
    done = karmactl(home, stubs, "service", "install", "--manager", "systemd")
    assert done.returncode == 0, done.stderr
    unit = unit_path(home)
    assert f"ExecStart={INSTALLED_KARMAD}\n" in unit.read_text()
    assert systemctl_calls(stubs) == [
        ["show-environment"],
        ["daemon-reload"],
        ["is-active", "--quiet", "karmad.service"],
        ["enable", "--now", "karmad.service"],
    ]
    assert "loginctl enable-linger" in done.stdout
    # The stand-in manager started nothing, and karmactl says so rather than lying.
    assert "does not answer yet" in done.stderr

    first = unit.stat()
    stubs.clear()
    again = karmactl(home, stubs, "service", "install", "--manager", "systemd", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["changed"] is False
    assert result["program"] == [INSTALLED_KARMAD]
    assert unit.stat().st_mtime_ns == first.st_mtime_ns
    assert ["restart", "karmad.service"] not in systemctl_calls(stubs)


def test_install_restarts_a_running_service_whose_unit_changed(
    home: Home, stubs: ServiceStubs
) -> None:
    unit = unit_path(home)
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/old/karmad\n")
    stubs.scenario({"systemctl": [{"match": ["is-active"], "rc": 0}]})
    done = karmactl(home, stubs, "service", "install", "--manager", "systemd")
    assert done.returncode == 0, done.stderr
    assert "/old/karmad" not in unit.read_text()
    calls = systemctl_calls(stubs)
    assert calls[-2:] == [["enable", "--now", "karmad.service"], ["restart", "karmad.service"]]


def test_no_linger_note_when_lingering(home: Home, stubs: ServiceStubs) -> None:
    stubs.scenario({"loginctl": [{"match": ["show-user"], "stdout": "yes\n"}]})
    done = karmactl(home, stubs, "service", "install", "--manager", "systemd")
    assert done.returncode == 0, done.stderr
    assert "enable-linger" not in done.stdout
    assert stubs.calls("loginctl")[0][1] == "show-user"


def test_install_uses_xdg_config_home(home: Home, stubs: ServiceStubs, tmp_path: Path) -> None:
    config = tmp_path / "elsewhere"
    done = karmactl(
        home,
        stubs,
        "service",
        "install",
        "--manager",
        "systemd",
        env={"XDG_CONFIG_HOME": str(config)},
    )
    assert done.returncode == 0, done.stderr
    assert (config / "systemd" / "user" / "karmad.service").is_file()
    assert not unit_path(home).exists()


def test_uninstall_disables_removes_and_is_idempotent(home: Home, stubs: ServiceStubs) -> None:
    assert karmactl(home, stubs, "service", "install", "--manager", "systemd").returncode == 0
    stubs.clear()
    done = karmactl(home, stubs, "service", "uninstall", "--manager", "systemd")
    assert done.returncode == 0, done.stderr
    assert not unit_path(home).exists()
    assert systemctl_calls(stubs) == [
        ["show-environment"],
        ["disable", "--now", "karmad.service"],
        ["daemon-reload"],
        ["reset-failed", "karmad.service"],
    ]
    again = karmactl(home, stubs, "service", "uninstall", "--manager", "systemd", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["removed"] is False


def test_refuses_without_a_user_instance(home: Home, stubs: ServiceStubs) -> None:
    stubs.scenario(
        {
            "systemctl": [
                {
                    "match": ["show-environment"],
                    "rc": 1,
                    "stderr": "Failed to connect to bus: No medium found\n",
                }
            ]
        }
    )
    done = karmactl(home, stubs, "service", "install", "--manager", "systemd")
    assert done.returncode == 1
    assert "Failed to connect to bus: No medium found" in done.stderr
    assert "loginctl enable-linger" in done.stderr
    assert not unit_path(home).exists(), "nothing is written when nothing can run it"
    assert systemctl_calls(stubs) == [["show-environment"]]


def test_refuses_without_systemd(home: Home, tmp_path: Path) -> None:
    stubs = ServiceStubs(tmp_path / "nosystemd", tools=("loginctl",))
    done = karmactl(home, stubs, "service", "install", "--manager", "systemd", only_stubs=True)
    assert done.returncode == 1
    assert "systemctl was not found" in done.stderr
    assert "foreground" in done.stderr
    assert not unit_path(home).exists()


def test_install_refuses_while_karmad_runs_by_hand(
    home: Home, stubs: ServiceStubs, karmad_factory: Callable[..., KarmadProcess]
) -> None:
    karmad = karmad_factory(home=home)
    stubs.scenario(
        {"systemctl": [{"match": ["show"], "stdout": "LoadState=not-found\nMainPID=0\n"}]}
    )
    done = karmactl(home, stubs, "service", "install", "--manager", "systemd")
    assert done.returncode == 1
    assert f"already running outside the service (pid {karmad.pid})" in done.stderr
    assert not unit_path(home).exists()


SHOW_RUNNING = """LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
MainPID=4242
StatusText=rpc: listening; store: ok
ExecMainStatus=0
NRestarts=0
FragmentPath={path}
"""


def test_status_reports_what_systemd_says(home: Home, stubs: ServiceStubs) -> None:
    fragment = unit_path(home)
    stubs.scenario(
        {"systemctl": [{"match": ["show"], "stdout": SHOW_RUNNING.format(path=fragment)}]}
    )
    done = karmactl(home, stubs, "service", "status", "--manager", "systemd", "--json")
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    assert state["running"] is True
    assert state["pid"] == 4242
    assert state["enabled"] is True
    assert state["status_text"] == "rpc: listening; store: ok"
    assert state["definition"] == str(fragment)
    assert state["answers"] is False  # pid 4242 is not a karmad at this socket

    stubs.scenario(
        {
            "systemctl": [
                {
                    "match": ["show"],
                    "stdout": "LoadState=loaded\nActiveState=failed\nSubState=failed\n"
                    "UnitFileState=enabled\nMainPID=0\nExecMainStatus=1\n",
                }
            ]
        }
    )
    down = karmactl(home, stubs, "service", "status", "--manager", "systemd")
    assert down.returncode == 3
    assert "failed (failed)" in down.stdout


def test_logs_asks_the_journal(home: Home, stubs: ServiceStubs) -> None:
    stubs.scenario({"journalctl": [{"match": ["-u"], "stdout": "a journal line\n"}]})
    done = karmactl(home, stubs, "service", "logs", "--manager", "systemd", "-n", "5", "-p", "err")
    assert done.returncode == 0, done.stderr
    assert "a journal line" in done.stdout
    assert stubs.calls("journalctl") == [
        ["journalctl", "--user", "-u", "karmad.service", "-n", "5", "-p", "err"]
    ]


# --------------------------------------------------------------------------- launchd


def test_launchd_agent_runs_karmad_end_to_end(home: Home, stubs: ServiceStubs) -> None:
    """On Linux the launchd stand-in really runs the plist's program, as launchd would."""
    stubs.scenario({"launchd": True})
    log_dir = home.home / "Library" / "Logs" / "karmad"
    env = {"KARMAD_LOG_DIR": str(log_dir)}
    done = karmactl(home, stubs, "service", "install", "--manager", "launchd", env=env)
    assert done.returncode == 0, done.stderr
    assert "is running under launchd" in done.stdout
    plist = home.home / "Library" / "LaunchAgents" / "org.karmad.karmad.plist"
    job = plistlib.loads(plist.read_bytes())
    assert job["ProgramArguments"] == [INSTALLED_KARMAD, "--log-file"]
    assert job["StandardErrorPath"] == str(log_dir / "launchd-stderr.log")
    uid = os.getuid()
    calls = [c[1:] for c in stubs.calls("launchctl")]
    assert ["bootstrap", f"gui/{uid}", str(plist)] in calls
    assert ["enable", f"gui/{uid}/org.karmad.karmad"] in calls

    pid = stubs.launchd_pid()
    status = karmactl(home, stubs, "service", "status", "--manager", "launchd", "--json", env=env)
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["running"] is True
    assert state["pid"] == pid
    assert state["answers"] is True

    # karmad writes and rotates its own log file there; `service logs` reads it.
    logs = karmactl(home, stubs, "service", "logs", "--manager", "launchd", "-n", "50", env=env)
    assert logs.returncode == 0, logs.stderr
    assert " INFO    ready " in logs.stdout

    stubs.clear()
    again = karmactl(home, stubs, "service", "install", "--manager", "launchd", env=env)
    assert again.returncode == 0, again.stderr
    assert "kept" in again.stdout
    # status (karmad answers: is it the agent's?), then install: domain, job, kickstart.
    assert [c[1] for c in stubs.calls("launchctl")] == ["print"] * 4 + ["kickstart"]
    assert stubs.launchd_pid() == pid, "an unchanged agent is not restarted"

    gone = karmactl(home, stubs, "service", "uninstall", "--manager", "launchd", env=env)
    assert gone.returncode == 0, gone.stderr
    assert not plist.exists()
    assert stubs.launchd_pid() is None
    assert pid is not None
    assert not process_alive(pid), "bootout stopped karmad"


def process_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return stat.rsplit(b")", 1)[1].split()[0] != b"Z"


def test_launchd_refuses_without_a_gui_session(home: Home, stubs: ServiceStubs) -> None:
    stubs.scenario(
        {
            "launchctl": [
                {
                    "match": ["print", f"gui/{os.getuid()}"],
                    "rc": 113,
                    "stderr": "Could not find domain for port\n",
                }
            ]
        }
    )
    done = karmactl(home, stubs, "service", "install", "--manager", "launchd")
    assert done.returncode == 1
    assert "no GUI login session" in done.stderr
    assert not (home.home / "Library" / "LaunchAgents").exists()


def test_print_shows_the_unit_and_changes_nothing(home: Home, stubs: ServiceStubs) -> None:
    done = karmactl(home, stubs, "service", "install", "--manager", "systemd", "--print")
    assert done.returncode == 0, done.stderr
    assert "Type=notify" in done.stdout
    assert stubs.calls() == []
    assert not unit_path(home).exists()


def test_syncthing_outside_systemds_path_is_added_to_the_unit(
    home: Home, stubs: ServiceStubs, tmp_path: Path
) -> None:
    fake = stubs.bin / "syncthing"  # the stubs directory is not on systemd's default PATH
    fake.write_text("#!/bin/sh\necho 'syncthing v1.19.2'\n")
    fake.chmod(0o755)
    done = karmactl(home, stubs, "service", "install", "--manager", "systemd")
    assert done.returncode == 0, done.stderr
    text = unit_path(home).read_text()
    assert f'Environment="PATH={stubs.bin}:/usr/local/sbin:' in text
    verified = systemd_verify(unit_path(home), tmp_path)
    assert verified.returncode == 0, verified.stderr


def write_log(path: Path, *records: tuple[str, str]) -> None:
    with path.open("a") as f:
        for level, event in records:
            f.write(
                json.dumps({"event": event, "level": level, "timestamp": "2026-01-01T00:00:00Z"})
                + "\n"
            )


def test_file_logs_filter_by_priority(home: Home, stubs: ServiceStubs, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    write_log(log_dir / "karmad.log.1", ("info", "older"), ("error", "old_failure"))
    write_log(log_dir / "karmad.log", ("info", "ready"), ("warning", "slow"), ("error", "broke"))
    env = {"KARMAD_LOG_DIR": str(log_dir)}
    args = ("service", "logs", "--manager", "launchd")
    everything = karmactl(home, stubs, *args, env=env)
    assert everything.returncode == 0, everything.stderr
    assert [line.split()[2] for line in everything.stdout.splitlines()] == [
        "older",
        "old_failure",
        "ready",
        "slow",
        "broke",
    ]
    errors = karmactl(home, stubs, *args, "-p", "err", "-n", "1", env=env)
    assert errors.stdout.split()[1:3] == ["ERROR", "broke"]
    raw = karmactl(home, stubs, *args, "-p", "warning", "--json", env=env)
    assert [json.loads(line)["event"] for line in raw.stdout.splitlines()] == [
        "old_failure",
        "slow",
        "broke",
    ]
    bad = karmactl(home, stubs, *args, "-p", "loud", env=env)
    assert bad.returncode == 1
    assert "unknown priority" in bad.stderr


def test_file_logs_follow_across_rotation(home: Home, stubs: ServiceStubs, tmp_path: Path) -> None:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    log = log_dir / "karmad.log"
    write_log(log, ("info", "before"))
    proc = subprocess.Popen(
        karmactl_command("service", "logs", "--manager", "launchd", "-f", "-n", "5"),
        env=stubs.env(home.env({"KARMAD_LOG_DIR": str(log_dir)})),
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    try:
        assert "before" in proc.stdout.readline()
        write_log(log, ("info", "appended"))
        assert "appended" in proc.stdout.readline()
        # karmad rotates: the live file is renamed away and a new one started.
        write_log(log, ("info", "last_in_old_file"))
        log.rename(log_dir / "karmad.log.1")
        write_log(log, ("info", "first_in_new_file"))
        assert "last_in_old_file" in proc.stdout.readline()
        assert "first_in_new_file" in proc.stdout.readline()
    finally:
        # SIGTERM, not SIGINT: a test run started in the background ignores SIGINT, and
        # so would this child.
        proc.terminate()
        proc.wait(20)
        proc.stdout.close()
