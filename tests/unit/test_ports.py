from __future__ import annotations

import socket
from pathlib import Path

from packflow.runtime.broker import HOST, free_port_block, port_in_use


def test_free_port_blocks_are_free_and_below_the_ephemeral_range() -> None:
    # An outgoing connection can take any ephemeral port between the check and the bind.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(20):
        base = free_port_block(6)
        assert 10000 <= base and base + 6 <= low
        assert not any(port_in_use(p) for p in range(base, base + 6))


def test_a_listening_port_is_in_use() -> None:
    with socket.socket() as server:
        server.bind((HOST, free_port_block(1)))
        server.listen()
        assert port_in_use(server.getsockname()[1])
