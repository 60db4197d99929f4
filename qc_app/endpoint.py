"""The OPC UA endpoint address of ``cellqc serve``, without asyncua.

Kept apart from :mod:`qc_app.serve` (which imports asyncua, ~0.7 s) so that ``cellqc serve
--help`` and ``cellqc serve --create-certificate`` start without it.
"""

from __future__ import annotations

from urllib.parse import urlparse

from core.errors import InputError

DEFAULT_ENDPOINT = "opc.tcp://127.0.0.1:4840/cellqc"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host in ("localhost", ""):
        return True
    try:
        import ipaddress

        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_endpoint(url: str) -> tuple[str, int, str]:
    """(host, port, path) of an ``opc.tcp://HOST:PORT/PATH`` endpoint.

    Raises
    ------
    core.errors.InputError
        Not an opc.tcp URL with a host and a port.
    """
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "opc.tcp" or not parsed.hostname or port is None:
        raise InputError(url, "not an OPC UA endpoint: give opc.tcp://HOST:PORT/cellqc")
    return parsed.hostname, port, parsed.path
