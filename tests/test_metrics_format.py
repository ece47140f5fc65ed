"""runtime/metrics.py: Prometheus text format 0.0.4, checked strictly.

Two independent judges: a strict pure-Python checker written here from the format's
rules (HELP/TYPE before samples, escaping, Go floats, counters ``_total``, cumulative
histogram buckets ending in ``+Inf`` == ``_count``), and ``promtool check metrics`` from
Debian's ``prometheus`` package when it is installed
(``apt-get install -y --no-install-recommends prometheus``).
"""
import math
import re
import shutil
import subprocess
import threading

import pytest
from hypothesis import given, settings, strategies as st

from reference_impl.runtime.metrics import (CONTENT_TYPE, DEFAULT_BUCKETS, Registry,
                                            format_value)

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
GO_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]Inf|NaN")
SAMPLE = re.compile(rf"({NAME})(\{{.*\}})? (\S+)")


def unescape(text: str, allowed: dict) -> str:
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            assert nxt in allowed, f"invalid escape \\{nxt} in {text!r}"
            out.append(allowed[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_labels(body: str) -> dict:
    """Parse ``{a="x",b="y"}`` strictly (only \\\\, \\" and \\n escapes)."""
    assert body.startswith("{") and body.endswith("}"), body
    inner, labels, i = body[1:-1], {}, 0
    while i < len(inner):
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", inner[i:])
        assert m, f"bad label at {inner[i:]!r}"
        name = m.group(1)
        i += m.end()
        value = []
        while True:
            assert i < len(inner), f"unterminated label value in {body!r}"
            ch = inner[i]
            if ch == "\\":
                nxt = inner[i + 1]
                assert nxt in ('\\', '"', "n"), f"invalid escape \\{nxt}"
                value.append({"\\": "\\", '"': '"', "n": "\n"}[nxt])
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                assert ch != "\n"
                value.append(ch)
                i += 1
        assert name not in labels, f"duplicate label {name}"
        labels[name] = "".join(value)
        if i < len(inner):
            assert inner[i] == ",", f"expected ',' in {body!r}"
            i += 1
            assert i < len(inner), "trailing comma"
    return labels


def check_exposition(text: str) -> dict:
    """Strictly validate ``text``; return {family: {help, type, samples}}."""
    assert text == "" or text.endswith("\n")
    families, current, seen_series = {}, None, set()
    for line in text.split("\n")[:-1]:
        assert line, "blank line"
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            assert re.fullmatch(NAME, name) and name not in families, line
            families[name] = {"help": unescape(help_text, {"\\": "\\", "n": "\n"}),
                              "type": None, "samples": []}
            current = name
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert name == current and families[name]["type"] is None, "TYPE without HELP"
            assert not families[name]["samples"]
            assert kind in ("counter", "gauge", "histogram"), kind
            families[name]["type"] = kind
        else:
            assert not line.startswith("#"), line
            m = SAMPLE.fullmatch(line)
            assert m, f"bad sample line {line!r}"
            name, body, value = m.groups()
            assert current is not None and families[current]["type"], "sample before TYPE"
            kind = families[current]["type"]
            allowed = {current} if kind != "histogram" else {
                current + s for s in ("_bucket", "_sum", "_count")}
            assert name in allowed, f"{name} outside its family {current}"
            if kind == "counter":
                assert name.endswith("_total")
            assert GO_FLOAT.fullmatch(value), f"bad value {value!r}"
            labels = parse_labels(body) if body else {}
            series = (name, tuple(sorted(labels.items())))
            assert series not in seen_series, f"duplicate series {series}"
            seen_series.add(series)
            families[current]["samples"].append((name, labels, float(value.replace("Inf", "inf"))))
    for name, fam in families.items():
        assert fam["type"], f"{name} has no TYPE"
        if fam["type"] == "counter":
            assert name.endswith("_total")
            assert all(v >= 0 for _, _, v in fam["samples"])
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    groups = {}
    for sname, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            assert "le" in labels
            g["buckets"].append((labels["le"], value))
        elif sname.endswith("_sum"):
            assert "le" not in labels
            g["sum"] = value
        else:
            assert "le" not in labels
            g["count"] = value
    for key, g in groups.items():
        assert g["buckets"] and g["sum"] is not None and g["count"] is not None, key
        les = [le for le, _ in g["buckets"]]
        assert les[-1] == "+Inf" and "+Inf" not in les[:-1]
        bounds = [float(le.replace("Inf", "inf")) for le in les]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), les
        counts = [c for _, c in g["buckets"]]
        assert counts == sorted(counts), f"{name}{key}: buckets not cumulative"
        assert all(c == int(c) for c in counts)
        assert counts[-1] == g["count"], f"{name}{key}: +Inf != _count"


def promtool_check(text: str) -> None:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.skip("promtool not installed: apt-get install -y --no-install-recommends prometheus")
    proc = subprocess.run([exe, "check", "metrics"], input=text.encode(), capture_output=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b"", (
        proc.returncode, proc.stdout.decode(), proc.stderr.decode(), text)


NASTY = ['plain', 'back\\slash', 'quo"te', 'new\nline', 'all \\"\n\\n', '', 'ünï☃',
         '{brace}', 'x="y",z', ' # HELP fake']


def full_registry() -> Registry:
    """The SPEC §13.1 metric set, with hostile label values and help texts."""
    r = Registry()
    req = r.counter("faultdrill_requests_total", "Protocol requests.\nBy type \\ outcome.",
                    ("type", "outcome"))
    dur = r.histogram("faultdrill_request_duration_seconds", "Request duration.", ("type",))
    for i, value in enumerate(NASTY):
        req.inc(type=value, outcome="ok")
        req.inc(i + 0.5, type=value, outcome="busy")
        dur.observe(0.001 * (10 ** (i % 5)), type=value)
    r.gauge("faultdrill_connections_open", "Open connections.").set(3)
    r.gauge("faultdrill_memory_records", "Stored records.", fn=lambda: 17)
    r.counter("faultdrill_memory_corruptions_total", "Corrupt files met.").inc()
    r.counter("faultdrill_memory_pruned_total", "Records pruned.")
    steps = r.counter("faultdrill_steps_executed_total", "Steps executed.", ("step",))
    steps.inc(step="collect")
    r.counter("faultdrill_steps_replayed_total", "Steps replayed.", ("step",))
    tasks = r.counter("faultdrill_tasks_total", "Finished tasks.", ("status",))
    tasks.inc(2, status="succeeded")
    tasks.inc(status="failed")
    r.counter("faultdrill_step_retries_total", "Step retries.", ("step",)).inc(step="analyze")
    r.counter("faultdrill_busy_rejections_total", "Busy rejections.")
    r.gauge("faultdrill_queue_depth", "Queued tasks.").set(0)
    td = r.histogram("faultdrill_task_duration_seconds", "Task duration.", buckets=(0.1, 1, 10))
    for v in (0.05, 0.1, 0.5, 5, 50, float("inf")):
        td.observe(v)
    r.gauge("odd_values", "Gauge edge values.", ("k",))
    r.get("odd_values").set(-1.5e-7, k="small")
    r.get("odd_values").set(1e300, k="big")
    r.get("odd_values").set(float("nan"), k="nan")
    r.get("odd_values").set(float("-inf"), k="neginf")
    return r


def test_full_registry_passes_the_strict_checker():
    text = full_registry().render()
    fams = check_exposition(text)
    assert fams["faultdrill_requests_total"]["help"] == "Protocol requests.\nBy type \\ outcome."
    got = {s[1]["type"] for s in fams["faultdrill_requests_total"]["samples"]}
    assert got == set(NASTY)
    td = fams["faultdrill_task_duration_seconds"]["samples"]
    assert [(s[1].get("le"), s[2]) for s in td if s[0].endswith("_bucket")] == [
        ("0.1", 2), ("1.0", 3), ("10.0", 4), ("+Inf", 6)]
    assert ("faultdrill_memory_records", {}, 17.0) in fams["faultdrill_memory_records"]["samples"]
    assert fams["faultdrill_memory_pruned_total"]["samples"] == [
        ("faultdrill_memory_pruned_total", {}, 0.0)]
    assert fams["faultdrill_steps_replayed_total"]["samples"] == []
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_full_registry_passes_promtool():
    promtool_check(full_registry().render())


def test_prometheus_client_parser_agrees():
    parser = pytest.importorskip("prometheus_client.parser")
    fams = {f.name: f for f in parser.text_string_to_metric_families(full_registry().render())}
    req = fams["faultdrill_requests"]  # the client strips _total from counter families
    values = {(s.labels["type"], s.labels["outcome"]): s.value for s in req.samples}
    assert values[("new\nline", "ok")] == 1 and values[('quo"te', "busy")] == 2.5
    assert fams["faultdrill_request_duration_seconds"].type == "histogram"


def test_checker_rejects_broken_expositions():
    bad = [
        "x_total 1\n",                                          # no HELP/TYPE
        "# TYPE x_total counter\n# HELP x_total h\nx_total 1\n",  # TYPE before HELP
        "# HELP x h\n# TYPE x counter\nx 1\n",                  # counter without _total
        '# HELP g h\n# TYPE g gauge\ng{a="un"escaped"} 1\n',    # bad label escaping
        '# HELP g h\n# TYPE g gauge\ng{a="x\\t"} 1\n',          # invalid escape
        "# HELP g h\n# TYPE g gauge\ng inf\n",                  # python float spelling
        "# HELP g h\n# TYPE g gauge\ng 1",                      # no final newline
        '# HELP h h\n# TYPE h histogram\nh_bucket{le="1.0"} 2\nh_bucket{le="+Inf"} 1\n'
        "h_sum 1\nh_count 1\n",                                 # not cumulative
        '# HELP h h\n# TYPE h histogram\nh_bucket{le="1.0"} 1\nh_bucket{le="+Inf"} 2\n'
        "h_sum 1\nh_count 3\n",                                 # +Inf != count
        '# HELP h h\n# TYPE h histogram\nh_bucket{le="1.0"} 1\nh_sum 1\nh_count 1\n',  # no +Inf
        "# HELP g h\n# TYPE g gauge\ng 1\ng 2\n",               # duplicate series
    ]
    for text in bad:
        with pytest.raises(AssertionError):
            check_exposition(text)


def test_format_value():
    assert format_value(3) == "3" and format_value(2.0) == "2" and format_value(0.25) == "0.25"
    assert format_value(float("inf")) == "+Inf" and format_value(float("-inf")) == "-Inf"
    assert format_value(float("nan")) == "NaN" and format_value(1e-7) == "1e-07"
    for v in (1e300, -3.5, 1e16, 123456789.125):
        s = format_value(v)
        assert GO_FLOAT.fullmatch(s) and float(s) == v


def test_api_errors_and_idempotent_registration():
    r = Registry()
    with pytest.raises(ValueError):
        r.counter("requests", "no _total")
    with pytest.raises(ValueError):
        r.counter("bad-name_total", "h")
    c = r.counter("a_total", "h", ("x",))
    assert r.counter("a_total", "h", ("x",)) is c
    with pytest.raises(ValueError):
        r.gauge("a_total", "h")
    with pytest.raises(ValueError):
        c.inc(-1, x="1")
    with pytest.raises(ValueError):
        c.inc(float("nan"), x="1")
    with pytest.raises(ValueError):
        c.inc(1)  # missing label
    with pytest.raises(ValueError):
        c.inc(1, x="1", y="2")
    with pytest.raises(ValueError):
        r.histogram("h", "h", ("le",))
    with pytest.raises(ValueError):
        r.histogram("h2", "h", buckets=(1, 0.5))
    h = r.histogram("h3", "h")
    with pytest.raises(ValueError):
        h.observe(float("nan"))
    with pytest.raises(ValueError):
        r.gauge("h3_count", "clash")
    with pytest.raises(ValueError):
        r.gauge("cb", "h", ("x",), fn=lambda: 1)
    with pytest.raises(ValueError):
        r.gauge("cb2", "h", fn=lambda: 1).set(3)
    with pytest.raises(ValueError):
        r.gauge("lbl", "h", ("__x",))


def test_values_and_failing_callback():
    r = Registry()
    g = r.gauge("g", "h")
    g.inc(5)
    g.dec(2)
    assert g.value() == 3

    def boom():
        raise RuntimeError("gone")
    r.gauge("cb", "h", fn=boom)
    fams = check_exposition(r.render())
    assert fams["cb"]["samples"] == []
    h = r.histogram("lat_seconds", "h", buckets=(1, 2))
    h.observe(1)
    h.observe(1.5)
    h.observe(3)
    v = h.value()
    assert v.count == 3 and v.sum == 5.5
    assert [c for _, c in v.buckets] == [1, 2, 3] and math.isinf(v.buckets[-1][0])
    assert list(DEFAULT_BUCKETS) == sorted(DEFAULT_BUCKETS)


def test_thread_safety_exact_counts():
    r = Registry()
    c = r.counter("n_total", "h", ("t",))
    h = r.histogram("d_seconds", "h")

    def worker(i):
        for j in range(2000):
            c.inc(t=str(i % 2))
            h.observe(j / 1000)
            if j % 500 == 0:
                check_exposition(r.render())
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert c.value(t="0") + c.value(t="1") == 12000 and h.value().count == 12000


label_text = st.text(alphabet=st.sampled_from('ab\\"\n{}=, #é☃\t\r') | st.characters(),
                     max_size=12)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(help_text=label_text,
       values=st.lists(st.tuples(label_text, st.integers(0, 10**6)), max_size=6),
       obs=st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), max_size=20),
       buckets=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
                        max_size=6, unique=True))
def test_property_render_is_valid_and_round_trips(help_text, values, obs, buckets):
    r = Registry()
    c = r.counter("p_total", help_text, ("v",))
    expected = {}
    for v, n in values:
        c.inc(n, v=v)
        expected[v] = expected.get(v, 0) + n
    h = r.histogram("p_seconds", help_text, ("v",), buckets=sorted(buckets))
    for x in obs:
        h.observe(x, v="only")
    fams = check_exposition(r.render())
    assert fams["p_total"]["help"] == help_text
    assert {s[1]["v"]: s[2] for s in fams["p_total"]["samples"]} == expected
    if obs:
        count = [s for s in fams["p_seconds"]["samples"] if s[0] == "p_seconds_count"]
        assert count[0][2] == len(obs)
        for bound, cum in h.value(v="only").buckets:
            assert cum == sum(1 for x in obs if x <= bound)


def test_property_outputs_pass_promtool_sample():
    # One combined exposition of awkward inputs, judged by promtool (spawning per example
    # would be slow); the property test above covers the wide input space.
    r = Registry()
    c = r.counter("mix_total", 'help with \\ and "quotes"\nand newline', ("v",))
    for i, v in enumerate(NASTY + ["\t tab", "\r cr", "\\\\", '\\"', "\n\n"]):
        c.inc(i, v=v)
    h = r.histogram("mix_seconds", "h", ("v",), buckets=(-5, 0, 1e-9, 3.5, 1e12))
    for x in (-10, -5, 0, 1e-10, 2, 1e13):
        h.observe(x, v="a\\b")
    text = r.render()
    check_exposition(text)
    promtool_check(text)
