#!/usr/bin/env bash
# The GPU kit (made by `npm run gpu-kit -- DIR`): ResNet50 on WebGPU (Dawn over Vulkan) on a machine
# that has a GPU and its Vulkan driver but no npm, no Node and no repository.
#   bash run.sh [--size 224] [--reps 3] [--batches 8,32] [--cpu-batches 8|none] [--cpu-reps 1]
# Needs only what a bare Debian/Ubuntu has (bash, gzip, dpkg-deb, mktemp) plus the GPU's Vulkan driver
# (NVIDIA: the driver's nvidia_icd.json; in Docker, NVIDIA_DRIVER_CAPABILITIES must include graphics).
# Everything is unpacked into a temp folder, removed at exit; nothing is installed.
set -euo pipefail
kit=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/boat-gpu-kit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

gzip -dc "$kit/node.gz" > "$tmp/node"
chmod +x "$tmp/node"
gzip -dc "$kit/dawn.node.gz" > "$tmp/dawn.node"
# The Vulkan loader (libvulkan.so.1) from the kit's Debian package, ahead of any system one.
deb=$(ls "$kit"/libvulkan1_*.deb)
if command -v dpkg-deb > /dev/null; then
  dpkg-deb -x "$deb" "$tmp/vulkan"
  loader_dir=$(dirname "$(find "$tmp/vulkan" -name 'libvulkan.so.1' | head -n 1)")
  export LD_LIBRARY_PATH="$loader_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  echo "note: no dpkg-deb; using the system's Vulkan loader, if any"
fi

echo "== machine"
uname -srm
{ command -v nvidia-smi > /dev/null && nvidia-smi -L; } || echo "nvidia-smi: not found"
ls /dev/nvidia0 /dev/dri/renderD* /dev/kfd 2> /dev/null || echo "no GPU device node"
icds=$(ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json /usr/local/share/vulkan/icd.d/*.json 2> /dev/null || true)
echo "Vulkan drivers (ICD files): ${VK_ICD_FILENAMES:-${icds:-none found}}" | tr '\n' ' '
echo
echo "== check"
# TMPDIR: the wasm threads write their worker script to the temp folder; keep it in ours.
TMPDIR="$tmp" BOAT_KIT_DIR="$kit" BOAT_WASM_OUT="$kit/wasm-out" BOAT_DAWN_NODE="$tmp/dawn.node" "$tmp/node" "$kit/check.js" "$@"
