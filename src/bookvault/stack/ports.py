"""Refusing to start on a port something else already uses, with a line that says what to do."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from bookvault.stack.errors import StackError


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR so a recently closed connection in TIME_WAIT does not count as "in use".
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def ensure_port_free(host: str, port: int, component: str, setting: str) -> None:
    if not port_is_free(host, port):
        raise StackError(f"port {port} ({component}) is in use: stop what uses it or set {setting}")


def free_port_block(ports: Mapping[str, int], host: str = "127.0.0.1", step: int = 100) -> dict[str, int]:
    """`ports`, or the first copy shifted by a multiple of `step` whose ports are all free
    (so two test sessions on one machine do not collide)."""
    for shift in range(0, 10 * step, step):
        shifted = {name: port + shift for name, port in ports.items()}
        if all(port_is_free(host, port) for port in shifted.values()):
            return shifted
    raise StackError(f"no free block of ports near {sorted(ports.values())}: stop what uses them")
