"""The wire: an HTTPS server for the fake and a CONNECT proxy that routes by host name."""

from __future__ import annotations

import contextlib
import fnmatch
import select
import socket
import socketserver
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .web import DROP, Request, Response


class _FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120  # idle keep-alive connections end, so handler threads don't outlive the stack for long
    server: FakeHttpsServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        host = (self.headers.get("Host") or "").split(":")[0].lower()
        req = Request(
            host=host,
            method=self.command,
            path=urllib.parse.unquote(parts.path),
            query=dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        resp = self.server.dispatch(req)
        if resp is DROP:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        assert isinstance(resp, Response)
        data, ctype = resp.encode()
        self.send_response(resp.status)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if ctype and "content-type" not in {k.lower() for k in resp.headers}:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", req.headers.get("x-ms-client-request-id", "fake"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class FakeHttpsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, ssl_ctx: ssl.SSLContext, dispatch: Callable[[Request], Response | object]) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.ssl_ctx = ssl_ctx
        self.dispatch = dispatch

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake per connection thread, so one slow client never blocks accept()
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # client hung up (e.g. after a dropped-connection fault)


@dataclass
class Escape:
    """A request that tried to leave the machine (unknown host, or plain-http proxying)."""

    host: str
    port: int
    method: str
    line: str


@dataclass
class ConnectLog:
    connects: list[tuple[str, int]] = field(default_factory=list)
    escapes: list[Escape] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            if len(buf) > 65536:
                return
        head, rest = buf.split(b"\r\n\r\n", 1)
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = line.split()
        method = parts[0].upper() if parts else ""
        target = parts[1] if len(parts) > 1 else ""
        if method == "CONNECT":
            host, _, port_s = target.rpartition(":")
            host = host.strip("[]").lower()
            port = int(port_s) if port_s.isdigit() else 443
        else:
            u = urllib.parse.urlsplit(target)
            host, port = (u.hostname or "").lower(), u.port or 80
        backend = self.server.route(host, port) if method == "CONNECT" else None
        log = self.server.log
        if backend is None:
            with log.lock:
                log.escapes.append(Escape(host, port, method, line))
            body = f"phi3ft offline Azure stack: refused {method} {host}:{port} (host not served offline)\n".encode()
            sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                         + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
            return
        with log.lock:
            log.connects.append((host, port))
        try:
            upstream = socket.create_connection(backend, timeout=10)
        except OSError:
            sock.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        sock.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        if rest:
            upstream.sendall(rest)
        self._pipe(sock, upstream)

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        a.settimeout(None)
        b.settimeout(None)
        socks = [a, b]
        try:
            while True:
                readable, _, _ = select.select(socks, [], [], 60)
                if not readable:
                    return
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except OSError:
            return
        finally:
            b.close()


class ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, table: list[tuple[str, Callable[[], tuple[str, int]]]]) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.table = table
        self.log = ConnectLog()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def route(self, host: str, port: int) -> tuple[str, int] | None:
        if port != 443:
            return None
        for pattern, backend in self.table:
            if fnmatch.fnmatchcase(host, pattern):
                return backend()
        return None
