"""``cellqc doctor``: check the installation, the log's integrity and free disk; say what to do.

Exit code 0 when nothing failed (warnings allowed), 1 when a check failed.
"""

from __future__ import annotations

import argparse
import sys

from qc_app.commands.base import add_log_option, print_json, register


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_log_option(p, metavar="FILE")
    p.add_argument("--quick", action="store_true", help="skip importing the packages (faster)")
    p.add_argument("--json", action="store_true", help="the checks as JSON on stdout")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from core.doctor import run_checks

    checks = run_checks(args.db, packages=not args.quick)
    if args.json:
        print_json([asdict(c) for c in checks])
    else:
        for check in checks:
            print(check.line())
    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    print(f"doctor: {len(checks)} checks, {len(failed)} failed, {len(warned)} warnings",
          file=sys.stderr)
    return 1 if failed else 0


register("doctor", "check the installation, the log's integrity and free disk", add_arguments, run)
