"""uvicorn's h11 protocol with the server's error shape below the app: 431 for oversized headers, 400 for
a request h11 cannot parse, both as ``{"error": "<one line>"}``, and a lingering close.

uvicorn answers both with a plain-text 400 and closes the socket at once; with the rest of a 1 MB header
still unread, the kernel then resets the connection and the client sees "connection reset" instead of
the answer. Here the answer is sent, the write side shut, and what the client still sends is read and
dropped (up to ``DRAIN_BYTES`` or ``DRAIN_S``) before closing, as nginx's lingering close does. The
server names this class itself, so uvicorn's "auto" choice (httptools when installed) cannot bypass it.
"""

from __future__ import annotations

import json
from http import HTTPStatus

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from swinir.serve.limits import MAX_HEADER_BYTES, header_limit_message

DRAIN_BYTES = 16 << 20
DRAIN_S = 5.0


class GuardedH11Protocol(H11Protocol):
    """Selected with ``uvicorn.Config(http=GuardedH11Protocol, h11_max_incomplete_event_size=MAX_HEADER_BYTES)``."""

    _draining = False
    _drained = 0

    def send_400_response(self, msg: str) -> None:
        unread, _ = self.conn.trailing_data
        if len(unread) > MAX_HEADER_BYTES:
            status = 431
            error = header_limit_message()
        else:
            status, error = 400, "invalid HTTP request: it could not be parsed as HTTP/1.1"
        body = json.dumps({"error": error}).encode()
        head = h11.Response(
            status_code=status,
            reason=HTTPStatus(status).phrase.encode(),
            headers=[
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        )
        self.transport.write(
            self.conn.send(head) + self.conn.send(h11.Data(data=body)) + self.conn.send(h11.EndOfMessage())
        )
        self._linger()

    def _linger(self) -> None:
        self._draining = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(DRAIN_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self._draining:
            self._drained += len(data)
            if self._drained > DRAIN_BYTES:
                self.transport.close()
            return
        super().data_received(data)

    def eof_received(self) -> None:
        if self._draining:
            self.transport.close()

    def shutdown(self) -> None:
        if self._draining:  # the answer is out; h11 (in its error state) has nothing more to say
            self.transport.close()
            return
        super().shutdown()
