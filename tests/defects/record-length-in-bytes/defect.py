"""A record's length is counted in UTF-8 bytes instead of code points.

The mistake: SPEC §8.1 rejects a record `too_long` when it "has more than 4096 characters
(Unicode code points)"; this collector measures the encoded bytes (what `len` gives on a
byte string in Go, or `Buffer.byteLength` in Node.js), so a record of 4096 code points
that holds non-ASCII characters is rejected `too_long` although it is valid. ASCII
records, the usual test data, are unaffected. Patched: the collector's ``parse_record``.
"""
from launch_common import patch


def _make(original):
    from reference_impl.work.collect import MAX_RECORD_CHARS, Rejected

    def parse_record(seq, record):
        if isinstance(record, str) and len(record.encode("utf-8")) > MAX_RECORD_CHARS:
            raise Rejected("too_long")          # the mistake: bytes, not code points
        return original(seq, record)
    return parse_record


patch("reference_impl.work.collect:parse_record", _make)
