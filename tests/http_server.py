"""A local HTTP server for download tests: serves files the test made, optionally with HTTP Range.

A path maps to the bytes of a file, or to a :class:`Reply` for a server that misbehaves the way
real ones do (a 403, a 202 with an HTML challenge page, a body cut short of its Content-Length).
"""

import http.server
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class Reply:
    """A fixed answer: ``status``, ``body`` and extra ``headers``; ``declared_length`` announces
    a Content-Length other than the body's (larger: the connection closes early)."""

    body: bytes = b""
    status: int = 200
    headers: dict = field(default_factory=dict)
    declared_length: int | None = None


class LocalServer:
    """Serves ``files`` (path -> bytes or :class:`Reply`) on 127.0.0.1, optionally honouring HTTP Range."""

    def __init__(self, files, ranges=True):
        self.files, self.ranges, self.requests, self.cookies = files, ranges, [], []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                server.cookies.append(self.headers.get("Cookie"))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                if isinstance(data, Reply):
                    self.send_response(data.status)
                    for key, value in data.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(data.declared_length or len(data.body)))
                    self.end_headers()
                    self.wfile.write(data.body)
                    self.close_connection = True
                    return
                start = 0
                if server.ranges and self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url(path: str) -> str:
    """A URL on 127.0.0.1 where nothing listens: connecting fails at once, as offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
