"""The one timestamp format (SPEC §12): RFC 3339 UTC, milliseconds truncated."""
import datetime as dt
import re
import threading

from hypothesis import given, settings, strategies as st

from reference_impl.protocol.timestamps import rfc3339_ms

SHAPE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def reference_format(epoch: float) -> str:
    """The slow, obviously right version: integer microseconds, truncated to ms."""
    micros = int(round(epoch * 1_000_000))
    whole, frac = divmod(micros, 1_000_000)
    stamp = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(seconds=whole)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{frac // 1000:03d}Z"


@settings(max_examples=500, derandomize=True)
@given(st.integers(min_value=0, max_value=4_102_444_800_000), st.integers(min_value=0, max_value=999))
def test_matches_the_slow_formatter_on_whole_microseconds(millis, micros):
    epoch = millis / 1000 + micros / 1_000_000 + 1e-7
    assert rfc3339_ms(epoch) == reference_format(epoch)
    via_datetime = dt.datetime.fromtimestamp(epoch, tz=dt.timezone.utc)
    assert rfc3339_ms(epoch) == via_datetime.strftime("%Y-%m-%dT%H:%M:%S.") + f"{via_datetime.microsecond // 1000:03d}Z"
    assert SHAPE.match(rfc3339_ms(epoch))


def test_known_values_and_second_boundaries():
    assert rfc3339_ms(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339_ms(1764427831.1239) == "2025-11-29T14:50:31.123Z"
    assert rfc3339_ms(1764427831.9994) == "2025-11-29T14:50:31.999Z"      # truncates the ms
    assert rfc3339_ms(1764427831.9999999) == "2025-11-29T14:50:32.000Z"   # rounds the µs, as datetime
    assert rfc3339_ms(1764427832.0) == "2025-11-29T14:50:32.000Z"
    assert rfc3339_ms(1764427831.5) == "2025-11-29T14:50:31.500Z"          # the cache follows back


def test_the_cached_prefix_is_never_mixed_up_across_threads():
    bad = []

    def worker(base):
        for i in range(2000):
            epoch = base + (i % 7) + 0.25
            if rfc3339_ms(epoch) != reference_format(epoch):
                bad.append(epoch)
    threads = [threading.Thread(target=worker, args=(1_700_000_000 + 100 * k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert bad == []
