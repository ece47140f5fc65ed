"""The token echoed in a reply: a msg_id or task_id holding the token comes back.

The mistake: in_reply_to and task_id are copied from the request without asking whether
they contain the token, so a request whose msg_id embeds the token gets it back in the
reply (SPEC §5: replies never contain the token). Patched: ``parse_request`` no longer
refuses such fields and ``readable_msg_id``/``readable_task_id`` ignore the token.
"""
from launch_common import patch


def _ignore_token(original):
    def readable(obj, token=None):
        return original(obj)
    return readable


def _accept_token_fields(original):
    def parse_request(obj, *, token, served_types):
        fields = {k: obj[k] for k in ("msg_id", "task_id") if isinstance(obj, dict) and isinstance(obj.get(k), str)}
        masked = dict(obj, **{k: "x" for k in fields if token in fields[k]}) if fields else obj
        request = original(masked, token=token, served_types=served_types)
        if masked is not obj:
            request.msg_id = obj.get("msg_id", request.msg_id)
            request.task_id = obj.get("task_id", request.task_id)
            request.raw = obj
        return request
    return parse_request


patch("reference_impl.protocol.envelope:readable_msg_id", _ignore_token)
patch("reference_impl.protocol.envelope:readable_task_id", _ignore_token)
patch("reference_impl.agents.base:parse_request", _accept_token_fields)
