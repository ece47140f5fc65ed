"""runtime/logs.py (SPEC §12): required fields, context, levels, redaction, robustness."""
import asyncio
import io
import json
import re
import threading

import pytest
from hypothesis import given, settings, strategies as st

from reference_impl.runtime.logs import (REDACTED, REQUIRED, Logger, current_context,
                                         format_ts, log_context)

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SECRET = "tok-5ecr3t-XYZ"


def make(level="debug", secrets=(SECRET,)):
    buf = io.StringIO()
    return Logger("collector", level=level, stream=buf, secrets=secrets), buf


def lines(buf):
    out = []
    for raw in buf.getvalue().split("\n")[:-1]:
        obj = json.loads(raw)
        assert isinstance(obj, dict)
        for key in REQUIRED:
            assert key in obj, (key, raw)
        assert TS_RE.match(obj["ts"]) and obj["level"] in ("debug", "info", "warn", "error")
        assert isinstance(obj["msg"], str) and isinstance(obj["service"], str)
        for key in ("task_id", "trace_id", "span_id"):
            assert obj[key] is None or isinstance(obj[key], str)
        out.append(obj)
    assert buf.getvalue() == "" or buf.getvalue().endswith("\n")
    return out


def test_required_fields_and_event():
    log, buf = make()
    log.info("started", event="startup", port=7001)
    [line] = lines(buf)
    assert line["service"] == "collector" and line["msg"] == "started"
    assert line["event"] == "startup" and line["port"] == 7001
    assert line["task_id"] is None and line["trace_id"] is None and line["span_id"] is None


def test_format_ts():
    assert format_ts(0) == "1970-01-01T00:00:00.000Z"
    assert format_ts(1795946400.1239) == "2026-11-29T10:00:00.123Z"


def test_level_filtering():
    log, buf = make(level="warn")
    log.debug("d")
    log.info("i")
    log.warn("w")
    log.warning("w2")
    log.error("e")
    assert [l["level"] for l in lines(buf)] == ["warn", "warn", "error"]
    log.set_level("debug")
    log.debug("d")
    assert lines(buf)[-1]["level"] == "debug"
    assert not Logger("x", level="error", stream=io.StringIO()).enabled("warn")
    with pytest.raises(ValueError):
        Logger("x", level="loud")


def test_log_context_nests_and_restores():
    log, buf = make()
    with log_context(task_id="t-1", trace_id="a" * 32):
        log.info("outer")
        with log_context(span_id="b" * 16, step="collect"):
            log.info("inner")
            with log_context(task_id=None):
                log.info("cleared")
        log.info("outer again")
    log.info("outside")
    a, b, c, d, e = lines(buf)
    assert (a["task_id"], a["trace_id"], a["span_id"]) == ("t-1", "a" * 32, None)
    assert (b["task_id"], b["span_id"], b["step"]) == ("t-1", "b" * 16, "collect")
    assert c["task_id"] is None and c["trace_id"] == "a" * 32
    assert d == {**d, "task_id": "t-1", "span_id": None} and "step" not in d
    assert e["task_id"] is None and e["trace_id"] is None
    assert current_context() == {}


def test_explicit_fields_override_context_but_not_required_core():
    log, buf = make()
    with log_context(task_id="t-1"):
        log.info("m", task_id="t-2", ts="bogus", level="bogus", service="bogus")
    [line] = lines(buf)
    assert line["task_id"] == "t-2" and line["level"] == "info"
    assert line["service"] == "collector" and line["field_ts"] == "bogus"


def test_context_is_per_thread_and_per_task():
    log, buf = make()
    barrier = threading.Barrier(4, timeout=10)

    def worker(i):
        with log_context(task_id=f"t-{i}"):
            barrier.wait()
            log.info("w", i=i)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)

    async def job(i):
        with log_context(task_id=f"a-{i}"):
            await asyncio.sleep(0.001)
            log.info("a", i=i)
    async def main():
        await asyncio.gather(*(job(i) for i in range(4)))
    asyncio.run(main())
    for line in lines(buf):
        prefix = "t" if line["msg"] == "w" else "a"
        assert line["task_id"] == f"{prefix}-{line['i']}"


def test_secrets_redacted_everywhere():
    log, buf = make()
    with log_context(task_id=SECRET, note=f"ctx {SECRET}"):
        log.error(f"bad {SECRET}!", event="unauthorized",
                  nested={"a": [1, {"b": f"x{SECRET}y"}], SECRET: "key", "t": (SECRET,)},
                  raw=SECRET.encode(), obj=ValueError(SECRET), s={SECRET})
    text = buf.getvalue()
    assert SECRET not in text
    [line] = lines(buf)
    assert line["msg"] == f"bad {REDACTED}!"
    assert line["nested"]["a"][1]["b"] == f"x{REDACTED}y"
    assert line["nested"][REDACTED] == "key"
    assert line["task_id"] == REDACTED and line["raw"] == REDACTED


def test_secret_with_json_special_characters():
    nasty = 'p"a\\ss\n\u00e9w'
    log, buf = make(secrets=(nasty,))
    log.info(f"x{nasty}y", field=[nasty])
    text = buf.getvalue()
    assert nasty not in text and json.dumps(nasty)[1:-1] not in text
    assert lines(buf)[0]["msg"] == f"x{REDACTED}y"


def test_overlapping_secrets_longest_first():
    log, buf = make(secrets=("abc", "abcdef"))
    log.info("zabcdefz")
    assert lines(buf)[0]["msg"] == f"z{REDACTED}z"


def test_numeric_secret_in_numbers():
    log, buf = make(secrets=("4242",))
    log.info("n", latency=142420, other=7)
    [line] = lines(buf)
    assert "4242" not in buf.getvalue() and line["latency"] == REDACTED and line["other"] == 7


def test_secret_that_is_a_field_name_still_yields_a_valid_line():
    log, buf = make(secrets=("level",))
    log.info("the level is high")
    [line] = lines(buf)
    assert "level" not in line["msg"]


class Unrepresentable:
    def __repr__(self):
        raise RuntimeError("no repr")


def test_never_raises_on_odd_values():
    log, buf = make()
    cyclic = []
    cyclic.append(cyclic)
    deep = current = {}
    for _ in range(100):
        current["d"] = {}
        current = current["d"]
    log.info(Unrepresentable(), a=Unrepresentable(), b=object(), c=float("inf"),
             d=cyclic, e=deep, f={(1, 2): "tuple key"}, g=b"\xff\xfe", h=float("nan"))
    [line] = lines(buf)
    assert line["c"] == "inf" and line["d"] == ["[cycle]"]
    assert "[too deep]" in json.dumps(line["e"]) and line["f"] == {"(1, 2)": "tuple key"}


class Broken(io.StringIO):
    def write(self, s):
        raise OSError("EPIPE")


def test_broken_stream_is_ignored():
    Logger("x", stream=Broken()).error("still fine")


def test_one_write_per_line_under_concurrency():
    class Recorder:
        def __init__(self):
            self.writes = []

        def write(self, s):
            self.writes.append(s)

        def flush(self):
            pass
    rec = Recorder()
    log = Logger("x", stream=rec, secrets=(SECRET,))

    def worker(i):
        for j in range(200):
            log.info(f"m{j}", i=i, blob="z" * (j % 50))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(rec.writes) == 1200
    for w in rec.writes:
        assert w.endswith("\n") and w.count("\n") == 1
        assert set(REQUIRED) <= set(json.loads(w))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)


@settings(max_examples=200, derandomize=True)
@given(secret=st.text(min_size=4, max_size=12), values=json_values, msg=st.text())
def test_property_secret_never_in_line_and_line_is_valid(secret, values, msg):
    buf = io.StringIO()
    log = Logger("svc", stream=buf, secrets=(secret,))
    log.info(msg + secret + msg, payload=values, again=[secret, {"k": secret}])
    text = buf.getvalue()
    assert text.count("\n") == 1
    obj = json.loads(text)
    assert set(REQUIRED) <= set(obj)
    assert secret not in text and json.dumps(secret)[1:-1] not in text
