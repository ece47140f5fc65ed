"""Durable memory: one record file per task, atomic replace, retention, quarantine."""

from .store import MAX_RECORD_BYTES, RecordStore, RecordTooLarge, utc_timestamp

__all__ = ["MAX_RECORD_BYTES", "RecordStore", "RecordTooLarge", "utc_timestamp"]
