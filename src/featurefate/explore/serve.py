"""Serve the explorer's folder on 127.0.0.1 with Python's ``http.server``."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # one line per request is noise in a terminal
        pass


def serve(directory, *, port: int = 0, background: bool = False) -> ThreadingHTTPServer:
    """Serve ``directory`` on ``http://127.0.0.1:PORT/`` (``port=0``: a free port).

    With ``background`` the server runs in a daemon thread and is returned at once (stop it with
    ``server.shutdown(); server.server_close()``); otherwise this blocks until interrupted.
    ``server.server_address[1]`` is the port.
    """
    directory = Path(directory)
    if not (directory / "index.html").is_file():
        raise ValueError(f"directory must hold index.html; got {directory}")
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be an integer in [0, 65535]; got {port}")
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
    if background:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return server
