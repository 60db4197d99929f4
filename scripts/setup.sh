#!/usr/bin/env bash
# Set up cellqc in ./.venv (idempotent, quick when already done) and run something with it.
#
#   bash scripts/setup.sh demo            set up, then run `cellqc demo`
#   bash scripts/setup.sh test [ARGS...]  set up with the dev extra, then run the whole test
#                                         suite: QT_QPA_PLATFORM=offscreen python -m pytest -q
#                                         -n auto --maxprocesses 2 ARGS (pytest-xdist)
#   bash scripts/setup.sh setup [dev]     set up only
#   bash scripts/setup.sh lint            ruff check
#   bash scripts/setup.sh bench           run the timing scripts in benchmarks/
#
# Set-up: a Python >= 3.11 ($PYTHON, else python3, python3.13, python3.12, python3.11); on
# Debian/Ubuntu the system packages Qt needs offscreen, poppler-utils and the venv module,
# installed with apt-get only when missing (dpkg -s) and only when running as root (otherwise
# it prints what to install); the virtual environment .venv; `pip install -e .[all]` (every
# extra; or `-e .[all,dev]`), redone only when pyproject.toml or this script changed (stamp
# files in .venv).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
DEB_PACKAGES=(libegl1 libgl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libglib2.0-0 fonts-dejavu-core poppler-utils)

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

find_python() {
    local candidates=() py
    [ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
    candidates+=(python3 python3.13 python3.12 python3.11)
    for py in "${candidates[@]}"; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

deb_installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'; }

system_packages() {
    # $1: the Python that will create the venv.
    local py=$1 missing=() venv_pkg="" p
    if ! command -v dpkg >/dev/null 2>&1; then
        say "not a Debian-like system: make sure Qt's offscreen libraries (EGL, GL, xkbcommon," \
            "fontconfig, dbus, glib), a font and poppler-utils are installed"
        return 0
    fi
    for p in "${DEB_PACKAGES[@]}"; do
        deb_installed "$p" || missing+=("$p")
    done
    # Debian's Python lacks ensurepip (so `python -m venv` fails) until pythonX.Y-venv is in.
    if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        venv_pkg="python$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
        missing+=("$venv_pkg")
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        say "missing Debian packages: ${missing[*]}"
        say "install them with: sudo apt-get install ${missing[*]}"
        if [ -n "$venv_pkg" ]; then
            die "$py cannot create a virtual environment without $venv_pkg"
        fi
        say "continuing; the GUI tests and PDF previews need them"
    fi
}

setup() {
    # $1: "dev" to include the dev extra (pytest, pytest-qt, hypothesis, ruff).
    local extra=${1:-} py stamp spec
    py=$(find_python) || die "Python >= 3.11 not found (set PYTHON=/path/to/python3.11 or newer)"
    system_packages "$py"
    if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        say "creating $VENV with $py ($("$py" -c 'import sys; print(sys.version.split()[0])'))"
        rm -rf "$VENV"
        "$py" -m venv "$VENV"
    fi
    if [ "$extra" = dev ]; then
        stamp="$VENV/.cellqc-installed-dev"
        spec=".[all,dev]"
    else
        stamp="$VENV/.cellqc-installed"
        spec=".[all]"
    fi
    if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$stamp" -nt scripts/setup.sh ] &&
        [ -x "$VENV/bin/cellqc" ]; then
        return 0
    fi
    say "installing cellqc into $VENV (pip install -e '$spec')"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$spec" >&2
    touch "$stamp"
    [ "$extra" = dev ] && touch "$VENV/.cellqc-installed"
    return 0
}

action=${1:-}
[ $# -gt 0 ] && shift
case "$action" in
    demo)
        setup
        rc=0
        "$VENV/bin/cellqc" demo "$@" || rc=$?
        # 1 (FAIL) and 3 (REVIEW) are verdicts, not errors: the demo cell is defective.
        case $rc in 0 | 1 | 3) exit 0 ;; *) exit "$rc" ;; esac
        ;;
    test)
        setup dev
        export QT_QPA_PLATFORM=offscreen
        # Two test processes (pytest-xdist; one on a single core): the suite is mostly
        # single-threaded numpy, and on the 2-core CI machine one process left a core idle
        # (37 min serial; 27 min in two, the machine shared).
        exec "$VENV/bin/python" -m pytest -q -n auto --maxprocesses 2 "$@"
        ;;
    setup)
        setup "${1:-}"
        say "ready: $VENV/bin/cellqc"
        ;;
    lint)
        setup dev
        exec "$VENV/bin/ruff" check .
        ;;
    bench)
        setup
        for script in benchmarks/*.py; do
            say "$script"
            "$VENV/bin/python" "$script"
        done
        ;;
    *)
        sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
