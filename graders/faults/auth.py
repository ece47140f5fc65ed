"""Authentication attack frames (SPEC §7 step 2, §12 secrets).

Why: every one of these must be answered `unauthorized` (20) without executing, storing or
echoing anything, and without the token appearing anywhere; a check sends each and also
looks for the token (and the wrong tokens) in replies, logs, metrics and memory.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..client import make_request

__all__ = ["AuthAttack", "attacks", "LONG_TOKEN_BYTES"]

LONG_TOKEN_BYTES = 100 * 1024


@dataclass(frozen=True)
class AuthAttack:
    name: str
    frame: dict
    description: str
    wrong_token: str | None = None   # a secret-looking value that must never be echoed


def _wrong_same_length(token: str) -> str:
    flipped = "".join("b" if c == "a" else "a" for c in token)
    return flipped if flipped != token else token + "x"


def attacks(token: str, *, type: str = "hello", payload: dict | None = None,
            task_id: str | None = None) -> list[AuthAttack]:
    """Every attack, as complete frames built around one message (hello by default)."""
    payload = {"versions": [1], "role": "orchestrator"} if payload is None and type == "hello" \
        else (payload or {})

    def frame(tok, **extra):
        f = make_request(type, dict(payload), token=None, task_id=task_id)
        if tok is not _MISSING:
            f["token"] = tok
        f.update(extra)
        return f

    wrong = _wrong_same_length(token)
    long_token = ("L" * LONG_TOKEN_BYTES)
    out = [
        AuthAttack("missing", frame(_MISSING), "no token field"),
        AuthAttack("wrong_same_length", frame(wrong), "wrong token of the same length", wrong),
        AuthAttack("prefix", frame(token[:-1]) if len(token) > 1 else frame(token + token),
                   "a prefix of the right token (length must count)"),
        AuthAttack("extended", frame(token + "x"), "the right token plus one character"),
        AuthAttack("empty", frame(""), "empty string"),
        AuthAttack("case_changed", frame(token.swapcase()) if token.swapcase() != token
                   else frame(token + "X"), "the right token in another case"),
        AuthAttack("very_long", frame(long_token), f"{LONG_TOKEN_BYTES}-byte token", long_token),
        AuthAttack("not_a_string_int", frame(12345), "token is an integer"),
        AuthAttack("not_a_string_null", frame(None), "token is null"),
        AuthAttack("not_a_string_list", frame([token]), "the right token inside a list"),
        AuthAttack("not_a_string_object", frame({"token": token}), "the right token in an object"),
        AuthAttack("whitespace", frame(f" {token} "), "the right token with blanks around it"),
        AuthAttack("in_payload", _with_payload_token(frame(_MISSING), token),
                   "token inside the payload instead of the envelope"),
        AuthAttack("as_auth_field", frame(_MISSING, auth=token),
                   "token sent as an `auth` field"),
        AuthAttack("as_bearer", frame(_MISSING, authorization=f"Bearer {token}"),
                   "token sent as an HTTP-style authorization field"),
    ]
    return out


class _Missing:
    pass


_MISSING = _Missing()


def _with_payload_token(frame: dict, token: str) -> dict:
    frame = dict(frame)
    frame["payload"] = {**frame.get("payload", {}), "token": token}
    return frame
