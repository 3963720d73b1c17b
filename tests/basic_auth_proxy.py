"""A loopback HTTP proxy that asks for basic auth before it forwards to a service: a Schema
Registry behind credentials (as Confluent Cloud's or a secured in-house one) for the tests,
in front of the real registry, which itself needs none."""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class BasicAuthProxy:
    """Serves http://127.0.0.1:`port`, forwarding to `target` (a base URL) the requests that
    carry `user:password`; answers 401 to the others, and counts them in `refused`."""

    def __init__(self, target: str, user: str, password: str) -> None:
        wanted = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        proxy = self
        self.refused = 0

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                if self.headers.get("Authorization") != wanted:
                    proxy.refused += 1
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="registry"')
                    self.send_header("Content-Type", "application/json")
                    body = b'{"error_code": 401, "message": "Unauthorized"}'
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                size = int(self.headers.get("Content-Length") or 0)
                request = urllib.request.Request(
                    target.rstrip("/") + self.path,
                    data=self.rfile.read(size) if size else None,
                    method=self.command,
                    headers={
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() in ("content-type", "accept")
                    },
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as response:
                        status, body, kind = response.status, response.read(), response.headers
                except urllib.error.HTTPError as exc:
                    status, body, kind = exc.code, exc.read(), exc.headers
                self.send_response(status)
                self.send_header("Content-Type", kind.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
