#!/usr/bin/env bash
# Opens the notebooks with the repo's tslab kernel, in the first front end found:
#   1. JupyterLab, when jupyter-lab is on the PATH (pip install jupyterlab);
#   2. the offline JupyterLab build in jupyterlab/ (bash scripts/run.sh lab installs and builds it);
#   3. Debian's classic Notebook.
#   npm run lab [-- extra jupyter arguments, e.g. --port 8888 --no-browser]
# BOAT_LAB_FRONTEND=jupyterlab|build|notebook picks one instead.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run --silent build
export PATH="$PWD/node_modules/.bin:$PATH"
export JUPYTER_PATH="$PWD/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
# Jupyter refuses to start as root without it (containers, CI).
args=()
# notebooks/ unless the caller names another folder (Jupyter refuses the option twice).
case " $* " in *" --notebook-dir"* | *"root_dir"* | *"notebook_dir"*) ;; *) args+=(--notebook-dir=notebooks) ;; esac
if [ "$(id -u)" = 0 ]; then args+=(--allow-root); fi

has_build() { [ -f jupyterlab/build/bundle.js ] && /usr/bin/python3 -c 'import jupyterlab_server' 2>/dev/null; }
frontend=${BOAT_LAB_FRONTEND:-}
if [ -z "$frontend" ]; then
  if command -v jupyter-lab >/dev/null 2>&1; then frontend=jupyterlab
  elif has_build; then frontend=build
  else frontend=notebook
  fi
fi
case "$frontend" in
  jupyterlab) exec jupyter-lab "${args[@]}" "$@" ;;
  build)
    has_build || { echo "error: the offline JupyterLab is not built; run: bash scripts/run.sh lab" >&2; exit 1; }
    exec /usr/bin/python3 jupyterlab/main.py "${args[@]}" "$@" ;;
  notebook)
    /usr/bin/python3 -c 'import notebook' 2>/dev/null || { echo "error: no Jupyter found; run: bash scripts/run.sh setup" >&2; exit 1; }
    exec /usr/bin/python3 -m notebook "${args[@]}" "$@" ;;
  *) echo "error: BOAT_LAB_FRONTEND must be jupyterlab, build or notebook (got '$frontend')" >&2; exit 2 ;;
esac
