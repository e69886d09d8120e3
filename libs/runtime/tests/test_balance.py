"""Workers' shares of connections: the board picks the least loaded other worker, and a
handed-over connection arrives whole on the receiving side. (`mlplane serve --workers
2` splitting a burst evenly is checked with the registry, which it serves.)"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

from mlplane_runtime.platform.balance import ConnectionBalancer


def test_a_new_connection_goes_to_the_least_loaded_other_worker() -> None:
    balancer = ConnectionBalancer(3)
    balancer.seat(0)
    # The others are not running yet: nothing goes to them.
    assert balancer.target(held=50) is None
    balancer.vacate(0)
    balancer.seat(1)
    balancer.publish(4)
    balancer.seat(2)
    balancer.publish(6)
    balancer.seat(0)
    assert balancer.target(held=3) is None  # fewer than any other: keep it
    assert balancer.target(held=4) is None  # as few as the least loaded: keep it
    assert balancer.target(held=5) == 1
    balancer.vacate(1)  # worker 1 exited
    assert balancer.target(held=5) is None
    assert balancer.target(held=7) == 2
    balancer.leave()  # worker 0 stops: its slot shows it absent
    balancer.seat(2)
    assert balancer.target(held=100) is None


async def test_a_handed_over_connection_arrives_whole() -> None:
    balancer = ConnectionBalancer(2)
    balancer.seat(1)
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    adopted: asyncio.Queue[socket.socket] = asyncio.Queue()

    def adopt(connection: socket.socket, held: Callable[[], None]) -> None:
        adopted.put_nowait(connection)
        held()

    balancer.receive(adopt)
    try:
        assert balancer.load(1) == 0
        assert balancer.hand_over(1, accepted.fileno())
        assert balancer.load(1) == 1  # on its way
        accepted.close()  # the sender's copy: the connection lives on in the other
        received = await asyncio.wait_for(adopted.get(), 5)
        balancer.publish(1)
        assert balancer.load(1) == 1  # held now, no longer on its way
        client.sendall(b"ping")
        assert received.recv(4) == b"ping"
        received.sendall(b"pong")
        assert client.recv(4) == b"pong"
        received.close()
    finally:
        balancer.stop_receiving()
        client.close()
        listener.close()
