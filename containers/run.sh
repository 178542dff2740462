#!/usr/bin/env bash
# Build the CPU image and run its default command (the smoke matrix, its report and the
# regression check against the committed reference) with Docker, or Podman where Docker
# is absent. Results, reports and the data cache go to ./out (override: OUT=dir).
#   containers/run.sh            # CPU image
#   containers/run.sh cuda       # CUDA image (needs an NVIDIA GPU and the container toolkit)
set -euo pipefail
cd "$(dirname "$0")/.."
variant="${1:-cpu}"
case "$variant" in
  cpu) file=containers/Dockerfile; gpu=() ;;
  cuda) file=containers/Dockerfile.cuda; gpu=(--gpus all) ;;
  *) echo "unknown variant '$variant'; valid: cpu, cuda" >&2; exit 2 ;;
esac
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  engine=docker
elif command -v podman >/dev/null; then
  engine=podman
  [ "$variant" = cuda ] && gpu=(--device nvidia.com/gpu=all)  # podman: CDI device name
else
  echo "neither a running Docker nor Podman found; install one (Debian: apt install podman)" >&2; exit 2
fi
out="${OUT:-$PWD/out}"
mkdir -p "$out"
tag="neuroscale-bench:$variant"
"$engine" build -f "$file" -t "$tag" .
"$engine" run --rm "${gpu[@]}" -v "$out:/work/out" "$tag"
echo "results in $out/results, reports in $out/reports"
