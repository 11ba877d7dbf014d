#!/usr/bin/env bash
# Opens the notebooks with the repo's tslab kernel: JupyterLab when installed, else Debian's classic Notebook.
#   npm run lab [-- extra jupyter arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run --silent build
export PATH="$PWD/node_modules/.bin:$PATH"
export JUPYTER_PATH="$PWD/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
if command -v jupyter-lab >/dev/null 2>&1; then
  exec jupyter-lab --notebook-dir=notebooks "$@"
elif /usr/bin/python3 -c 'import notebook' 2>/dev/null; then
  exec /usr/bin/python3 -m notebook --notebook-dir=notebooks "$@"
else
  echo "error: no Jupyter found; run: bash scripts/run.sh setup" >&2
  exit 1
fi
