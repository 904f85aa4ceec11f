"""qemu's `guestfwd=tcp:10.0.2.100:443-cmd:python3 guest_relay.py PORT`: slirp starts this
once per guest connection with the connection as stdin/stdout; it relays the bytes to the
host's test HTTPS server on 127.0.0.1:PORT (a `tcp:` chardev instead would be one connection
made at qemu's start and shared by every guest connection)."""

from __future__ import annotations

import os
import selectors
import socket
import sys


def relay(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as upstream:
        upstream.settimeout(None)
        selector = selectors.DefaultSelector()
        selector.register(0, selectors.EVENT_READ)
        selector.register(upstream, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj == 0:
                    data = os.read(0, 65536)
                    if not data:
                        upstream.shutdown(socket.SHUT_WR)
                        selector.unregister(0)
                        continue
                    upstream.sendall(data)
                else:
                    data = upstream.recv(65536)
                    if not data:
                        return
                    view = memoryview(data)
                    while view:
                        view = view[os.write(1, view):]


if __name__ == "__main__":
    relay(int(sys.argv[1]))
