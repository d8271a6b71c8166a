"""A private HTTPS server on loopback serving fixed documents (autoconfig tests), with a
certificate from the test CA for the names it is asked to serve."""

from __future__ import annotations

import http.server
import ssl
import threading
from pathlib import Path
from types import TracebackType

from .ca import TestCA
from .common import SERVER_HOST


class HttpsServer:
    def __init__(
        self, ca: TestCA, workdir: Path, names: list[str], documents: dict[str, bytes]
    ) -> None:
        """``documents``: "/path" (with query, if any) -> body; anything else is a 404."""
        self.documents = documents
        self.requests: list[str] = []
        chain, key = ca.issue(workdir, *names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(f"{self.headers.get('Host')}{self.path}")
                body = outer.documents.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((SERVER_HOST, 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> HttpsServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
