"""Subprocess writer for tests/test_memory_crash.py: puts records until it is killed.

Usage: crash_writer.py DIRECTORY RETENTION SEED N_TASK_IDS

It prints ``ready`` once the store is loaded, then one line ``<task_id> <seq> <digest>``
per record *after* ``put`` returned - i.e. exactly the records it may acknowledge. The
test SIGKILLs it at a random moment and checks that every acknowledged record survived.
It stops by itself after 20 s so that a lost kill can never leave it running forever.
"""
import hashlib
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from reference_impl.memory.store import RecordStore  # noqa: E402


def content_digest(record: dict) -> str:
    """Digest of the caller-supplied content (what the test compares after a crash)."""
    body = {"step": record["step"], "input": record["input"], "output": record["output"]}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def main() -> int:
    directory, retention, seed, n_ids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    store = RecordStore(directory, retention)
    store.load()
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    stop_at = time.monotonic() + 20.0
    gen = 0
    while time.monotonic() < stop_at:
        gen += 1
        task_id = f"t-{rng.randrange(n_ids)}"
        size = rng.choice((10, 200, 4000, 60000))
        record = {"step": "collect",
                  "input": {"seed": seed, "gen": gen, "blob": rng.choice("abcdef") * size},
                  "output": {"gen": gen, "n": rng.randrange(10**9)}}
        stored = store.put(task_id, record)
        out.write(f"{task_id} {stored['seq']} {content_digest(stored)}\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
