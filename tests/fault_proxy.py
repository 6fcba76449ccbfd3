"""An HTTP proxy in front of the real node that injects faults: a fake, named as such, for what the
test node cannot do by itself (it runs without security, and nothing else answers on its behalf).

Its `fault`, changed at any time, decides each request's fate: `pass` forwards it, `slow` forwards it
after `slow_s`, `401` and `403` answer Elasticsearch's security error, `html` a web server's 200 page
without the X-Elastic-Product header, `502` a broken gateway's page, `hang` holds the request
unanswered (until the fault changes, then closes), `reset` resets the connection; with `only` set,
only the requests whose path holds it. Until `start()` nothing listens on its port: connections are
refused. Used by tests/test_engine_answers.py,
tests/test_api_faults.py and bench/drills/proxy_faults.py."""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("pass", "slow", "401", "403", "html", "502", "hang", "reset")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
              "content-length"}


def _security_error(status: int) -> bytes:
    reason = "missing authentication credentials" if status == 401 else "action is unauthorized for user [es-faq]"
    return json.dumps({"error": {"type": "security_exception", "reason": reason}, "status": status}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's pooled connections expect
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def _handle(self) -> None:
        proxy = self.server.proxy
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proxy.paths.append(f"{self.command} {self.path}")
        fault = proxy.fault if proxy.only in self.path else "pass"
        if fault == "slow":
            time.sleep(proxy.slow_s)
        if fault in ("pass", "slow"):
            self._forward(body)
        elif fault in ("401", "403"):
            self._answer(int(fault), "application/json", _security_error(int(fault)), product=True)
        elif fault == "html":
            self._answer(200, "text/html", b"<html><body><h1>It works!</h1></body></html>", product=False)
        elif fault == "502":
            self._answer(502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>", product=False)
        elif fault == "hang":
            proxy.wait_while("hang")
            self.close_connection = True
        elif fault == "reset":
            # SO_LINGER 0: close() sends a RST instead of a FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        else:
            raise ValueError(f"unknown fault {fault!r}; the faults are {', '.join(FAULTS)}")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    def _answer(self, status: int, content_type: str, data: bytes, product: bool,
                headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in headers:
            self.send_header(name, value)
        if product:
            self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _forward(self, body: bytes) -> None:
        """The request to the node on this connection's own upstream connection; its answer back."""
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        try:
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.server.proxy.upstream, timeout=120)
            self._upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = self._upstream.getresponse()
            data = answer.read()
        except (OSError, http.client.HTTPException):
            self._upstream = None
            self._answer(502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>", product=False)
            return
        kept = [(name, value) for name, value in answer.getheaders() if name.lower() not in HOP_BY_HOP
                and name.lower() not in ("content-type", "x-elastic-product")]
        self._answer(answer.status, answer.getheader("Content-Type", "application/json"), data,
                     product=answer.getheader("X-Elastic-Product") == "Elasticsearch", headers=kept)

    def handle(self) -> None:
        self.server.proxy.track(self.connection, True)
        try:
            super().handle()
        except OSError:  # the client went away, or the fault reset the connection
            pass
        finally:
            self.server.proxy.track(self.connection, False)
            if self._upstream is not None:
                self._upstream.close()

    def log_message(self, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy


class FaultProxy:
    """The proxy to `upstream` (a node's URL) on a free loopback port; `url` is what to point es_url at."""

    def __init__(self, upstream: str, fault: str = "pass", slow_s: float = 1.0):
        host, port = upstream.rstrip("/").rsplit("//", 1)[-1].rsplit(":", 1)
        self.upstream = (host, int(port))
        self.slow_s = slow_s
        self.only = ""  # the fault strikes only requests whose path holds this; the others pass through
        self.paths: list[str] = []  # "METHOD /path?query" of every request received
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._changed = threading.Condition()
        self._fault = ""
        self._stopped = False
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self.fault = fault

    @property
    def fault(self) -> str:
        return self._fault

    @fault.setter
    def fault(self, fault: str) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; the faults are {', '.join(FAULTS)}")
        with self._changed:
            self._fault = fault
            self._changed.notify_all()

    def wait_while(self, fault: str) -> None:
        """Return once the fault is no longer `fault`, or the proxy stops."""
        with self._changed:
            self._changed.wait_for(lambda: self._fault != fault or self._stopped)

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._changed:
            (self._connections.add if alive else self._connections.discard)(connection)

    def start(self) -> FaultProxy:
        self._server = _Server(("127.0.0.1", self.port), _Handler)
        self._server.proxy = self
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening, release the hung requests and close every client connection."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
            connections = list(self._connections)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
