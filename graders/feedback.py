"""Candidate-facing failure feedback: the difference first, then the context.

Why a module of its own: a failing check carries what was sent, what was expected and
what came back, and the field that matters can sit a thousand characters into a reply
(`"replay": false` deep in an envelope). Capping the evidence hides it; printing it whole
buries it. So the feedback leads with the fields that differ, each with its JSON path
(`$.payload.replay: expected true, received false`), then the evidence capped, then how
to replay the run with a command the candidate has (`faultdrill check ... --challenge
NAME --seed N`) and where to read about the challenge (its README and the starter's
`CHALLENGE(NAME)` comments).

Used by `faultdrill check` and by the student-visible Gradescope outputs. Everything here
is a pure function over plain data except `load_starter_markers`, the one edge that reads
the starter's files.

How expected values are read. Checks state what they expected in three shapes, and the
comparison follows what each means:
- a dict is a *pattern*: its keys must be present with matching values; other keys of
  the received value are not differences. The pattern is matched where it fits best in
  the received value (a check may expect `{"replay": true}` of a whole reply envelope,
  where the field sits at `$.payload.replay`);
- a list or tuple is compared item by item; a trailing `"..."` item means "and possibly
  more";
- a string against a non-string is a description: `">= 2"`-style comparisons are
  evaluated against numbers, anything else is reported as one difference at its path.
  A string against a string matches with `...` standing for any text.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from graders.decode import decode_json

# Default cap of each context value (sent / expected / received) in characters.
CONTEXT_LIMIT = 600
# At most this many differences are listed; the rest are counted.
MAX_DIFFERENCES = 12
# A value inside a difference line is cut at this many characters.
VALUE_LIMIT = 160
# How deep the best place for a dict pattern is searched for in a received value.
_ANCHOR_DEPTH = 4


class _Missing:
    """Marks a field that is absent on one side (distinct from JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()


@dataclass(frozen=True)
class Difference:
    """One field that differs: its JSON path and both sides (MISSING when absent)."""
    path: str
    expected: object
    received: object

    def line(self) -> str:
        if self.received is MISSING:
            return f"{self.path}: missing (expected {render_value(self.expected)})"
        if self.expected is MISSING:
            return f"{self.path}: not expected, received {render_value(self.received)}"
        return f"{self.path}: expected {render_value(self.expected)}, received {render_value(self.received)}"


# --------------------------------------------------------------------------- rendering values

def render_value(value, limit: int = VALUE_LIMIT) -> str:
    """A value as compact JSON (true/false/null as a JSON reader writes them), capped."""
    if isinstance(value, bytes):
        text = repr(value)
    else:
        try:
            text = json.dumps(_jsonable(value), sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
        except (TypeError, ValueError):
            text = _safe_repr(value)
        except RecursionError:
            text = _TOO_DEEP
    if len(text) > limit:
        text = text[:limit] + f"... [{len(text) - limit} more characters]"
    return text


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def cap(text: str, limit: int) -> str:
    """Cut text at `limit` characters, saying how much was left out."""
    if limit <= 0 or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def show_context(value, limit: int = CONTEXT_LIMIT) -> str:
    """Evidence as one line of text (JSON for structures), capped at `limit`."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(_jsonable(value), sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError):
            text = _safe_repr(value)
        except RecursionError:
            text = _TOO_DEEP
    return cap(text, limit)


_TOO_DEEP = "[a value nested too deeply to show]"


def _safe_repr(value) -> str:
    try:
        return repr(value)
    except RecursionError:
        return _TOO_DEEP


# --------------------------------------------------------------------------- JSON paths

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def child_path(path: str, key) -> str:
    """`$.a` + key -> `$.a.key`, `$.a[3]` or `$.a["odd key"]` (JSONPath's notation)."""
    if isinstance(key, int) and not isinstance(key, bool):
        return f"{path}[{key}]"
    key = str(key)
    return f"{path}.{key}" if _IDENT.match(key) else f"{path}[{json.dumps(key, ensure_ascii=False)}]"


# --------------------------------------------------------------------------- comparison

_COMPARATOR = re.compile(r"^\s*(>=|<=|==|>|<)\s*(-?\d+(?:\.\d+)?)\s*(\S.*)?$")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _scalar_equal(expected, received) -> bool:
    # JSON true is not 1: Python's True == 1 must not hide that difference.
    if isinstance(expected, bool) or isinstance(received, bool):
        return isinstance(expected, bool) and isinstance(received, bool) and expected == received
    if _number(expected) and _number(received):
        return expected == received
    if type(expected) is not type(received) and not (expected is None or received is None):
        return False
    return expected == received


def _description_holds(expected: str, received) -> bool | None:
    """Whether a descriptive expectation (">= 2") holds for a received number; None when
    the description is not one this module can evaluate."""
    m = _COMPARATOR.match(expected)
    if not m or not _number(received):
        return None
    op, bound = m.group(1), float(m.group(2))
    return {">=": received >= bound, "<=": received <= bound, "==": received == bound,
            ">": received > bound, "<": received < bound}[op]


def _text_matches(expected: str, received: str) -> bool:
    if "..." not in expected:
        return expected == received
    parts = [re.escape(p) for p in expected.split("...")]
    return re.fullmatch(".*".join(parts), received, flags=re.S) is not None


def _as_structure(value):
    """Received JSON text is compared as the structure it encodes."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:   # candidate bytes: the bounded decoder (`[` x 3000 must not recurse)
            return decode_json(value, what="received", max_bytes=16 * 1024 * 1024)
        except ValueError:
            return value
    return value


def _walk(expected, received, path: str, out: list[Difference]) -> None:
    if isinstance(expected, dict):
        if not isinstance(received, dict):
            out.append(Difference(path, expected, received))
            return
        for key, want in expected.items():
            p = child_path(path, key)
            if key not in received:
                out.append(Difference(p, want, MISSING))
            else:
                _walk(want, received[key], p, out)
        return
    if isinstance(expected, (list, tuple)):
        if not isinstance(received, (list, tuple)):
            out.append(Difference(path, list(expected), received))
            return
        want = list(expected)
        open_ended = bool(want) and want[-1] == "..."
        if open_ended:
            want = want[:-1]
        for i, item in enumerate(want):
            if i >= len(received):
                out.append(Difference(child_path(path, i), item, MISSING))
            else:
                _walk(item, received[i], child_path(path, i), out)
        if not open_ended:
            for i in range(len(want), len(received)):
                out.append(Difference(child_path(path, i), MISSING, received[i]))
        return
    if isinstance(expected, str) and not isinstance(received, str):
        held = _description_holds(expected, received)
        if held is not True:
            out.append(Difference(path, expected, received))
        return
    if isinstance(expected, str) and isinstance(received, str):
        if not _text_matches(expected, received):
            out.append(Difference(path, expected, received))
        return
    if not _scalar_equal(expected, received):
        out.append(Difference(path, expected, received))


def _subtrees(value, path: str = "$", depth: int = 0):
    """(path, dict) for every dict in `value`, shallowest first, to a bounded depth."""
    level = [(path, value)]
    for _ in range(_ANCHOR_DEPTH + 1):
        nxt = []
        for p, v in level:
            if isinstance(v, dict):
                yield p, v
                nxt += [(child_path(p, k), x) for k, x in v.items() if isinstance(x, (dict, list))]
            elif isinstance(v, list):
                nxt += [(child_path(p, i), x) for i, x in enumerate(v[:50]) if isinstance(x, (dict, list))]
        level = nxt


def anchor(expected, received) -> tuple[str, object]:
    """Where in `received` a dict pattern applies: the subtree holding most of the
    pattern's keys (the shallowest on a tie; the root when none holds any)."""
    if not isinstance(expected, dict) or not isinstance(received, (dict, list)):
        return "$", received
    keys = set(expected)
    best, best_hits = ("$", received), 0
    for p, sub in _subtrees(received):
        hits = len(keys & set(sub))
        if hits > best_hits:
            best, best_hits = (p, sub), hits
            if hits == len(keys):
                break
    return best


def differences(expected, received) -> list[Difference]:
    """The fields of `received` that do not match `expected`, with JSON paths. Empty when
    they match, or when nothing was expected."""
    if expected is None:
        return []
    received = _as_structure(received)
    path, target = anchor(expected, received)
    out: list[Difference] = []
    _walk(expected, target, path, out)
    return out


def differences_to_show(expected, received) -> list[Difference]:
    """The differences worth leading a failure with: none when nothing came back, and
    none when a description ("error 30 idempotency_conflict") meets a whole reply (the
    message and the evidence say that better than one `$` line)."""
    if received is None:
        return []
    try:
        diffs = differences(expected, received)
    except RecursionError:   # a reply nested deeper than Python recurses: no field list
        return []
    if (len(diffs) == 1 and diffs[0].path == "$" and isinstance(expected, str)
            and isinstance(_as_structure(received), (dict, list))):
        return []
    return diffs


# --------------------------------------------------------------------------- pointers

def replay_command(path: str, seed, challenge: str | None = None) -> str:
    """The command that replays a self-check run; it keeps --challenge."""
    parts = ["faultdrill", "check", _shell_word(str(path))]
    if challenge:
        parts += ["--challenge", challenge]
    parts += ["--seed", str(seed)]
    return " ".join(parts)


def _shell_word(s: str) -> str:
    return s if re.fullmatch(r"[A-Za-z0-9_./:@%+=,-]+", s) else "'" + s.replace("'", "'\\''") + "'"


_MARKER = re.compile(r"CHALLENGE\(([^)]*)\)")


def starter_markers(files: dict[str, str]) -> dict[str, list[str]]:
    """challenge name -> ["file:line", ...] for every `CHALLENGE(a, b)` comment in the
    starter's files (name -> text)."""
    out: dict[str, list[str]] = {}
    for name in sorted(files):
        for n, line in enumerate(files[name].splitlines(), 1):
            for m in _MARKER.finditer(line):
                for challenge in (c.strip() for c in m.group(1).split(",")):
                    if re.fullmatch(r"[a-z0-9-]+", challenge):
                        out.setdefault(challenge, []).append(f"{name}:{n}")
    return out


def load_starter_markers(starter: Path | None = None) -> dict[str, list[str]] | None:
    """The markers of the starter on disk: `starter`, else the kit's (graders.paths.STARTER),
    else ./challenges/starter (a candidate bundle installed with `pip install .` and run
    from its folder); None when none is there."""
    if starter is not None:
        places = [Path(starter)]
    else:
        from graders.paths import STARTER
        places = [STARTER, Path.cwd() / "challenges" / "starter"]
    for place in places:
        try:
            files = {p.name: p.read_text(encoding="utf-8", errors="replace")
                     for p in sorted(place.glob("*.py")) if p.is_file()}
        except OSError:
            continue
        if files:
            return starter_markers(files)
    return None


def challenge_pointer(challenge: str | None, markers: dict[str, list[str]] | None) -> str | None:
    """Where to read about a challenge: its README, and the starter's CHALLENGE(name)
    comments (file:line when known, else the grep that finds them)."""
    if not challenge:
        return None
    text = f"read challenges/{challenge}/README.md"
    if markers is None:
        text += (f"; the starter's CHALLENGE({challenge}) comments, if any, mark where this work goes: "
                 f"grep -nE 'CHALLENGE\\([^)]*{challenge}' challenges/starter/*.py")
    elif markers.get(challenge):
        spots = markers[challenge]
        shown = ", ".join(spots[:6]) + (f" and {len(spots) - 6} more" if len(spots) > 6 else "")
        text += f"; the starter marks this work with CHALLENGE({challenge}) in challenges/starter/: {shown}"
    return text


# --------------------------------------------------------------------------- the whole failure

def _field(verdict, name):
    return verdict.get(name) if isinstance(verdict, dict) else getattr(verdict, name, None)


def render_failure(verdict, *, challenge: str | None, path: str, markers: dict[str, list[str]] | None = None,
                   context_limit: int = CONTEXT_LIMIT, include_message: bool = True,
                   include_replay: bool = True) -> list[str]:
    """The lines a candidate reads for one failed check: message, what differs, the
    evidence (expected, received, sent; each capped at `context_limit`, 0 = whole), hint,
    replay, pointer.
    `verdict` is a harness Verdict or its dict (asdict) form."""
    lines: list[str] = []
    if include_message:
        lines.append(str(_field(verdict, "message") or "failed"))
    expected, received = _field(verdict, "expected"), _field(verdict, "received")
    diffs = differences_to_show(expected, received)
    if diffs:
        lines.append("what differs:")
        lines += [f"  {d.line()}" for d in diffs[:MAX_DIFFERENCES]]
        if len(diffs) > MAX_DIFFERENCES:
            lines.append(f"  ... and {len(diffs) - MAX_DIFFERENCES} more differences")
    # What came back before what was sent: the request is the long part, and the reply
    # is where the fault shows.
    for label, value in (("expected", expected), ("received", received), ("sent", _field(verdict, "sent"))):
        if value is not None:
            lines.append(f"{label}: {show_context(value, context_limit)}")
    hint = _field(verdict, "hint")
    if hint:
        lines.append(f"Hint: {hint}")
    if include_replay:
        lines.append(f"replay: {replay_command(path, _field(verdict, 'seed'), challenge)}")
    pointer = challenge_pointer(challenge, markers)
    if pointer:
        lines.append(pointer)
    return lines
