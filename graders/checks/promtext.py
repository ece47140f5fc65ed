"""A strict checker for the Prometheus text exposition format 0.0.4.

Why our own: prometheus_client's parser is lax (it accepts samples without TYPE lines,
unescaped values, unsorted buckets), so it cannot tell a candidate their output would be
rejected by a strict scraper. This follows the format document: HELP/TYPE before a
family's first sample, one TYPE per family, families not interleaved, label values
escaped (backslash, double quote, newline only), counters named *_total, histogram
buckets with ascending `le` ending in `+Inf` equal to `_count`, cumulative bucket counts.
Pure: text in, (families, problems) out.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


@dataclass
class Family:
    name: str
    type: str | None = None
    help: str | None = None
    samples: list = field(default_factory=list)   # (name, labels dict, value float)


def _parse_value(text: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)", text):
        raise ValueError(f"bad sample value {text!r}")
    return float(text)


def _parse_labels(s: str, i: int) -> tuple[dict, int]:
    """s[i] == '{'; returns labels and the index after '}'."""
    labels: dict[str, str] = {}
    i += 1
    while True:
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        m = _LABEL.match(s, i)
        if not m:
            raise ValueError(f"bad label name at column {i + 1}")
        name = m.group()
        i = m.end()
        if s[i:i + 2] != '="':
            raise ValueError(f"expected =\" after label {name}")
        i += 2
        val = []
        while True:
            if i >= len(s):
                raise ValueError(f"unterminated value of label {name}")
            ch = s[i]
            if ch == "\\":
                nxt = s[i + 1:i + 2]
                if nxt == "n":
                    val.append("\n")
                elif nxt in ("\\", '"'):
                    val.append(nxt)
                else:
                    raise ValueError(f"invalid escape \\{nxt} in label {name}")
                i += 2
                continue
            if ch == '"':
                i += 1
                break
            if ch == "\n":
                raise ValueError(f"raw newline in label {name}")
            val.append(ch)
            i += 1
        if name in labels:
            raise ValueError(f"duplicate label {name}")
        labels[name] = "".join(val)
        if i < len(s) and s[i] == ",":
            i += 1
            continue
        if i < len(s) and s[i] == "}":
            return labels, i + 1
        raise ValueError(f"expected , or }} after label {name}")


def _family_of(sample_name: str, families: dict) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if sample_name.endswith(suffix):
            base = sample_name[: -len(suffix)]
            if base in families and families[base].type in ("histogram", "summary"):
                return base
    return sample_name


def parse(text: str) -> tuple[dict[str, Family], list[str]]:
    families: dict[str, Family] = {}
    problems: list[str] = []
    closed: set[str] = set()
    current: str | None = None
    seen_series: set = set()
    if text and not text.endswith("\n"):
        problems.append("the exposition must end with a newline")
    for lineno, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        where = f"line {lineno}"
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] in ("HELP", "TYPE"):
                if len(parts) < 3:
                    problems.append(f"{where}: {parts[1]} without a metric name")
                    continue
                name = parts[2]
                if not _NAME.fullmatch(name):
                    problems.append(f"{where}: invalid metric name {name!r}")
                    continue
                fam = families.get(name)
                if fam is None:
                    fam = families[name] = Family(name)
                elif name in closed or (fam.samples and current != name):
                    problems.append(f"{where}: {parts[1]} for {name} after its samples or "
                                    "after another family (families must not interleave)")
                if current is not None and current != name:
                    closed.add(current)
                current = name
                rest = parts[3] if len(parts) > 3 else ""
                if parts[1] == "TYPE":
                    if fam.type is not None:
                        problems.append(f"{where}: second TYPE line for {name}")
                    if rest not in TYPES:
                        problems.append(f"{where}: unknown type {rest!r} for {name}")
                    fam.type = rest
                    if fam.samples:
                        problems.append(f"{where}: TYPE for {name} after its first sample")
                else:
                    if fam.help is not None:
                        problems.append(f"{where}: second HELP line for {name}")
                    if re.search(r"\\[^\\n]", rest.replace("\\\\", "")):
                        problems.append(f"{where}: HELP for {name} has an invalid escape")
                    fam.help = rest
            continue
        m = _NAME.match(line)
        if not m:
            problems.append(f"{where}: not a sample line: {line[:80]!r}")
            continue
        sname = m.group()
        i = m.end()
        labels: dict = {}
        try:
            if i < len(line) and line[i] == "{":
                labels, i = _parse_labels(line, i)
            if i >= len(line) or line[i] != " ":
                raise ValueError("expected a space before the value")
            fields = line[i + 1:].strip().split(" ")
            if not fields or len(fields) > 2 or fields == [""]:
                raise ValueError("expected a value and an optional timestamp")
            value = _parse_value(fields[0])
            if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
                raise ValueError(f"bad timestamp {fields[1]!r}")
        except ValueError as exc:
            problems.append(f"{where}: {exc}: {line[:120]!r}")
            continue
        fname = _family_of(sname, families)
        fam = families.get(fname)
        if fam is None or fam.type is None:
            problems.append(f"{where}: sample {sname} has no # TYPE line before it")
            fam = families.setdefault(fname, Family(fname))
        if fam.help is None and fname not in closed:
            problems.append(f"{where}: sample {sname} has no # HELP line before it")
            fam.help = ""
        if fname in closed or (current is not None and current != fname):
            problems.append(f"{where}: sample {sname} is not grouped with its family {fname}")
            if current is not None:
                closed.add(current)
            current = fname
        key = (sname, tuple(sorted(labels.items())))
        if key in seen_series:
            problems.append(f"{where}: duplicate series {sname}{labels}")
        seen_series.add(key)
        fam.samples.append((sname, labels, value))
    for fam in families.values():
        problems += _check_family(fam)
    return families, problems


def _check_family(fam: Family) -> list[str]:
    out = []
    if fam.type == "counter":
        if not fam.name.endswith("_total"):
            out.append(f"counter {fam.name} should end in _total")
        for s, labels, v in fam.samples:
            if v < 0 or math.isnan(v):
                out.append(f"counter {s}{labels} has value {v}")
    if fam.type == "histogram":
        groups: dict = {}
        for s, labels, v in fam.samples:
            rest = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
            g = groups.setdefault(rest, {"buckets": [], "count": None, "sum": None})
            if s == fam.name + "_bucket":
                if "le" not in labels:
                    out.append(f"{s} without an le label")
                    continue
                try:
                    le = _parse_value(labels["le"])
                except ValueError:
                    out.append(f"{s} has a bad le {labels['le']!r}")
                    continue
                g["buckets"].append((le, v))
            elif s == fam.name + "_count":
                g["count"] = v
            elif s == fam.name + "_sum":
                g["sum"] = v
            else:
                out.append(f"histogram {fam.name} has a stray sample {s}")
        for rest, g in groups.items():
            b = g["buckets"]
            les = [le for le, _ in b]
            if les != sorted(les):
                out.append(f"histogram {fam.name}{dict(rest)}: buckets not in ascending le order")
            if not b or les[-1] != math.inf:
                out.append(f"histogram {fam.name}{dict(rest)}: no +Inf bucket")
            elif g["count"] is None or b[-1][1] != g["count"]:
                out.append(f"histogram {fam.name}{dict(rest)}: +Inf bucket {b[-1][1]} != _count {g['count']}")
            counts = [v for _, v in b]
            if counts != sorted(counts):
                out.append(f"histogram {fam.name}{dict(rest)}: bucket counts are not cumulative")
            if g["sum"] is None:
                out.append(f"histogram {fam.name}{dict(rest)}: no _sum")
    return out


def value(families: dict[str, Family], name: str, **labels) -> float:
    """Sum of the samples named `name` whose labels include `labels` (0 when absent)."""
    base = _family_of(name, families) if name not in families else name
    fam = families.get(base) or families.get(name)
    if fam is None:
        return 0.0
    total = 0.0
    for s, lab, v in fam.samples:
        if s == name and all(lab.get(k) == str(x) for k, x in labels.items()):
            total += v
    return total
