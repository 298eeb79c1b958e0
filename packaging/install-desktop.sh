#!/usr/bin/env bash
# Put Model Workbench in the desktop menu: .desktop entry, icon, .wbproj file type, AppStream data.
#   bash packaging/install-desktop.sh              # for this user (~/.local/share)
#   PREFIX=/usr/local/share bash packaging/install-desktop.sh   # for everyone (as root)
#   bash packaging/install-desktop.sh --uninstall
# The entry runs the `workbench` found on PATH (pipx / pip install), else this checkout's .venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
PREFIX="${PREFIX:-${XDG_DATA_HOME:-$HOME/.local/share}}"
app="$PREFIX/applications/model-workbench.desktop"
icon="$PREFIX/icons/hicolor/scalable/apps/model-workbench.svg"
mime="$PREFIX/mime/packages/model-workbench.xml"
meta="$PREFIX/metainfo/io.github.model_workbench.Workbench.metainfo.xml"

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$app" "$icon" "$mime" "$meta"
  echo "removed Model Workbench from $PREFIX"
else
  exe="$(command -v workbench || true)"
  [ -n "$exe" ] || exe="$root/.venv/bin/workbench"
  [ -x "$exe" ] || { echo "error: no workbench executable; run packaging/bootstrap.sh or pipx install . first" >&2; exit 2; }
  mkdir -p "$(dirname "$app")" "$(dirname "$icon")" "$(dirname "$mime")" "$(dirname "$meta")"
  sed -e "s|^Exec=workbench|Exec=$exe|" -e "s|^TryExec=workbench|TryExec=$exe|" \
      "$here/model-workbench.desktop" > "$app.tmp" && mv "$app.tmp" "$app"
  cp "$root/resources/icons/workbench.svg" "$icon"
  cp "$here/model-workbench-mime.xml" "$mime"
  cp "$here/io.github.model_workbench.Workbench.metainfo.xml" "$meta"
  echo "installed Model Workbench ($exe) into $PREFIX"
fi
# Refresh caches where the tools exist; a menu picks the entry up either way.
command -v update-desktop-database >/dev/null && update-desktop-database -q "$PREFIX/applications" || true
command -v update-mime-database >/dev/null && update-mime-database "$PREFIX/mime" >/dev/null 2>&1 || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$PREFIX/icons/hicolor" 2>/dev/null || true
