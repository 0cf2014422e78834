"""A network round trip on one machine: two network namespaces joined by a delay line in userspace.

The benchmark's loopback arms cost a new TCP connection tens of microseconds; a real fleet pays a round trip
between client, load balancer and model server. `tc qdisc ... netem` is the usual tool, but this machine's
kernel has no netem (nor fq: "Specified qdisc kind is unknown"; only htb and pfifo). So each namespace gets a
TUN device, and this process moves every IP packet from one to the other after a fixed one-way delay, in both
directions: the TCP handshake, every segment and every ACK pay it, as with netem's `delay`. What differs from
netem: each packet also costs a Python read and write (the `zero_delay_rtt_s` the unit test measures, about
0.1-0.3 ms round trip here), and there is no jitter, loss or rate limit.

    with DelayedLink(one_way_s=0.0005) as link:
        link.run("client", ["python", "client.py", link.address("server")])

The namespaces and devices are created by the context manager and removed on exit (also when the body
raises); their names carry this process's id, so two runs never share them.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import queue
import select
import struct
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence

_TUNSETIFF = 0x400454CA
_CLONE_NEWNET = 0x40000000
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_MTU = 1500
# a link-local /30 of its own, so nothing outside the two namespaces is ever routed to
_ADDRESSES = {"client": "169.254.213.1", "server": "169.254.213.2"}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class DelayedLink:
    """Namespaces `client` and `server`, one point-to-point link between them with `one_way_s` each way."""

    def __init__(self, one_way_s: float, tag: str = "") -> None:
        if one_way_s < 0:
            raise ValueError(f"one_way_s must be >= 0, got {one_way_s}")
        self.one_way_s = one_way_s
        suffix = f"{os.getpid()}{tag}"
        self.namespaces = {side: f"gpf-{side[0]}{suffix}" for side in _ADDRESSES}
        self._devices = {side: f"gpft{side[0]}{suffix}"[:15] for side in _ADDRESSES}
        self._fds: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def address(self, side: str) -> str:
        return _ADDRESSES[side]

    def run(self, side: str, command: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.namespaces[side], *command], check=False, **kwargs)

    def popen(self, side: str, command: Sequence[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.namespaces[side], *command], **kwargs)

    @contextlib.contextmanager
    def inside(self, side: str) -> Iterator[None]:
        """Run the calling thread (and the processes it starts) in that namespace, then back where it was.

        Threads started before keep their namespace: the delay line's own threads stay where their
        descriptors were opened, which is all they need.
        """
        libc = ctypes.CDLL(None, use_errno=True)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.namespaces[side]}", os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {self.namespaces[side]} failed")
            try:
                yield
            finally:
                if libc.setns(home, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the original namespace failed")
        finally:
            os.close(target)
            os.close(home)

    def __enter__(self) -> DelayedLink:
        try:
            for side, peer in (("client", "server"), ("server", "client")):
                self._fds[side] = self._attach(side, peer)
            for source, target in (("client", "server"), ("server", "client")):
                self._start_direction(self._fds[source], self._fds[target])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        for namespace in self.namespaces.values():
            # deleting the namespace removes the TUN device that was moved into it
            subprocess.run(["ip", "netns", "delete", namespace], check=False, capture_output=True)
        for device in self._devices.values():
            subprocess.run(["ip", "link", "delete", device], check=False, capture_output=True)

    def _attach(self, side: str, peer: str) -> int:
        """A TUN device opened here, then moved into its namespace: the descriptor stays bound to it."""
        namespace, device = self.namespaces[side], self._devices[side]
        _ip("netns", "add", namespace)
        _ip("tuntap", "add", "dev", device, "mode", "tun")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", device.encode(), _IFF_TUN | _IFF_NO_PI))
        _ip("link", "set", device, "netns", namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        _ip("-n", namespace, "addr", "add", _ADDRESSES[side], "peer", _ADDRESSES[peer], "dev", device)
        _ip("-n", namespace, "link", "set", device, "mtu", str(_MTU), "up")
        return fd

    def _start_direction(self, source: int, target: int) -> None:
        # one reader and one writer per direction: the delay is the same for every packet, so the queue stays
        # in deadline order, and the writer sleeps until the head's deadline (time.sleep: clock_nanosleep)
        pending: queue.SimpleQueue = queue.SimpleQueue()

        def read() -> None:
            while not self._stop.is_set():
                # a bounded wait, so the thread sees the stop even when no packet comes
                if not select.select([source], [], [], 0.2)[0]:
                    continue
                try:
                    packet = os.read(source, _MTU + 64)
                except OSError:
                    return
                pending.put((time.monotonic() + self.one_way_s, packet))

        def write() -> None:
            while not self._stop.is_set():
                try:
                    deadline, packet = pending.get(timeout=0.2)
                except queue.Empty:
                    continue
                wait = deadline - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                try:
                    os.write(target, packet)
                except OSError:
                    return

        for body in (read, write):
            thread = threading.Thread(target=body, daemon=True)
            thread.start()
            self._threads.append(thread)


def echo_server(port: int, seconds: float) -> None:
    """Answer each connection's bytes with the same bytes, for at most `seconds`."""
    import socket

    with socket.create_server(("0.0.0.0", port)) as server:
        server.settimeout(seconds)
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                return
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while data := conn.recv(64):
                    conn.sendall(data)


def round_trips(host: str, port: int, count: int) -> dict[str, list[float]]:
    """Seconds per TCP connect (one round trip: SYN, SYN-ACK) and per 1-byte echo on one connection."""
    import socket

    connects, echoes = [], []
    for _ in range(count):
        started = time.perf_counter()
        with socket.create_connection((host, port), timeout=5) as conn:
            connects.append(time.perf_counter() - started)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            conn.sendall(b"x")
            conn.recv(1)
            echoes.append(time.perf_counter() - started)
    return {"connect_s": connects, "echo_s": echoes}


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1] == "serve":
        echo_server(int(sys.argv[2]), float(sys.argv[3]))
    else:
        print(json.dumps(round_trips(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
