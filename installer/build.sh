#!/usr/bin/env bash
# Build the one-folder desktop bundle dist/cellqc/ (programs cellqc and cellqc-gui).
#
#   installer/build.sh                 # uses .venv/bin/python if present, else python3
#   PYTHON=/path/to/python installer/build.sh
#
# Needs PyInstaller >= 6 in that Python (pip install -e '.[bundle]'). The output folder is
# self-contained: copy it anywhere (or zip it) and run dist/cellqc/cellqc --self-test.
# On Windows run the same PyInstaller command from a shell with the venv activated:
#   pyinstaller --noconfirm --clean --distpath dist --workpath build\pyinstaller installer\cellqc.spec
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-}"
if [[ -z "$PYTHON" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c "import PyInstaller" 2>/dev/null; then
    echo "build.sh: PyInstaller is not installed in $PYTHON; run: $PYTHON -m pip install 'pyinstaller>=6'" >&2
    exit 2
fi
DIST="${DIST:-$ROOT/dist}"
WORK="${WORK:-$ROOT/build/pyinstaller}"
start=$(date +%s)
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level "${LOG_LEVEL:-WARN}" \
    --distpath "$DIST" --workpath "$WORK" installer/cellqc.spec
end=$(date +%s)
cp installer/cellqc.desktop installer/cellqc.png "$DIST/cellqc/"
echo "bundle: $DIST/cellqc ($(du -sh "$DIST/cellqc" | cut -f1), built in $((end - start)) s)"
echo "check it: $DIST/cellqc/cellqc --self-test"
