"""Counters, gauges and histograms rendered in Prometheus text format 0.0.4 (SPEC §13.1).

Why hand-written: the reference is standard-library only, and the exposition format is
small but exacting - ``# HELP``/``# TYPE`` before samples, escaping in help text and label
values, cumulative histogram buckets ending in ``+Inf`` equal to ``_count``, counters
named ``_total``, Go-parsable floats. Getting any of that wrong makes a scrape fail, so
the rules live here in one place and the tests check them strictly (and with promtool).

Thread-safe: one lock per metric guards its children; ``render`` snapshots under it.
"""

from __future__ import annotations

import math
import re
import threading
from typing import Callable, Iterable, NamedTuple

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def format_value(value: float | int) -> str:
    """A sample value as Prometheus (Go ``ParseFloat``) reads it."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def format_le(bound: float) -> str:
    """A bucket bound for the ``le`` label; ``+Inf`` for the last bucket."""
    if math.isinf(bound):
        return "+Inf"
    return repr(float(bound))


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs)
    return "{" + inner + "}" if inner else ""


def _check_number(value, what: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return value


class HistogramValue(NamedTuple):
    """A snapshot of one histogram child: cumulative ``buckets`` as (le, count) pairs."""
    count: int
    sum: float
    buckets: tuple[tuple[float, int], ...]


class _Metric:
    type_name = ""

    def __init__(self, name: str, help: str, labels: Iterable[str]):
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        labels = tuple(labels)
        for label in labels:
            if not _LABEL_RE.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"duplicate label names for {name}")
        self.name = name
        self.help = str(help)
        self.labels = labels
        self._lock = threading.Lock()
        self._children: dict[tuple[str, ...], object] = {}

    def _key(self, labels: dict) -> tuple[str, ...]:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {list(self.labels)}, "
                             f"got {sorted(labels)}")
        return tuple(str(labels[name]) for name in self.labels)

    def _header(self) -> list[str]:
        return [f"# HELP {self.name} {escape_help(self.help)}",
                f"# TYPE {self.name} {self.type_name}"]

    def _series(self, key: tuple[str, ...], extra: tuple[tuple[str, str], ...] = ()) -> str:
        return _format_labels(tuple(zip(self.labels, key)) + extra)


class Counter(_Metric):
    """A monotonically increasing count. Names must end in ``_total`` (SPEC §13.1)."""
    type_name = "counter"

    def __init__(self, name, help, labels=()):
        super().__init__(name, help, labels)
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in _total")
        if not self.labels:
            self._children[()] = 0

    def inc(self, amount: float | int = 1, **labels) -> None:
        _check_number(amount, "counter increment")
        if not (amount >= 0 and math.isfinite(amount)):
            raise ValueError(f"counter increment must be finite and >= 0, got {amount!r}")
        key = self._key(labels)
        with self._lock:
            self._children[key] = self._children.get(key, 0) + amount

    def value(self, **labels) -> float | int:
        key = self._key(labels)
        with self._lock:
            return self._children.get(key, 0)

    def render_lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._children.items())
        return self._header() + [f"{self.name}{self._series(k)} {format_value(v)}"
                                 for k, v in items]


class Gauge(_Metric):
    """A value that goes up and down; with ``fn`` it is read at render time."""
    type_name = "gauge"

    def __init__(self, name, help, labels=(), fn: Callable[[], float] | None = None):
        super().__init__(name, help, labels)
        if fn is not None and self.labels:
            raise ValueError(f"gauge {name}: a callback gauge cannot have labels")
        self._fn = fn
        if not self.labels and fn is None:
            self._children[()] = 0

    def set(self, value: float | int, **labels) -> None:
        self._require_settable()
        _check_number(value, "gauge value")
        key = self._key(labels)
        with self._lock:
            self._children[key] = value

    def inc(self, amount: float | int = 1, **labels) -> None:
        self._require_settable()
        _check_number(amount, "gauge increment")
        key = self._key(labels)
        with self._lock:
            self._children[key] = self._children.get(key, 0) + amount

    def dec(self, amount: float | int = 1, **labels) -> None:
        self.inc(-_check_number(amount, "gauge decrement"), **labels)

    def _require_settable(self) -> None:
        if self._fn is not None:
            raise ValueError(f"gauge {self.name} is computed by a callback")

    def value(self, **labels) -> float | int:
        key = self._key(labels)
        if self._fn is not None:
            return self._fn()
        with self._lock:
            return self._children.get(key, 0)

    def render_lines(self) -> list[str]:
        if self._fn is not None:
            try:
                value = _check_number(self._fn(), "gauge callback result")
            except Exception:
                return self._header()  # a failing callback must not break the scrape
            return self._header() + [f"{self.name} {format_value(value)}"]
        with self._lock:
            items = sorted(self._children.items())
        return self._header() + [f"{self.name}{self._series(k)} {format_value(v)}"
                                 for k, v in items]


class Histogram(_Metric):
    """Observations counted into cumulative buckets, plus ``_sum`` and ``_count``."""
    type_name = "histogram"

    def __init__(self, name, help, labels=(), buckets: Iterable[float] = DEFAULT_BUCKETS):
        super().__init__(name, help, labels)
        if "le" in self.labels:
            raise ValueError(f"histogram {name}: 'le' is reserved")
        bounds = [float(_check_number(b, "bucket bound")) for b in buckets]
        if any(math.isnan(b) for b in bounds) or bounds != sorted(set(bounds)):
            raise ValueError(f"histogram {name}: buckets must be strictly increasing")
        if bounds and math.isinf(bounds[-1]) and bounds[-1] > 0:
            bounds.pop()
        if any(math.isinf(b) for b in bounds):
            raise ValueError(f"histogram {name}: -Inf is not a bucket bound")
        self.bounds = tuple(bounds) + (math.inf,)
        if not self.labels:
            self._children[()] = self._empty()

    def _empty(self) -> list:
        return [[0] * len(self.bounds), 0.0, 0]  # per-bucket counts, sum, count

    def observe(self, value: float | int, **labels) -> None:
        _check_number(value, "observation")
        if math.isnan(value):
            raise ValueError(f"histogram {self.name}: cannot observe NaN")
        key = self._key(labels)
        index = next(i for i, b in enumerate(self.bounds) if value <= b)
        with self._lock:
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._empty()
            child[0][index] += 1
            child[1] += value
            child[2] += 1

    def value(self, **labels) -> HistogramValue:
        key = self._key(labels)
        with self._lock:
            child = self._children.get(key) or self._empty()
            counts, total, count = list(child[0]), child[1], child[2]
        cumulative, running = [], 0
        for bound, n in zip(self.bounds, counts):
            running += n
            cumulative.append((bound, running))
        return HistogramValue(count, total, tuple(cumulative))

    def render_lines(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c[0]), c[1], c[2])) for k, c in self._children.items())
        out = self._header()
        for key, (counts, total, count) in items:
            running = 0
            for bound, n in zip(self.bounds, counts):
                running += n
                series = self._series(key, (("le", format_le(bound)),))
                out.append(f"{self.name}_bucket{series} {running}")
            out.append(f"{self.name}_sum{self._series(key)} {format_value(total)}")
            out.append(f"{self.name}_count{self._series(key)} {count}")
        return out


class Registry:
    """Named metrics in registration order; ``render`` is one scrape's text."""

    def __init__(self):
        self._lock = threading.Lock()
        self._metrics: dict[str, _Metric] = {}

    def _register(self, cls, name, help, labels, **kw):
        with self._lock:
            existing = self._metrics.get(name)
            if existing is not None:
                if type(existing) is not cls or existing.labels != tuple(labels):
                    raise ValueError(f"metric {name} already registered differently")
                return existing
            for other in self._metrics.values():
                if isinstance(other, Histogram) and name in (
                        other.name + "_bucket", other.name + "_sum", other.name + "_count"):
                    raise ValueError(f"metric {name} clashes with histogram {other.name}")
            metric = cls(name, help, labels, **kw)
            if isinstance(metric, Histogram):
                clash = {name + s for s in ("_bucket", "_sum", "_count")} & set(self._metrics)
                if clash:
                    raise ValueError(f"histogram {name} clashes with {sorted(clash)}")
            self._metrics[name] = metric
            return metric

    def counter(self, name: str, help: str, labels: Iterable[str] = ()) -> Counter:
        return self._register(Counter, name, help, tuple(labels))

    def gauge(self, name: str, help: str, labels: Iterable[str] = (),
              fn: Callable[[], float] | None = None) -> Gauge:
        return self._register(Gauge, name, help, tuple(labels), fn=fn)

    def histogram(self, name: str, help: str, labels: Iterable[str] = (),
                  buckets: Iterable[float] = DEFAULT_BUCKETS) -> Histogram:
        return self._register(Histogram, name, help, tuple(labels), buckets=tuple(buckets))

    def get(self, name: str) -> _Metric | None:
        with self._lock:
            return self._metrics.get(name)

    def render(self) -> str:
        with self._lock:
            metrics = list(self._metrics.values())
        lines: list[str] = []
        for metric in metrics:
            lines.extend(metric.render_lines())
        return "\n".join(lines) + "\n" if lines else ""
