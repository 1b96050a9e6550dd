"""The daemon-side checks of `karmactl doctor`, one module per subsystem.

Each module exposes `register(doctor, services)`, which `karmad.app` calls while wiring
the daemon, exactly like the RPC handlers in `karmad.api`. A subsystem adds its checks
the same way: write `karmad/checks/<subsystem>.py` (or extend the module that is there),
register its functions with `Doctor.register` (async: REST calls, anything awaitable)
or `Doctor.register_blocking` (file system, SQLite: run in a worker thread), and call
its `register` from `Daemon._run`. A check returns findings built with
`karmad.doctor.ok/warn/fail`, each with a stable dotted name and, unless it passed, the
fix a user should apply.

Checks that must work while the daemon is down (is it reachable, socket permissions,
is the service installed) live in `karmactl/cmd_doctor.py` instead.
"""
