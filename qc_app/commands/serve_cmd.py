"""``cellqc serve``: results to the line's PLC and the MES over OPC UA (docs/plant_integration.md).

``cellqc serve [--endpoint opc.tcp://HOST:PORT/cellqc] [--allow DIR ...]`` runs until Ctrl-C or
SIGTERM. ``cellqc serve --create-certificate`` makes the server's key and self-signed
certificate (for the Basic256Sha256 policy) and exits; ``serve`` then uses them by default.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from qc_app.commands.base import cellqc_home, register


def _default_pki() -> tuple[Path, Path]:
    folder = cellqc_home() / "opcua"
    return folder / "server_cert.der", folder / "server_key.pem"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from qc_app.endpoint import DEFAULT_ENDPOINT

    p.add_argument("--endpoint", default=DEFAULT_ENDPOINT,
                   help=f"where to listen and what clients connect to (default {DEFAULT_ENDPOINT}); on the plant "
                        "network give the station's address, e.g. opc.tcp://10.1.2.3:4840/cellqc")
    p.add_argument("--allow", action="append", default=[], metavar="DIR",
                   help="a folder whose volumes Inspect may read (repeatable; none: Inspect is refused)")
    p.add_argument("--db", help="SQLite log: users, filing, audit (default $CELLQC_HOME/cellqc.db)")
    p.add_argument("--recipe", default=None, help="the recipe active at start (default 18650-nmc)")
    p.add_argument("--out", metavar="DIR", help="JSON results and PDF reports of Inspect (default $CELLQC_HOME/serve)")
    p.add_argument("--no-report", action="store_true", help="Inspect writes no PDF")
    p.add_argument("--voxel-size", help="µm, one number or z,y,x, for volumes that do not state theirs")
    p.add_argument("--certificate", metavar="FILE",
                   help="the server's certificate (DER or PEM); default $CELLQC_HOME/opcua/server_cert.der if there")
    p.add_argument("--private-key", metavar="FILE",
                   help="its private key (PEM); default $CELLQC_HOME/opcua/server_key.pem if there")
    p.add_argument("--require-encryption", action="store_true",
                   help="offer only Basic256Sha256 SignAndEncrypt (no unencrypted endpoint, also not for reading)")
    p.add_argument("--follow-interval", type=float, default=1.0, metavar="S",
                   help="seconds between looks at the log for results filed by other processes (default 1)")
    p.add_argument("--create-certificate", action="store_true",
                   help="create the key and a self-signed certificate (at --certificate/--private-key or the "
                        "defaults) for the endpoint's host and --hostname, then exit")
    p.add_argument("--hostname", action="append", default=[], metavar="NAME",
                   help="with --create-certificate: another DNS name or IP address clients use (repeatable)")
    p.add_argument("--days", type=int, default=730, help="with --create-certificate: validity (default 730)")
    p.add_argument("--overwrite", action="store_true", help="with --create-certificate: replace existing files")


def _create_certificate(args: argparse.Namespace, cert: Path, key: Path) -> int:
    from core.plant import certificate_summary, create_certificate
    from qc_app.endpoint import parse_endpoint

    host, _, _ = parse_endpoint(args.endpoint)
    hostnames = [host, *args.hostname, socket.gethostname(), socket.getfqdn()]
    uri = f"urn:cellqc:station:{socket.gethostname()}"
    create_certificate(cert, key, application_uri=uri, hostnames=hostnames, days=args.days,
                       overwrite=args.overwrite)
    info = certificate_summary(cert)
    print(f"certificate {cert}\nprivate key {key} (mode 600: keep it on this machine)\n"
          f"subject {info['subject']}; valid until {info['not_after']}\n"
          f"names {', '.join(map(str, info['alternative_names']))}\n"
          f"SHA-1 thumbprint {info['sha1_thumbprint']} (compare it when a client asks to trust the server)")
    return 0


def run(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from core.errors import InputError
    from core.plant import allowed_folders
    from core.store import default_db_path
    from qc_app.serve import ServeOptions, parse_endpoint, serve_until

    parse_endpoint(args.endpoint)
    default_cert, default_key = _default_pki()
    if args.create_certificate:
        return _create_certificate(args, Path(args.certificate or default_cert),
                                   Path(args.private_key or default_key))
    if bool(args.certificate) != bool(args.private_key):
        raise InputError("--certificate", "give both --certificate and --private-key, or neither")
    cert = Path(args.certificate) if args.certificate else (default_cert if default_cert.exists() else None)
    key = Path(args.private_key) if args.private_key else (default_key if cert == default_cert else None)
    for path in (cert, key):
        if path is not None and not path.is_file():
            raise InputError(path, "not found (create one with cellqc serve --create-certificate)")
    if args.follow_interval <= 0:
        raise InputError("--follow-interval", f"must be positive, got {args.follow_interval}")
    options = ServeOptions(
        db_path=Path(args.db) if args.db else default_db_path(),
        out_dir=Path(args.out) if args.out else cellqc_home() / "serve",
        endpoint=args.endpoint, allowed=allowed_folders(args.allow), recipe=args.recipe,
        voxel_size=args.voxel_size, report=not args.no_report, certificate=cert, private_key=key,
        require_encryption=args.require_encryption, follow_interval_s=args.follow_interval)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # not the main thread, or not POSIX
                pass
        await serve_until(options, stop)

    try:
        asyncio.run(main())
    except OSError as exc:  # e.g. the port is taken
        raise InputError(args.endpoint, f"cannot listen: {exc.strerror or exc}") from None
    print("cellqc serve: stopped", file=sys.stderr)
    return 0


register("serve", "OPC UA server for the line's PLC and the MES: station state, last result, Inspect",
         add_arguments, run)
