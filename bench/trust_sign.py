"""Cost of owner signatures: signing and verifying one session manifest, and checking an
append to a large transcript against its chunk hashes.

Per key kind Syncthing generates (ECDSA P-384 on 1.x, Ed25519 on 2.x, RSA 3072 on very
old devices): sign a manifest, verify it with the signer's public key cached (the normal
case: one member's certificate comes with all its files) and uncached (first file from
a member). Baselines, measured in the same run: writing the manifest file the way the
packager does (atomic replace, not fsynced) for signing, and reading and decoding it
the way a receiver does for verifying. Then, for a transcript of `--mb` MB that grows
by one 2 KB line: the reader's incremental chunk check (in its worst case, where the
partial chunk it verified last time was nearly full) versus rehashing the whole file
(what a manifest with only a whole-file hash would need).

    .venv/bin/python bench/trust_sign.py [--runs 200] [--mb 100]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from karmad import atomic_file, codec
from karmad.flow import manifest as mf
from karmad.trust import keys, signed
from karmad.trust.chunks import ChunkHasher, check
from tests.support.identities import made_identity

FOLDER = "karma-aaaaaaaaaaaaaaaaaaaaaaaaaa"
PATH = "projects/p-aaaaaaaaaaaaaaaa/manifests/4b2030ed-0000-4000-8000-000000000000.json"


def _manifest(chunks: int) -> bytes:
    """A session with a main transcript and two subagents, each with its chunk list."""
    files = {}
    for n, name in enumerate(["-home-u-app/4b2030ed.jsonl", "a1.jsonl", "a2.jsonl"]):
        files[name] = mf.FileEntry(size=(chunks << 20) >> n, sha256="ab" * 32, lines=4000 >> n)
    manifest = mf.Manifest(
        session_id="4b2030ed-0000-4000-8000-000000000000",
        project_key="p-aaaaaaaaaaaaaaaa",
        project="github.com/acme/app",
        member_tag="alice.laptop",
        updated_at=datetime(2026, 6, 1, tzinfo=UTC),
        cli_versions=["2.1.3"],
        files=files,
        redaction=mf.Redaction(rules_version=1, replacements=3, counts={"github-token": 3}),
    )
    data = codec.decode_any(codec.encode_json(manifest))
    # What the signed manifest adds: a sequence number and each file's chunk digests.
    data["seq"] = 812
    for n, name in enumerate(files):
        data["files"][name]["chunks"] = ["cd" * 32] * max(1, chunks >> n)
    return codec.encode_json(data)


def _median_us(fn: Callable[[], object], runs: int) -> float:
    fn()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e6)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()

    payload = _manifest(chunks=10)
    print(f"manifest payload: {len(payload)} bytes (3 files, 10 MiB main transcript)")
    scratch = tempfile.TemporaryDirectory()
    target = Path(scratch.name) / "manifest.json"

    def write() -> None:
        atomic_file.write_atomic(target, payload + b"\n", 0o644, durable=False)

    def read() -> None:
        codec.decode_any(target.read_bytes())

    w, r = _median_us(write, args.runs), _median_us(read, args.runs)
    print(f"  baselines: write the manifest {w:7.1f} us, read and decode it {r:7.1f} us")
    for kind, label in (
        ("ecdsa-p384", "ECDSA P-384 (1.x)"),
        ("ed25519", "Ed25519 (2.x)"),
        ("rsa-3072", "RSA 3072 (<0.12.5)"),
    ):
        key = keys.device_key_from_pem(*made_identity(kind))
        data = signed.sign(key, payload, kind="manifest", folder=FOLDER, path=PATH)

        def sign(key: keys.DeviceKey = key) -> None:
            signed.sign(key, payload, kind="manifest", folder=FOLDER, path=PATH)

        def verify(data: bytes = data, owner: str = key.device_id) -> None:
            signed.verify_file(data, kind="manifest", folder=FOLDER, path=PATH, owner=owner)

        def verify_cold(data: bytes = data, owner: str = key.device_id) -> None:
            keys._public_key.cache_clear()
            verify(data, owner)

        s, v, c = (_median_us(f, args.runs) for f in (sign, verify, verify_cold))
        print(
            f"  {label:<20} sign {s:7.1f} us ({s / w:4.1f}x write)   verify {v:7.1f} us "
            f"({v / r:5.1f}x read)   first from a member {c:7.1f} us   "
            f"+{len(data) - len(payload)} bytes"
        )
    scratch.cleanup()

    # Worst case for the incremental check: what was verified ends 100 bytes short of a
    # chunk boundary, so the whole partial chunk is read again.
    size = (args.mb << 20) + (1 << 20) - 100
    line = b'{"type":"assistant","message":{"content":"' + b"x" * 2000 + b'"}}\n'
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "session.jsonl"
        block = line * ((1 << 20) // len(line) + 1)
        with path.open("wb") as out:
            while out.tell() < size:
                out.write(block[: size - out.tell()])
        hasher = ChunkHasher()
        with path.open("rb") as src:
            while chunk := src.read(1 << 20):
                hasher.update(chunk)
        known = check(hasher.claim(), path).verified
        with path.open("ab") as out:
            out.write(line)
        hasher.update(line)
        grown = hasher.claim()
        total = path.stat().st_size

        def incremental() -> None:
            result = check(grown, path, known)
            assert result.verified.size == total

        def whole() -> None:
            h = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(8 << 20):
                    h.update(chunk)

        runs = max(5, args.runs // 20)
        inc, full = _median_us(incremental, args.runs), _median_us(whole, runs)
        print(f"one {len(line)}-byte line appended to a {total / 1e6:.0f} MB transcript:")
        print(f"  whole-file rehash (baseline):    {full / 1000:9.2f} ms")
        print(f"  chunk check (worst case):        {inc / 1000:9.2f} ms ({full / inc:.0f}x less)")
        print(f"  chunk list in the manifest: {len(grown.sha256)} digests")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
