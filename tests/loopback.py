"""What the test servers share: a threaded HTTP server on 127.0.0.1, up for the length of a ``with`` block.

A server subclasses :class:`LoopbackServer` and answers in ``do_GET`` / ``do_HEAD`` / ``do_POST``
methods of its own, each given the request handler.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _dispatch(self) -> None:
        answer = getattr(self.server.owner, f"do_{self.command}", None)
        if answer is None:
            self.send_error(501)
        else:
            answer(self)

    do_GET = do_HEAD = do_POST = _dispatch


class LoopbackServer:
    """Serves the subclass's ``do_<METHOD>`` methods on a free local port (``url``, plus ``path``)."""

    def __init__(self, path: str = ""):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.owner = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
