"""Which worker handles a UDP datagram (``sipproxy.runtime.edge.owner_of``): requests and
foreign responses by Call-ID; responses to our own requests by the worker in our branch."""

from __future__ import annotations

import zlib

import pytest

from sipproxy.runtime.edge import owner_of


def _response(via: str, call_id: str = "abc@host") -> bytes:
    return (f"SIP/2.0 200 OK\r\nVia: {via}\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKother.0.aaaaaaaaaaaa\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 2 NOTIFY\r\nContent-Length: 0\r\n\r\n").encode()


def _by_call_id(call_id: str, workers: int) -> int:
    return zlib.crc32(call_id.encode()) % workers


@pytest.mark.parametrize("branch, worker", [
    ("z9hG4bKpa.1.0123456789ab", 1),            # the presence agent's NOTIFY
    ("z9hG4bKbye.3.0123456789ab", 3),           # the cut-off's BYE
    ("z9hG4bK5f3a2c.2.abcdefabcdef", 2),        # a relayed request (loop hash, worker, random)
])
def test_a_response_goes_to_the_worker_in_our_branch(branch, worker):
    data = _response(f"SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport=5060")
    assert owner_of(data, 4) == worker


@pytest.mark.parametrize("via", [
    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1234",                     # not our shape
    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKpa.7.0123456789ab",        # no such worker
    "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKpa.1.0123456789abcd",      # longer random part
    "SIP/2.0/UDP 127.0.0.1:5060",                                         # no branch
])
def test_other_responses_go_by_call_id(via):
    assert owner_of(_response(via, "xyz@host"), 4) == _by_call_id("xyz@host", 4)


def test_only_the_top_via_counts():
    """The second Via names worker 0 in our shape; the top one is not ours: by Call-ID."""
    data = _response("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKphone", "q@host")
    assert owner_of(data, 3) == _by_call_id("q@host", 3)


def test_requests_go_by_call_id_whatever_their_via():
    data = (b"NOTIFY sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKpa.1.0123456789ab\r\n"
            b"Call-ID: r@host\r\nCSeq: 2 NOTIFY\r\n\r\n")
    assert owner_of(data, 4) == _by_call_id("r@host", 4)
    assert owner_of(b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n", 4) is None
