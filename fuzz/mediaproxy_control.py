"""Fuzz target: the media relay's control protocol, one JSON request a line
(`mediaproxy.control.parse_request`; `handle_line` answers from it).

Properties: only `ControlError` (which `handle_line` turns into an error reply); the time
bound; a request that decodes, written back as the proxy writes requests (one JSON object,
`sipproxy.media.relay`'s field names), decodes to the same request.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from fuzz._common import check, expect_only, time_bound
from mediaproxy.control import ControlError, parse_request


def write(req) -> bytes:
    msg: dict = {"id": req.id, "command": req.command}
    if req.command != "ping":
        msg.update(call_id=req.call_id, from_tag=req.from_tag, to_tag=req.to_tag, reason=req.reason)
    if req.command == "update":
        msg["direction"] = req.direction
        msg["streams"] = [{"type": s.media_type, "ip": s.address, "port": s.port, "rtcp_port": s.rtcp_port,
                           "rtcp_ip": s.rtcp_address, "codec": s.codec, "direction": s.direction,
                           "rtcp_mux": s.rtcp_mux} for s in req.streams]
    return json.dumps(msg, separators=(",", ":")).encode() + b"\n"


def TestOneInput(data: bytes) -> None:  # noqa: N802
    with time_bound():
        req = expect_only((ControlError,), parse_request, data)
        if req is None:
            return
        line = write(req)
        again = expect_only((), parse_request, line)
        check(asdict(again) == asdict(req) or _nan_id(req),
              f"written and read again, the request changes: {req!r} -> {again!r}")


def _nan_id(req) -> bool:
    """An ``id`` of NaN (json reads it) never equals itself; nothing else differs then."""
    return isinstance(req.id, float) and req.id != req.id


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
