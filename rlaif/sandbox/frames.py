"""Framing between the pool, its workers and their zygotes (standard library only).

The pool and a worker talk over pipes in frames: a 4-byte big-endian length, then a JSON object.
The worker and its zygote talk over a SOCK_SEQPACKET socket, which keeps message boundaries; a
zygote that closes it or stops answering within the time allowed raises :class:`ZygoteGone`.
Guarantees: a frame is written whole (short writes are retried) and read whole, or ``None`` at end
of file. Not guaranteed: any check of what a frame contains -- the callers validate it.
"""

from __future__ import annotations

import json
import os
import socket
import struct

ZYGOTE_ANSWER_S = 30.0


class ZygoteGone(RuntimeError):
    """The zygote stopped answering: this worker cannot run anything any more."""


# -- framing on the worker's pipes ----------------------------------------------------------------
def send_frame(fd: int, obj) -> None:
    data = json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()
    write_all(fd, struct.pack(">I", len(data)) + data)


def recv_frame(fd: int):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">I", head)
    body = _read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        chunk = os.read(fd, min(size - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_message(sock: socket.socket, timeout: float = ZYGOTE_ANSWER_S) -> bytes:
    """One message of the zygote (a SOCK_SEQPACKET socket keeps message boundaries)."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(1 << 16)
    except OSError as exc:  # TimeoutError included
        raise ZygoteGone(f"the zygote did not answer ({exc!r})") from None
    finally:
        sock.settimeout(None)
    if not data:
        raise ZygoteGone("the zygote closed its socket")
    return data
