"""Driving Syncthing, the engine that carries sessions between machines.

karmad either supervises its own Syncthing (managed mode) or attaches to one the user
already runs (external mode). Everything Syncthing-specific lives in this package: the
typed REST client (the one seam for httpx), the event stream and its in-memory snapshot,
the managed home and the child process. Differences between Syncthing versions are kept
in `compat`.
"""
