"""Full index of a >= 200 MB history: karmad vs ccusage vs a bare decode of every line.

    .venv/bin/python -m bench.index_full [--megabytes 205] [--runs 5] [--keep DIR]

Generates the history by replicating the shared corpus with fresh ids (so no request is
de-duplicated away), then measures, interleaved so that load on the machine hits all of
them alike, and prints medians:

- karmad: the aggregates pass of a full index into a new index.db (sessions, usage
  de-duplicated and priced, facts), as the daemon runs it at start-up (parser processes
  included), in-process; and the same as a fresh `python` process, start-up included,
  which is what ccusage's figure contains;
- ccusage: `ccusage session --json --offline` over the same files;
- the floor: msgspec decoding every line to Python dicts (one process), and decoding
  every line into karmad's typed records (what the aggregates pass decodes).

The full-text index (karmad's second pass) is reported separately, in MB/s.
"""

from __future__ import annotations


def run() -> None:
    # karmad's parser processes are spawned, so each one re-imports the main module:
    # keep it as light as karmad's own entry point, or the bench would time its imports.
    from bench.index_measure import main

    main(__doc__.splitlines()[0])


if __name__ == "__main__":
    run()
