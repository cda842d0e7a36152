"""The status server's address taken or not ours: a typed ListenError, whose
``in_use`` and ``reason`` the agent turns into its config errors."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from edge_agent.web.server import ListenError, StatusServer


def _server(host: str, port: int) -> StatusServer:
    status = SimpleNamespace(host=host, port=port, listen=f"{host}:{port}", auth=None, public=False, loopback=True)
    return StatusServer(SimpleNamespace(cfg=SimpleNamespace(status=status)))  # type: ignore[arg-type]


async def test_a_port_in_use_is_a_listen_error_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = _server("127.0.0.1", port)
        with pytest.raises(ListenError) as err:
            await server.start()
    assert err.value.in_use and err.value.where == f"127.0.0.1:{port}"
    assert err.value.reason == "Address already in use"
    assert str(err.value) == f"status server cannot listen on 127.0.0.1:{port}: Address already in use"
    assert isinstance(err.value, RuntimeError)  # what start() raised before the error had a type
    assert server._runner is None and server._sockets == []
    await server.stop()


async def test_an_address_not_ours_is_a_listen_error_not_in_use():
    server = _server("192.0.2.1", 8080)  # TEST-NET-1: no interface of this machine has it
    with pytest.raises(ListenError) as err:
        await server.start()
    assert not err.value.in_use and err.value.reason == "Cannot assign requested address"
    await server.stop()
