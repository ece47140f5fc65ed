"""Toxiproxy's toxic JSON <-> the fault proxy's toxics (pure: dicts in, dataclasses out).

Why Toxiproxy's vocabulary and units: people who have used Toxiproxy type
`{"type": "latency", "attributes": {"latency": 300}}` without reading anything; the
control API accepts exactly that JSON (`name`, `type`, `stream`, `toxicity`,
`attributes`), with Toxiproxy's defaults (stream `downstream`, toxicity 1.0, name
`<type>_<stream>`). faultdrill's frame-aware toxics (`drop_reply`, `duplicate`, `corrupt`,
`partition`) use the same shape.

Every bad input raises `ToxicError` with one sentence saying what is wrong; nothing here
touches a socket.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from ..faults import proxy as fp

__all__ = ["ToxicError", "TOXIC_TYPES", "parse_toxic", "toxic_json", "ToxicSpec"]


class ToxicError(ValueError):
    """A toxic JSON object that cannot be applied (the API answers 400 with the message)."""


@dataclass(frozen=True)
class _Attr:
    name: str            # Toxiproxy attribute name
    field: str           # fault proxy dataclass field
    kind: str            # "int", "float", "prob", "str?"
    default: Any


@dataclass(frozen=True)
class _Type:
    cls: type
    attrs: tuple[_Attr, ...]
    default_stream: str
    summary: str


_I, _F, _P, _S = "int", "float", "prob", "str?"
#: type name -> how its attributes map; units are Toxiproxy's (ms, KB/s, µs, bytes).
TOXIC_TYPES: dict[str, _Type] = {
    "latency": _Type(fp.Latency, (_Attr("latency", "latency_ms", _I, 0),
                                   _Attr("jitter", "jitter_ms", _I, 0)), "downstream",
                     "delay data by latency ms (± jitter ms)"),
    "bandwidth": _Type(fp.Bandwidth, (_Attr("rate", "rate_kb_s", _F, 1.0),), "downstream",
                       "limit to rate KB/s"),
    "slow_close": _Type(fp.SlowClose, (_Attr("delay", "delay_ms", _I, 0),), "downstream",
                        "delay the close by delay ms"),
    "timeout": _Type(fp.Timeout, (_Attr("timeout", "timeout_ms", _I, 0),), "downstream",
                     "drop all data; close after timeout ms (0: never)"),
    "reset_peer": _Type(fp.ResetPeer, (_Attr("timeout", "timeout_ms", _I, 0),), "downstream",
                        "reset the connection (TCP RST) after timeout ms"),
    "slicer": _Type(fp.Slicer, (_Attr("average_size", "average_size", _I, 1),
                                _Attr("size_variation", "size_variation", _I, 0),
                                _Attr("delay", "delay_us", _I, 0)), "downstream",
                    "cut data into average_size-byte slices, delay µs apart"),
    "limit_data": _Type(fp.LimitData, (_Attr("bytes", "bytes", _I, 0),), "downstream",
                        "close the connection after bytes bytes"),
    "drop_reply": _Type(fp.DropReply, (_Attr("match", "match", _S, None),), "downstream",
                        "deliver the request, lose its reply (only replies to `match` requests)"),
    "duplicate": _Type(fp.Duplicate, (_Attr("match", "match", _S, None),), "upstream",
                       "deliver each request twice (only `match` requests)"),
    "corrupt": _Type(fp.Corrupt, (_Attr("probability", "probability", _P, 1.0),), "downstream",
                     "flip one byte in a frame with probability"),
    "partition": _Type(fp.Partition, (), "upstream",
                       "drop everything in one direction, keep the connection open"),
}
_NAME_OF = {t.cls: name for name, t in TOXIC_TYPES.items()}
_KNOWN_KEYS = {"name", "type", "stream", "toxicity", "attributes"}


@dataclass(frozen=True)
class ToxicSpec:
    """A validated toxic: its API name and JSON, and the proxy toxic built from it."""
    name: str
    type: str
    toxic: fp.Toxic

    def json(self) -> dict:
        return toxic_json(self.name, self.toxic)


def _number(value: Any, what: str, *, integer: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ToxicError(f"{what} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ToxicError(f"{what} must be finite")
    if integer and isinstance(value, float) and not value.is_integer():
        raise ToxicError(f"{what} must be an integer, got {value}")
    if value < 0:
        raise ToxicError(f"{what} must not be negative, got {value}")
    return value


_CONVERT: dict[str, Callable[[Any, str], Any]] = {
    _I: lambda v, w: int(_number(v, w, integer=True)),
    _F: lambda v, w: float(_number(v, w, integer=False)),
    _P: lambda v, w: _prob(v, w),
    _S: lambda v, w: _opt_str(v, w),
}


def _prob(value: Any, what: str) -> float:
    p = float(_number(value, what, integer=False))
    if p > 1.0:
        raise ToxicError(f"{what} must be within [0, 1], got {value}")
    return p


def _opt_str(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ToxicError(f"{what} must be a message type (a non-empty string of at most 64 characters)")
    return value


def parse_toxic(obj: Any) -> ToxicSpec:
    """Validate one toxic JSON object (Toxiproxy's shape) and build the proxy toxic."""
    if not isinstance(obj, dict):
        raise ToxicError("a toxic must be a JSON object with type, stream, toxicity, attributes")
    extra = sorted(set(obj) - _KNOWN_KEYS)
    if extra:
        raise ToxicError(f"unknown toxic field(s) {extra}; fields are {sorted(_KNOWN_KEYS)}")
    ttype = obj.get("type")
    if ttype not in TOXIC_TYPES:
        raise ToxicError(f"unknown toxic type {ttype!r}; types are {', '.join(TOXIC_TYPES)}")
    spec = TOXIC_TYPES[ttype]
    stream = obj.get("stream", spec.default_stream)
    if stream not in (fp.UPSTREAM, fp.DOWNSTREAM):
        raise ToxicError(f"stream must be 'upstream' or 'downstream', got {stream!r}")
    toxicity = _prob(obj.get("toxicity", 1.0), "toxicity")
    attrs = obj.get("attributes", {})
    if attrs is None:
        attrs = {}
    if not isinstance(attrs, dict):
        raise ToxicError("attributes must be a JSON object")
    known = {a.name: a for a in spec.attrs}
    unknown = sorted(set(attrs) - set(known))
    if unknown:
        raise ToxicError(f"{ttype} has no attribute(s) {unknown}; it takes "
                         f"{sorted(known) or 'none'}")
    kwargs = {a.field: _CONVERT[a.kind](attrs[a.name], f"attributes.{a.name}")
              if a.name in attrs else a.default for a in spec.attrs}
    if ttype == "bandwidth" and kwargs["rate_kb_s"] <= 0:
        raise ToxicError("attributes.rate must be above 0 KB/s")
    if ttype == "slicer" and kwargs["average_size"] < 1:
        raise ToxicError("attributes.average_size must be at least 1 byte")
    name = obj.get("name") or f"{ttype}_{stream}"
    if not isinstance(name, str) or len(name) > 64 or not name.replace("_", "").replace("-", "").isalnum():
        raise ToxicError("name must be 1-64 letters, digits, '_' or '-'")
    toxic = spec.cls(stream=stream, toxicity=toxicity, **kwargs)
    return ToxicSpec(name, ttype, toxic)


def toxic_json(name: str, toxic: fp.Toxic) -> dict:
    """A proxy toxic as Toxiproxy shows it."""
    ttype = _NAME_OF[type(toxic)]
    attrs = {a.name: getattr(toxic, a.field) for a in TOXIC_TYPES[ttype].attrs}
    return {"name": name, "type": ttype, "stream": toxic.stream, "toxicity": toxic.toxicity,
            "attributes": attrs}
