"""The measurements behind `bench/index_full.py` (see there); kept out of the entry
module because karmad's parser processes re-import the main module."""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from bench.corpus import have_ccusage, replicate, run_ccusage, say
from karmad.config import IndexConfig
from karmad.index.discovery import Root, walk
from karmad.index.engine import Engine, parser_processes
from karmad.index.pricing import load_table
from karmad.index.records import Record
from karmad.index.schema import INDEX_SCHEMA
from karmad.index.writer import IndexWriter
from karmad.store import Store

CHUNK = 4 << 20


def files_of(projects: Path) -> list[str]:
    return [ref.path for ref, _ in walk(projects)]


def _chunks(path: str) -> list[bytes]:
    out = []
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        carry = b""
        read = 0
        while read < size:
            data = f.read(min(CHUNK, size - read))
            read += len(data)
            data = carry + data
            cut = data.rfind(b"\n")
            carry = data[cut + 1 :]
            out.append(data[: cut + 1])
    return out


def bare_decode(files: list[str], typed: bool) -> float:
    """Every line decoded (dicts, or karmad's typed records), malformed ones skipped."""
    decoder = msgspec.json.Decoder(Record) if typed else msgspec.json.Decoder()
    start = time.perf_counter()
    for path in files:
        for body in _chunks(path):
            try:
                decoder.decode_lines(body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                for line in body.split(b"\n"):
                    if line.strip():
                        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                            decoder.decode(line)
    return time.perf_counter() - start


def karmad_index(
    projects: Path, db: Path, *, text: bool, processes: int = -1
) -> tuple[float, float, int]:
    """(seconds for the aggregates pass, seconds for the text pass, sessions)."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    store = Store.open(db, INDEX_SCHEMA, check_same_thread=False)
    try:
        writer = IndexWriter(store, load_table(), lambda: int(time.time() * 1000))
        engine = Engine(
            writer,
            IndexConfig(parse_processes=processes),
            full_text=False,
            on_progress=lambda p: None,
            on_sessions=lambda s: None,
            should_stop=lambda: False,
            take_changed=set,
        )
        engine.add_root(Root(projects))
        start = time.perf_counter()
        report = engine.scan()
        aggregates = time.perf_counter() - start
        text_seconds = 0.0
        if text:
            engine.full_text = True
            start = time.perf_counter()
            engine.text_backlog()
            text_seconds = time.perf_counter() - start
        return aggregates, text_seconds, report.sessions
    finally:
        store.close()


def karmad_process(projects: Path, db: Path, processes: int) -> float:
    """Wall time of a fresh interpreter that builds the index and exits."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.index_full",
            "--parse-processes",
            str(processes),
            "--only-index",
            str(projects),
            str(db),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def main(description: str) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--megabytes", type=int, default=205)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="generate into (and keep) this directory")
    parser.add_argument(
        "--parse-processes",
        type=int,
        default=-1,
        help="karmad's index.parse_processes (-1: automatic, 0: in the worker thread)",
    )
    parser.add_argument("--only-index", nargs=2, metavar=("PROJECTS", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    # Byte-compiled as `pip install` leaves it, so that neither this process nor the
    # parser processes compile karmad's sources (PYTHONDONTWRITEBYTECODE, editable
    # checkouts) inside the timings.
    compileall.compile_dir(Path(__file__).resolve().parents[1] / "karmad", quiet=1)
    if args.only_index:
        karmad_index(
            Path(args.only_index[0]),
            Path(args.only_index[1]),
            text=False,
            processes=args.parse_processes,
        )
        return

    base = args.keep or Path(tempfile.mkdtemp(prefix="karmad-bench-"))
    projects = base / "claude" / "projects"
    try:
        if not projects.exists():
            say(f"generating {args.megabytes} MB under {projects} ...")
            files, size = replicate(projects, args.megabytes)
        else:
            files = len(files_of(projects))
            size = sum(os.path.getsize(p) for p in files_of(projects))
        mb = size / 1e6
        paths = files_of(projects)
        processes = parser_processes(IndexConfig(parse_processes=args.parse_processes))
        say(
            f"history: {files} files, {mb:.1f} MB; {os.cpu_count()} CPUs; "
            f"karmad parser processes: {processes}"
        )
        db = base / "index.db"
        ccusage = have_ccusage()
        if not ccusage:
            say(
                "ccusage not installed (./dev test installs it when npm exists): "
                "its column is skipped"
            )
        results: dict[str, list[float]] = {
            "karmad index (in-process)": [],
            "karmad index (new process)": [],
            "ccusage session --json --offline": [],
            "bare msgspec decode to dicts": [],
            "typed decode of karmad's fields": [],
        }
        text_runs: list[float] = []
        sessions = 0
        # One warm-up of each, then interleaved runs.
        bare_decode(paths, typed=False)
        for n in range(args.runs):
            aggregates, text_seconds, sessions = karmad_index(
                projects, db, text=n == 0 or n == args.runs - 1
            )
            results["karmad index (in-process)"].append(aggregates)
            if text_seconds:
                text_runs.append(text_seconds)
            results["karmad index (new process)"].append(
                karmad_process(projects, db, args.parse_processes)
            )
            if ccusage:
                results["ccusage session --json --offline"].append(
                    run_ccusage(projects.parent, base / "home")
                )
            results["bare msgspec decode to dicts"].append(bare_decode(paths, typed=False))
            results["typed decode of karmad's fields"].append(bare_decode(paths, typed=True))
            say(
                f"  run {n + 1}/{args.runs}: "
                + ", ".join(
                    f"{name.split(' (')[0].split(' session')[0]} {values[-1]:.2f}s"
                    for name, values in results.items()
                    if values
                )
            )
        medians = {name: statistics.median(v) for name, v in results.items() if v}
        say()
        say(f"{'median of ' + str(args.runs) + ' runs':40} {'seconds':>8} {'MB/s':>8}")
        for name, seconds in medians.items():
            say(f"{name:40} {seconds:8.3f} {mb / seconds:8.1f}")
        say()
        ours = medians["karmad index (in-process)"]
        ours_process = medians["karmad index (new process)"]
        bare = medians["bare msgspec decode to dicts"]
        say(f"karmad / bare decode:            {ours / bare:5.2f}x   (goal: <= 2x)")
        if ccusage:
            cc = medians["ccusage session --json --offline"]
            say(f"karmad / ccusage (in-process):   {ours / cc:5.2f}x   (goal: <= 1.25x)")
            say(f"karmad / ccusage (both processes): {ours_process / cc:5.2f}x")
        say(f"sessions indexed: {sessions}")
        text = statistics.median(text_runs)
        say(f"full-text index (second pass): {text:.2f} s, {mb / text:.1f} MB/s")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
