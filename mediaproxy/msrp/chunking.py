"""Sending a message as chunks (RFC 4975 section 5.1 and 7.1.1).

A message larger than one chunk is cut into byte ranges, each chunk its own transaction and
all but the last ending in ``+``.  Chunking lets a sender interrupt a message (end a chunk
early with ``+`` and resume from the next byte later) and lets relays forward large
transfers without holding them.
"""

from __future__ import annotations

from collections.abc import Iterator

from .message import (
    FLAG_ABORTED,
    FLAG_COMPLETE,
    FLAG_CONTINUES,
    ByteRange,
    Message,
    new_transaction_id,
)

__all__ = ["chunks", "abort_chunk", "DEFAULT_CHUNK_SIZE"]

#: RFC 4975 section 7.1.1 asks senders to keep chunks small so others' messages interleave
DEFAULT_CHUNK_SIZE = 2048


def chunks(headers: list[tuple[str, str]], body: bytes, chunk_size: int = DEFAULT_CHUNK_SIZE,
           start: int = 1, total: int | None = None) -> Iterator[Message]:
    """The SEND chunks carrying ``body`` from byte ``start`` (1-based) of a message of
    ``total`` bytes (default: ``start - 1 + len(body)``).  ``headers`` (To-Path, From-Path,
    Message-ID, Content-Type, report requests) go on every chunk, Byte-Range is added."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    total = start - 1 + len(body) if total is None else total
    offset = 0
    while True:
        piece = body[offset:offset + chunk_size]
        first = start + offset
        last_byte = first + len(piece) - 1
        done = last_byte >= total
        msg = Message(new_transaction_id(), method="SEND", headers=list(headers), body=piece,
                      flag=FLAG_COMPLETE if done else FLAG_CONTINUES)
        msg.set("Byte-Range", str(ByteRange(first, last_byte, total)))
        yield msg
        offset += len(piece)
        if done or offset >= len(body):
            return


def abort_chunk(headers: list[tuple[str, str]], start: int, total: int | None) -> Message:
    """An empty chunk ending in ``#``: the sender gives the message up (section 7.1.1)."""
    msg = Message(new_transaction_id(), method="SEND", headers=list(headers), flag=FLAG_ABORTED)
    msg.set("Byte-Range", str(ByteRange(start, start - 1, total)))
    return msg
