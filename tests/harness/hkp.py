"""A tiny HKP keyserver on 127.0.0.2: the real protocol over a real socket, for gpg's dirmngr.

No public keyserver is reachable from the test machine, so this stands in for one. It speaks
the part of the HKP draft (draft-shaw-openpgp-hkp, section 3) that ``gpg --recv-keys`` uses:
``GET /pks/lookup?op=get&options=mr&search=0xKEYID`` answered with the ASCII-armored key as
``application/pgp-keys``, or 404 when no key matches. ``search`` may be a long key id, a
fingerprint (both with ``0x``) or an address (``op=get`` by mail, as ``--locate-external-keys``
with ``auto-key-locate keyserver`` asks).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from .common import SERVER_HOST


class HkpServer:
    """Serves ``add``-ed keys; ``requests`` lists each lookup's query (op, search)."""

    def __init__(self, host: str = SERVER_HOST) -> None:
        self.keys: list[tuple[str, tuple[str, ...], bytes]] = []
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                op, search = query.get("op", ""), query.get("search", "")
                server.requests.append((op, search))
                found = server.find(search) if url.path == "/pks/lookup" and op == "get" else None
                if found is None:
                    self.send_error(404, "No keys found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pgp-keys")
                self.send_header("Content-Length", str(len(found)))
                self.end_headers()
                self.wfile.write(found)

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: requests are recorded in ``requests``

        self._httpd = ThreadingHTTPServer((host, 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"hkp://{host}:{port}"

    def add(self, fingerprint: str, addresses: tuple[str, ...], armored: bytes) -> None:
        self.keys.append((fingerprint.upper(), tuple(a.lower() for a in addresses), armored))

    def find(self, search: str) -> bytes | None:
        wanted = search.strip()
        for fpr, addresses, armored in self.keys:
            if wanted.lower().startswith("0x"):
                hexid = wanted[2:].upper()
                if len(hexid) >= 16 and fpr.endswith(hexid):
                    return armored
            elif wanted.strip("<>").lower() in addresses:
                return armored
        return None

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
