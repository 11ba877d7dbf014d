#!/usr/bin/env bash
# One entry point for a fresh Debian/Ubuntu machine (as root, or a user with sudo):
#   bash scripts/run.sh main    install what is needed, then run the whole tutorial headless
#   bash scripts/run.sh test    install what is needed, then run the test suite
#   bash scripts/run.sh bench   install what is needed plus Debian's PyTorch (the comparison), then run boat bench
#   bash scripts/run.sh setup   only install
#   bash scripts/run.sh lab     install, build the offline JupyterLab (jupyterlab/) and open the notebooks in it
# Installs Debian's Jupyter (classic Notebook + nbconvert), Chromium (chart screenshots), g++, oneDNN
# and libjpeg-turbo (native addons), and the npm packages from the lock file.
# Nothing is downloaded from anywhere but Debian's archive and the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."

# g++ builds the two native addons (scripts/build-native.js): libdnnl-dev (oneDNN) the model's kernels,
# libjpeg-dev (libjpeg-turbo) the loader's JPEG decoder. Without them wasm computes everything and sharp
# decodes everything, slower. libvulkan1 (the Vulkan loader) lets the tests run the WebGPU backend on the
# SwiftShader Vulkan driver that chromium ships (test/engine-webgpu.test.ts).
# python3-jupyterlab-server and python3-jupyter-server serve the offline JupyterLab build (jupyterlab/).
APT_PACKAGES=(jupyter-notebook jupyter-nbconvert jupyter-client jupyter-nbformat chromium g++ libdnnl-dev libjpeg-dev libvulkan1
  python3-jupyterlab-server python3-jupyter-server)

say() { printf '[setup] %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "apt-get install ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

check_node() {
  if ! command -v node >/dev/null 2>&1; then
    say "Node.js not found: installing Debian's nodejs and npm"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    echo "error: Node.js 20 or newer is needed, found $(node --version). Install a newer Node.js and run this again." >&2
    exit 1
  fi
}

install_npm_packages() {
  # npm ci only when the lock file changed since the last install (it also builds dist/ via "prepare").
  local stamp=node_modules/.boat-lock.sha256 want
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > "$stamp"
  else
    npm run --silent build
    node scripts/build-native.js
  fi
}

install_lab() {
  # jupyterlab/ has its own lock file: npm ci there only when it changed, the webpack build only when its
  # inputs did (a few seconds to a minute each; see docs/notebooks.md).
  local stamp=jupyterlab/node_modules/.boat-lock.sha256 built=jupyterlab/build/.boat-inputs.sha256 want
  want=$(sha256sum jupyterlab/package-lock.json | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    say "npm ci (jupyterlab/)"
    (cd jupyterlab && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > "$stamp"
  fi
  want=$(cat jupyterlab/package-lock.json jupyterlab/webpack.config.js jupyterlab/index.js | sha256sum | cut -d' ' -f1)
  if [ ! -f "$built" ] || [ "$(cat "$built")" != "$want" ]; then
    say "building the offline JupyterLab (jupyterlab/build)"
    (cd jupyterlab && npm run --silent build)
    echo "$want" > "$built"
  fi
}

# The bench compares with Debian's PyTorch in its CPU configurations (bench/torch_resnet50.py).
if [ "${1:-}" = bench ]; then APT_PACKAGES+=(python3-torch python3-torchvision); fi
install_apt_packages
check_node
install_npm_packages
case "${1:-setup}" in lab | test) install_lab ;; esac

case "${1:-setup}" in
  setup) say "done" ;;
  main) exec node bin/boat.js main "${@:2}" ;;
  test) exec npm test --silent ;;
  lab) BOAT_LAB_FRONTEND=build exec bash scripts/lab.sh "${@:2}" ;;
  bench) exec node bin/boat.js bench "${@:2}" ;;
  *) echo "usage: bash scripts/run.sh main|test|bench|setup|lab" >&2; exit 2 ;;
esac
