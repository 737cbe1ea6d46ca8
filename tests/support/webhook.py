"""A real webhook receiver on loopback: an HTTP server that keeps every JSON body posted to it."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    def __init__(self, server: ThreadingHTTPServer):
        self.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        self.received: list[dict] = []
        self._lock = threading.Lock()

    def keep(self, body: dict) -> None:
        with self._lock:
            self.received.append(body)

    def wait_for(self, matches: Callable[[dict], bool], seconds: float) -> dict:
        """The first body posted that `matches`, waiting up to `seconds` for it."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self._lock:
                found = [body for body in self.received if matches(body)]
            if found:
                return found[0]
            time.sleep(0.5)
        raise AssertionError(f"no matching notification in {seconds:g} s; received: {self.received}")


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver: WebhookReceiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the name http.server calls
            length = int(self.headers.get("Content-Length", 0))
            receiver.keep(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *arguments):  # quiet: the test reads what was kept
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
