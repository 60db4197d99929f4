#!/usr/bin/env bash
# Build the desktop bundle and prove it works: installer/build.sh, then run --self-test with
# both programs inside the bundle (headless: QT_QPA_PLATFORM=offscreen), from a copy of the
# bundle in another folder (it must not depend on the checkout). Prints size and timings.
#
#   scripts/build_bundle.sh            # exit 0 when the bundle built and both self-tests passed
#   KEEP_COPY=1 scripts/build_bundle.sh
#
# Slow (minutes on a busy machine); also run by tests/test_bundle.py when CELLQC_BUILD_BUNDLE=1.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
t0=$(date +%s)
installer/build.sh
t1=$(date +%s)
BUNDLE="${DIST:-$ROOT/dist}/cellqc"
COPY="$(mktemp -d "${TMPDIR:-/tmp}/cellqc-bundle-XXXXXX")"
HOME_DIR="$(mktemp -d "${TMPDIR:-/tmp}/cellqc-home-XXXXXX")"
cleanup() { [[ -n "${KEEP_COPY:-}" ]] || rm -rf "$COPY" "$HOME_DIR"; }
trap cleanup EXIT
cp -a "$BUNDLE" "$COPY/"
export QT_QPA_PLATFORM=offscreen CELLQC_HOME="$HOME_DIR"
# Run from a neutral directory with a clean environment, so that nothing leaks in from the checkout.
cd "$COPY"
env -u PYTHONPATH -u VIRTUAL_ENV "$COPY/cellqc/cellqc" --self-test
t2=$(date +%s)
env -u PYTHONPATH -u VIRTUAL_ENV "$COPY/cellqc/cellqc-gui" --self-test --no-gui >/dev/null
t3=$(date +%s)
echo "bundle size: $(du -sh "$BUNDLE" | cut -f1) ($(find "$BUNDLE" -type f | wc -l) files)"
echo "build: $((t1 - t0)) s; self-test cellqc: $((t2 - t1)) s; cellqc-gui --self-test: $((t3 - t2)) s"
