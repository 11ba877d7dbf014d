#!/usr/bin/env bash
# The WebGPU check for a machine with a GPU and this repository set up: one short run, prints what it found.
#   bash scripts/gpu-check.sh [OUT_DIR]
# Needs the repo set up (bash scripts/run.sh setup) and a Vulkan driver for the GPU (libvulkan1 and
# the vendor's ICD, e.g. NVIDIA's nvidia_icd.json). A GPU machine without npm or the repository takes the
# GPU kit instead (npm run gpu-kit -- DIR here, then bash DIR/run.sh there; docs/gpu.md). It measures forward and train-step img/s with
# BOAT_BACKEND=webgpu, then the same with the default backend, in one run.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/gpu-check}
mkdir -p "$out"
{ command -v nvidia-smi >/dev/null && nvidia-smi -L; } || echo "nvidia-smi: not found"
ls /dev/nvidia0 /dev/dri/renderD* 2>/dev/null || echo "no GPU device node"
ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>/dev/null || echo "no Vulkan ICD folder"
echo "== webgpu"
BOAT_BACKEND=webgpu timeout 480 node bench/measure-speed.js 8 3 | tee "$out/webgpu.txt"
echo "== default backend"
timeout 300 node bench/measure-speed.js 8 3 | tee "$out/default.txt"
