"""Helpers for the load generator's tests (a unique module name, so other test dirs' helpers cannot shadow it)."""

import random
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "bench"))


# Below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 on Debian): a port the kernel
# hands out (bind to 0) is one it may hand again to any outgoing connection, a client's or NGINX's, before the
# test's server binds it; CI saw "port 127.0.0.1:43421 is in use" that way. Each port is given out once.
_PORTS = list(range(20000, 32768))
random.shuffle(_PORTS)


def free_port() -> int:
    while _PORTS:
        port = _PORTS.pop()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port left below the ephemeral range")
