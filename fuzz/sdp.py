"""Fuzz target: SDP bodies (`sipproxy.sip.sdp.parse`) and the relay's writer (`rewrite`).

Properties: only `SdpError`; the time bound; a body that parses, rewritten with relay ports
(`rewrite`, what the proxy does to every relayed offer and answer), parses again with the
same streams -- media type, transport, formats, direction, codec -- and the relay's ports
(and address, unless the stream was on hold).
"""

from __future__ import annotations

from fuzz._common import check, expect_only, time_bound
from sipproxy.sip.sdp import HOLD_ADDRESSES, SdpError, parse, relay_streams, rewrite

RELAY = "203.0.113.7"


def stream(m) -> tuple:
    return (m.media_type, m.proto, m.formats, m.direction, m.codec, m.rtcp_mux)


def TestOneInput(data: bytes) -> None:  # noqa: N802
    with time_bound():
        desc = expect_only((SdpError,), parse, data)
        if desc is None:
            return
        relay_streams(desc)
        ports = [{"port": 40000 + 2 * i if m.port else 0, "rtcp_port": 40001 + 2 * i}
                 for i, m in enumerate(desc.media)]
        for ice in ("replace", "add"):
            written = expect_only((), rewrite, data, RELAY, ports, ice)
            again = expect_only((), parse, written)
            check([stream(m) for m in again.media] == [stream(m) for m in desc.media],
                  f"rewrite changed the streams: {[stream(m) for m in desc.media]!r} -> "
                  f"{[stream(m) for m in again.media]!r} ({written[:400]!r})")
            check([m.port for m in again.media] == [p["port"] for p in ports],
                  f"rewrite did not put the relay ports in: {[m.port for m in again.media]!r}")
            for old, new in zip(desc.media, again.media, strict=True):
                if new.port and old.address not in HOLD_ADDRESSES:
                    check(new.address == RELAY, f"stream address {new.address!r} after rewrite")


if __name__ == "__main__":
    from fuzz.run import main_for

    main_for(__name__)
