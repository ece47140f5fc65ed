"""Durable per-task record store (SPEC §11): atomic replace, retention, quarantine.

Why it looks like this:

* One file per task, ``records/<task_id>.json``, because graders read and damage these
  files by name (§11.1) and because it makes the cost of a write independent of how many
  records exist: a put writes exactly one file and never rewrites the others (§11.2).
* Durability is the classic sequence - write a temporary file (name starting with ``.``)
  in the same directory, flush, fsync, ``os.replace`` over the target, fsync the
  directory - so that after a SIGKILL or power loss at any moment the target holds either
  the old or the new complete record. ``put`` returns only after all of that, so a caller
  may acknowledge the record as soon as ``put`` returns.
* Inodes are recycled, not freed and allocated again. Retention renames the oldest record
  to a temp name and truncates it; replacing a record exchanges the new temp file with the
  old version (``exchange.py``, as atomic as ``os.replace``); both become *spares* that
  the next puts truncate and write into. Why: on ext4 without a journal (the grading
  machines here) every new inode scans past the inodes deleted in the last minutes
  (``recently_deleted`` in the kernel), so delete-one-create-one per write made file
  creation the largest single cost of the whole pipeline, growing with the delete rate.
  PostgreSQL recycles WAL segments for the same reason. Spares are temp files (leading
  ``.``), at most SPARES_MAX, removed at load like any temp file.
* An in-memory index ``{task_id: seq}`` ordered by seq makes retention O(1) per write (the
  oldest record is the first entry) and ``seq`` monotonic across restarts (max seen + 1).
* Corrupt files are moved to ``quarantine/`` and never deleted (§11.4); the store keeps
  going and the task becomes unknown. Validation happens when files are *loaded*; ``get``
  serves from an in-memory cache of the bytes this process loaded or wrote, so a file
  damaged on disk while the service runs is noticed (and quarantined) at the next load,
  or simply replaced by the next ``put`` for that task.

Thread-safe: one lock guards the index and the cache; file I/O of puts for different
tasks runs in parallel outside it (see ``put``).
"""

from __future__ import annotations

import collections
import json
import os
import re
import stat
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from reference_impl.protocol.timestamps import rfc3339_ms

from .exchange import exchange

MAX_RECORD_BYTES = 16 * 1024 * 1024
RECORD_FORMAT = 1
TASK_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TEMP_SUFFIX = ".tmp"
PRUNED_LOG_MAX = 4096
SPARES_MAX = 64

OnCorrupt = Callable[[Path, str, "Path | None"], None]
ValidateRecord = Callable[[dict], bool]


class RecordTooLarge(ValueError):
    """A record would serialise to more than 16 MiB, the limit every reader applies."""


class CorruptRecord(Exception):
    """Internal: why a record file cannot be trusted (the message is the reason)."""


def utc_timestamp(now: float | None = None) -> str:
    """RFC 3339 UTC with milliseconds, the SPEC's one timestamp format."""
    return rfc3339_ms(time.time() if now is None else now)


def _is_regular_file(path: Path) -> bool:
    """True for a regular file (not a symlink, directory or anything else), never raises."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def decode_record(data: bytes, task_id: str) -> dict:
    """Parse and shape-check one record file's bytes; raise CorruptRecord with a reason.

    The shape every record shares: an object with ``format`` 1, a ``task_id`` equal to
    the file's name, an integer ``seq`` >= 0, and (when present) a string ``stored_at``.
    Role-specific fields are checked by the store's ``validate_record`` callback.
    """
    if len(data) > MAX_RECORD_BYTES:
        raise CorruptRecord(f"larger than {MAX_RECORD_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptRecord("not valid UTF-8") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise CorruptRecord(f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise CorruptRecord(f"not a JSON object (a {type(obj).__name__})")
    if obj.get("format") != RECORD_FORMAT or isinstance(obj.get("format"), bool):
        raise CorruptRecord(f"format is {obj.get('format')!r}, expected {RECORD_FORMAT}")
    if obj.get("task_id") != task_id:
        raise CorruptRecord(f"task_id {obj.get('task_id')!r} does not match the file name")
    seq = obj.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise CorruptRecord(f"seq is {seq!r}, expected an integer >= 0")
    if "stored_at" in obj and not isinstance(obj["stored_at"], str):
        raise CorruptRecord("stored_at is not a string")
    return obj


class RecordStore:
    """Records on disk under ``directory`` (see the module docstring for the design).

    ``validate_record(record) -> bool`` adds role-specific checks on load (and guards
    ``put`` against writing something a later load would quarantine).
    ``on_corrupt(path, reason, quarantined_to)`` is called once per corrupt file met;
    ``quarantined_to`` is None when the file could not be moved (it is then skipped).
    """

    def __init__(self, directory, retention: int, *,
                 validate_record: ValidateRecord | None = None,
                 on_corrupt: OnCorrupt | None = None):
        if not isinstance(retention, int) or isinstance(retention, bool) or retention < 1:
            raise ValueError(f"retention must be an integer >= 1, got {retention!r}")
        self.directory = Path(directory)
        self.records_dir = self.directory / "records"
        self.quarantine_dir = self.directory / "quarantine"
        self.retention = retention
        self._validate_record = validate_record
        self._on_corrupt = on_corrupt
        self._lock = threading.RLock()
        # task_id -> seq, kept in ascending seq order (oldest first) for O(1) retention.
        self._index: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._cache: dict[str, bytes] = {}
        self._next_seq = 0
        self._loaded = False
        self._temp_counter = 0
        self._quarantine_counter = 0
        # Per-task write ordering and the shared directory fsync (see ``put``).
        self._stripes = tuple(threading.Lock() for _ in range(64))
        self._dir_sync_lock = threading.Lock()
        self._renames = 0
        self._dir_synced = 0
        # Tasks whose new file may already be renamed into place but not yet indexed:
        # retention must not unlink those files (it would delete the new record).
        self._writing: set[str] = set()
        self.counters = {"corruptions": 0, "pruned": 0, "callback_errors": 0}
        # Ids pruned since the last ``take_pruned`` (bounded: a store nobody asks keeps
        # only the newest; the caller then sees fewer ids than the counter says).
        self._recently_pruned: collections.deque[str] = collections.deque(maxlen=PRUNED_LOG_MAX)
        # Recycled inodes (see the module docstring): temp-named, empty or stale files in
        # records/ that the next puts write into instead of creating new files.
        self._spares: list[Path] = []
        self._spare_counter = 0

    # ------------------------------------------------------------------ loading

    @property
    def loaded(self) -> bool:
        """True once ``load`` has completed (readiness needs it, SPEC §13)."""
        return self._loaded

    def load(self) -> None:
        """Create the layout, drop stale temp files, read and validate every record.

        Corrupt files are quarantined and skipped; if more than ``retention`` records
        remain, the oldest are pruned (the same rule as after a put). Raises OSError only
        when the directory itself cannot be created or listed.
        """
        with self._lock:
            self._spares.clear()  # temp-named files are all removed below
            self.records_dir.mkdir(parents=True, exist_ok=True)
            try:
                self.quarantine_dir.mkdir(parents=True, exist_ok=True)
            except OSError:
                pass  # quarantining will fail; corrupt files are then left and skipped
            found: list[tuple[int, str, bytes]] = []
            for entry in sorted(os.listdir(self.records_dir)):
                path = self.records_dir / entry
                if entry.startswith("."):
                    if entry.endswith(TEMP_SUFFIX):
                        self._remove_stale_temp(path)
                    continue
                if not entry.endswith(".json"):
                    continue  # not ours to judge: the layout allows other files
                task_id = entry[:-len(".json")]
                try:
                    if not TASK_ID_RE.fullmatch(task_id):
                        raise CorruptRecord("file name is not a valid task_id")
                    data = self._read_file(path)
                    record = decode_record(data, task_id)
                    self._check_custom(record)
                except CorruptRecord as exc:
                    self._quarantine(path, str(exc))
                    continue
                found.append((record["seq"], task_id, data))
            found.sort()
            self._index.clear()
            self._cache.clear()
            for seq, task_id, data in found:
                self._index[task_id] = seq
                self._cache[task_id] = data
            if found:
                self._next_seq = max(self._next_seq, found[-1][0] + 1)
            pruned = self._prune_locked(recycle=False)  # a load leaves no temp-named file
            if pruned:
                self._fsync_dir(self.records_dir)
            self._loaded = True

    def _remove_stale_temp(self, path: Path) -> None:
        try:
            if path.is_dir() and not path.is_symlink():
                return  # never ours; leave it alone
            path.unlink()
        except OSError:
            pass

    @staticmethod
    def _read_file(path: Path) -> bytes:
        """Read a record file without ever blocking (FIFOs) or reading unbounded data."""
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise CorruptRecord(f"cannot stat: {exc.strerror or exc}") from None
        if stat.S_ISDIR(st.st_mode):
            raise CorruptRecord("is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise CorruptRecord("not a regular file")
        if st.st_size > MAX_RECORD_BYTES:
            raise CorruptRecord(f"larger than {MAX_RECORD_BYTES} bytes")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise CorruptRecord(f"cannot open: {exc.strerror or exc}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CorruptRecord("not a regular file")
            chunks, total = [], 0
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
                if total > MAX_RECORD_BYTES:
                    raise CorruptRecord(f"larger than {MAX_RECORD_BYTES} bytes")
            return b"".join(chunks)
        except OSError as exc:
            raise CorruptRecord(f"cannot read: {exc.strerror or exc}") from None
        finally:
            os.close(fd)

    def _check_custom(self, record: dict) -> None:
        if self._validate_record is None:
            return
        try:
            ok = self._validate_record(record)
        except Exception as exc:  # a validator crash means "cannot trust it"
            raise CorruptRecord(f"record validation raised {type(exc).__name__}: {exc}")
        if not ok:
            raise CorruptRecord("record does not have the expected shape")

    def _quarantine(self, path: Path, reason: str) -> Path | None:
        """Move a corrupt file aside (never delete it), count it, tell the callback."""
        self.counters["corruptions"] += 1
        target: Path | None = None
        try:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            while True:
                self._quarantine_counter += 1
                candidate = self.quarantine_dir / f"{path.name}.{stamp}.{self._quarantine_counter}"
                if not os.path.lexists(candidate):
                    break
            os.rename(path, candidate)
            target = candidate
            self._fsync_dir(self.quarantine_dir)
            self._fsync_dir(path.parent)
        except OSError:
            pass
        if self._on_corrupt is not None:
            try:
                self._on_corrupt(path, reason, target)
            except Exception:
                self.counters["callback_errors"] += 1
        return target

    # ------------------------------------------------------------------ reading

    def get(self, task_id: str) -> dict | None:
        """The stored record for ``task_id`` (a fresh dict each call), or None.

        Served from the in-memory cache; files were validated when loaded or written.
        """
        with self._lock:
            if not self._loaded:
                self.load()
            data = self._cache.get(task_id)
        if data is None:
            return None
        return json.loads(data)

    def __len__(self) -> int:
        with self._lock:
            return len(self._index)

    def __contains__(self, task_id: object) -> bool:
        with self._lock:
            return task_id in self._index

    def task_ids(self) -> list[str]:
        """Stored task ids, oldest (smallest seq) first."""
        with self._lock:
            return list(self._index)

    def take_pruned(self) -> tuple[list[str], int]:
        """``(ids pruned since the previous call, oldest first; counters["pruned"])``, read
        together, so that a caller can forget them in O(pruned) instead of comparing its
        whole view with ``task_ids``. If more than PRUNED_LOG_MAX were pruned in between,
        only the newest are returned: the counter's growth tells the caller."""
        with self._lock:
            out = list(self._recently_pruned)
            self._recently_pruned.clear()
            return out, self.counters["pruned"]

    def seq_of(self, task_id: str) -> int | None:
        with self._lock:
            return self._index.get(task_id)

    # ------------------------------------------------------------------ writing

    def put(self, task_id: str, record: dict, *, trusted: bool = False) -> dict:
        """Store ``record`` durably for ``task_id`` and return the stored record.

        Adds ``format``, ``task_id``, ``seq`` (next in this store, across restarts) and
        ``stored_at``; returns only after the file and its directory entry are fsynced;
        then prunes the oldest records beyond ``retention``. Raises ValueError for an
        invalid task_id or a record that is not JSON-serialisable, RecordTooLarge over
        16 MiB, OSError when the disk refuses (nothing is changed then).

        ``trusted=True`` is for records the process built itself from already validated
        parts: the ``validate_record`` pass (a schema walk over the whole record) is
        skipped - files are still validated when loaded - and the returned dict is the
        record as given plus the added fields (shared, not a decoded copy).

        Concurrency: puts for different tasks run their file I/O (write, fsync, rename)
        in parallel; only the bookkeeping takes the store lock. Puts for the same task are
        serialised by a per-task lock taken before the seq is assigned, so the file on
        disk always holds the put with the highest seq. Directory fsyncs are shared: one
        fsync started after a rename covers every rename made before it.
        """
        if not isinstance(task_id, str) or not TASK_ID_RE.fullmatch(task_id):
            raise ValueError(f"invalid task_id {task_id!r}")
        if not isinstance(record, dict):
            raise ValueError("a record must be a dict")
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    self.load()
        full = dict(record)
        full["format"] = RECORD_FORMAT
        full["task_id"] = task_id
        full["stored_at"] = utc_timestamp()
        with self._task_lock(task_id):
            with self._lock:
                seq = self._next_seq
                self._next_seq += 1  # consumed even on failure: seq only ever grows
                self._temp_counter += 1
                temp_n = self._temp_counter
                self._writing.add(task_id)
            full["seq"] = seq
            try:
                return self._put_locked_task(task_id, full, seq, temp_n, trusted)
            finally:
                with self._lock:
                    self._writing.discard(task_id)

    def _put_locked_task(self, task_id: str, full: dict, seq: int, temp_n: int, trusted: bool) -> dict:
        """The body of ``put`` once the task's stripe lock is held and its seq assigned."""
        try:
            data = json.dumps(full, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"record is not JSON-serialisable: {exc}") from None
        if len(data) > MAX_RECORD_BYTES:
            raise RecordTooLarge(
                f"record for {task_id} is {len(data)} bytes; the limit is "
                f"{MAX_RECORD_BYTES} bytes (16 MiB)")
        if trusted:
            stored = full
        else:
            stored = json.loads(data)
            if self._validate_record is not None:
                try:
                    self._check_custom(stored)
                except CorruptRecord as exc:
                    raise ValueError(f"refusing to store an invalid record: {exc}") from None
        target = self.records_dir / f"{task_id}.json"
        with self._lock:
            replacing = task_id in self._index
        self._write_atomic(target, data, temp_n, replacing=replacing)
        with self._lock:
            self._renames += 1
            generation = self._renames
            self._index_insert(task_id, seq)
            self._cache[task_id] = data
            self._prune_locked()
        self._sync_records_dir(generation)
        return stored

    def _task_lock(self, task_id: str) -> threading.Lock:
        """The stripe lock serialising puts of one task (a fixed set: no cleanup needed)."""
        return self._stripes[hash(task_id) % len(self._stripes)]

    def _index_insert(self, task_id: str, seq: int) -> None:
        """Put ``task_id`` at its seq position; puts finishing out of seq order (parallel
        writers) only ever displace the few newest entries, so this stays O(writers)."""
        self._index.pop(task_id, None)
        self._index[task_id] = seq
        newer = []
        for other in reversed(self._index):
            if other == task_id:
                continue
            if self._index[other] < seq:
                break
            newer.append(other)
            if len(newer) > 64:  # cannot happen with a bounded number of writers
                break
        for other in reversed(newer):
            self._index.move_to_end(other)

    def _sync_records_dir(self, generation: int) -> None:
        """fsync ``records/`` unless an fsync that began after rename ``generation``
        already completed (group commit: concurrent writers share one fsync)."""
        with self._dir_sync_lock:
            if self._dir_synced >= generation:
                return
            with self._lock:
                upto = self._renames
            self._fsync_dir(self.records_dir)
            self._dir_synced = upto

    def _write_atomic(self, target: Path, data: bytes, temp_n: int | None = None, *,
                      replacing: bool = False) -> None:
        """Temp file (a recycled spare when one is at hand), write, fsync, then atomically
        into place: exchanged with the old version when ``replacing`` a regular file (the
        old version becomes a spare), else ``os.replace``."""
        if temp_n is None:
            with self._lock:
                self._temp_counter += 1
                temp_n = self._temp_counter
        temp, fd = self._open_temp(target, temp_n)
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            if replacing and self._exchange_into_place(temp, target):
                return
            try:
                os.replace(temp, target)
            except OSError:
                if not (target.is_dir() and not target.is_symlink()):
                    raise
                # A directory sits where the record goes: corrupt memory (§11.4).
                with self._lock:
                    self._quarantine(target, "is a directory")
                os.replace(temp, target)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise

    def _open_temp(self, target: Path, temp_n: int) -> tuple[Path, int]:
        """A spare truncated for reuse if there is one, else a new temporary file."""
        while True:
            with self._lock:
                spare = self._spares.pop() if self._spares else None
            if spare is None:
                break
            try:
                return spare, os.open(spare, os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                self._remove_stale_temp(spare)  # damaged or gone: drop it, try the next
        temp = target.parent / f".{target.name}.{os.getpid()}.{temp_n}{TEMP_SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(temp, flags, 0o644)
        except FileNotFoundError:
            # The directory vanished under us (an operator or a fault drill): recreate it.
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(temp, flags, 0o644)
        return temp, fd

    def _exchange_into_place(self, temp: Path, target: Path) -> bool:
        """Swap the written temp file with the record it replaces; the old version, now at
        the temp name, becomes a spare. False (nothing changed) when the target is not a
        regular file - damaged memory takes the ``os.replace`` path and its rules - or
        the system cannot exchange."""
        if not _is_regular_file(target) or not exchange(temp, target):
            return False
        self._keep_spare(temp)
        return True

    def _keep_spare(self, path: Path) -> None:
        """Keep ``path`` (a temp-named file in ``records/``) for reuse, or delete it when
        enough are kept."""
        with self._lock:
            if len(self._spares) < SPARES_MAX:
                self._spares.append(path)
                return
        self._remove_stale_temp(path)

    def _recycle_locked(self, path: Path) -> bool:
        """Retention without freeing the inode: rename the record to a new spare name and
        truncate it (its content is deleted as §11.3 requires). False when it is not a
        regular file or cannot be recycled (the caller unlinks as before)."""
        if len(self._spares) >= SPARES_MAX or not _is_regular_file(path):
            return False
        self._spare_counter += 1
        spare = self.records_dir / f".spare.{os.getpid()}.{self._spare_counter}{TEMP_SUFFIX}"
        try:
            os.rename(path, spare)
        except OSError:
            return False
        try:
            os.truncate(spare, 0)
        except OSError:
            self._remove_stale_temp(spare)
            return True
        self._spares.append(spare)
        return True

    def _prune_locked(self, *, recycle: bool = True) -> int:
        """Delete the oldest records until ``retention`` remain (§11.3); their inodes
        become spares (``recycle``) while fewer than SPARES_MAX are kept."""
        pruned = 0
        skipped = 0
        while len(self._index) > self.retention and skipped < len(self._index):
            task_id = next(iter(self._index))
            if task_id in self._writing:
                # Being rewritten right now: it is about to become the newest record.
                self._index.move_to_end(task_id)
                skipped += 1
                continue
            self._index.popitem(last=False)
            self._cache.pop(task_id, None)
            self._recently_pruned.append(task_id)
            path = self.records_dir / f"{task_id}.json"
            pruned += 1
            if recycle and self._recycle_locked(path):
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError:
                pass  # forgotten in memory either way; a later load prunes it again
        self.counters["pruned"] += pruned
        return pruned

    @staticmethod
    def _fsync_dir(directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ health

    def writable(self) -> bool:
        """True when a file can actually be created in ``records/`` right now.

        A real create+unlink rather than ``os.access``, which says yes to root even on a
        read-only mount. The probe is named like a temp file so a crash leaves nothing
        that a load would not clean.
        """
        probe = self.records_dir / f".probe.{os.getpid()}.{threading.get_ident()}{TEMP_SUFFIX}"
        try:
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError:
            return False
        try:
            os.close(fd)
            os.unlink(probe)
        except OSError:
            return False
        return True
