#!/usr/bin/env bash
# Install the built bundle system-wide on Linux (run as root):
#   installer/install-linux.sh [DIST_DIR] [PREFIX]      default: dist/cellqc  /opt/cellqc
# Copies the bundle to PREFIX, links /usr/local/bin/cellqc and cellqc-gui, installs the desktop
# entry and the icon, then runs the self-test. Uninstall: remove PREFIX, the two links,
# /usr/share/applications/cellqc.desktop and the cellqc.png/svg icons.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="${1:-$ROOT/dist/cellqc}"
PREFIX="${2:-/opt/cellqc}"
[[ -x "$DIST/cellqc" ]] || { echo "install-linux.sh: no bundle in $DIST (run installer/build.sh)" >&2; exit 2; }
rm -rf "$PREFIX.new" && cp -a "$DIST" "$PREFIX.new"
rm -rf "$PREFIX.old" && { [[ -e "$PREFIX" ]] && mv "$PREFIX" "$PREFIX.old" || true; }
mv "$PREFIX.new" "$PREFIX" && rm -rf "$PREFIX.old"
ln -sf "$PREFIX/cellqc" /usr/local/bin/cellqc
ln -sf "$PREFIX/cellqc-gui" /usr/local/bin/cellqc-gui
sed "s#/opt/cellqc#$PREFIX#g" "$ROOT/installer/cellqc.desktop" > /usr/share/applications/cellqc.desktop
install -D -m 644 "$ROOT/installer/cellqc.png" /usr/share/icons/hicolor/256x256/apps/cellqc.png
install -D -m 644 "$ROOT/resources/icons/cellqc.svg" /usr/share/icons/hicolor/scalable/apps/cellqc.svg
command -v update-desktop-database >/dev/null && update-desktop-database -q /usr/share/applications || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q /usr/share/icons/hicolor || true
"$PREFIX/cellqc" --self-test
