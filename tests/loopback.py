"""Ports on 127.0.0.1 for the test servers the tests start themselves (moto, the simulator)."""

from __future__ import annotations

import socket
import time


def free_port() -> int:
    """A port the kernel picks as free now (another process may take it before the server binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process=None, seconds: float = 30.0) -> None:
    """Until something accepts on 127.0.0.1:``port``; RuntimeError when ``process`` exits or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")
