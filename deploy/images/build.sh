#!/usr/bin/env bash
# `make images`: the Debian base from Debian packages (mmdebstrap + podman import, as an air-gapped user
# would: no registry image is pulled), the shared build stage (deploy/images/builder.Dockerfile, once per
# torch flavour the services need), then one image per service, each from its Dockerfile at the repo root,
# and each image's size into loadtests/results/images.json.
#
#   deploy/images/build.sh [service ...]      default: every service in SERVICES below
#
# Environment (all optional):
#   VARIANT=cpu|gpu     the model images' torch: cpu: torch's CPU wheel; gpu: PyPI's CUDA torch (its wheels
#                       bundle the CUDA runtime, the node's NVIDIA container runtime brings the driver). The
#                       orchestrator and preview-render need no GPU: their gpu tag is the cpu image
#   TAG=dev             image tag (images are localhost/orate/<service>:<TAG>-<VARIANT>)
#   WHEELHOUSE=DIR      a folder of wheels pip may install from (e.g. torch's CPU wheel where
#                       download.pytorch.org is out of reach); mounted read-only into the build
#   PIP_INDEX_DIR=DIR   a local PEP 503 index (a mirror), used beside PyPI
#   TORCH_CPU_INDEX=URL where torch's CPU wheel comes from (empty: WHEELHOUSE or PyPI only)
#   CA_BUNDLE=FILE      CA certificates pip trusts (a TLS-intercepting proxy); default: $PIP_CERT if set
#   DEBIAN_MIRROR=URL   for mmdebstrap (default http://deb.debian.org/debian)
#   BUILDER=podman|buildah
#   RESULTS=FILE        where the sizes go (default loadtests/results/images.json)
# skaffold's custom builder (skaffold.yaml) runs it for one service with IMAGE (the reference skaffold
# wants) and PUSH_IMAGE set: that image is built, pushed when PUSH_IMAGE=true, and no size is recorded.
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVICES=(orchestrator asr-sactc face-vqvae preview-render tts-gesture)
VARIANT=${VARIANT:-cpu}
TAG=${TAG:-dev}
BUILDER=${BUILDER:-podman}
BASE=localhost/orate/base:bookworm
BUILDER_IMAGE=localhost/orate/builder
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX-https://download.pytorch.org/whl/cpu}
RESULTS=${RESULTS:-loadtests/results/images.json}

case "$VARIANT" in cpu|gpu) ;; *) echo "VARIANT must be cpu or gpu, got $VARIANT" >&2; exit 2 ;; esac
for tool in "$BUILDER" mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y podman buildah mmdebstrap" >&2; exit 1; }
done

dockerfile() { echo "services/$1/Dockerfile"; }
# The builder flavour (none, cpu, gpu) a service's build stage starts from: its Dockerfile's
# `FROM ${BUILDER}:<flavour> AS build`, where the model services write ${VARIANT}.
torch_of() {
  local flavour
  flavour=$(sed -n 's/^FROM ${BUILDER}:\(.*\) AS build$/\1/p' "$(dockerfile "$1")")
  echo "${flavour//'${VARIANT}'/$VARIANT}"
}

if ! podman image exists "$BASE"; then
  # Python 3.11 is bookworm's; wget answers KubeRay's exec probes in the Ray images.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates,wget \
    bookworm "$tmp/rootfs.tar" "$DEBIAN_MIRROR"
  podman import --change 'CMD ["/usr/bin/python3"]' "$tmp/rootfs.tar" "$BASE"
fi

args=(--isolation chroot --network host --layers --build-arg "BASE=$BASE" --build-arg "BUILDER=$BUILDER_IMAGE"
      --build-arg "VARIANT=$VARIANT" --build-arg "TORCH_CPU_INDEX=$TORCH_CPU_INDEX")
if [ -n "${WHEELHOUSE:-}" ]; then
  args+=(--volume "$(realpath "$WHEELHOUSE"):/wheelhouse:ro" --build-arg PIP_FIND_LINKS=/wheelhouse)
fi
CA_BUNDLE=${CA_BUNDLE:-${PIP_CERT:-}}
if [ -n "$CA_BUNDLE" ]; then
  args+=(--volume "$(realpath "$CA_BUNDLE"):/run/orate-ca.crt:ro" --build-arg PIP_CERT=/run/orate-ca.crt)
fi
if [ -n "${PIP_INDEX_DIR:-}" ]; then
  args+=(--volume "$(realpath "$PIP_INDEX_DIR"):/pip-index:ro"
         --build-arg PIP_EXTRA_INDEX_URL=file:///pip-index)
fi

declare -A builders=()
built=()
for service in "${@:-${SERVICES[@]}}"; do
  file=$(dockerfile "$service")
  [ -f "$file" ] || { echo "no Dockerfile for $service ($file)" >&2; exit 2; }
  torch=$(torch_of "$service")
  [ -n "$torch" ] || { echo "$file: no 'FROM \${BUILDER}:<flavour> AS build'" >&2; exit 2; }
  if [ -z "${builders[$torch]:-}" ]; then
    "$BUILDER" build "${args[@]}" --build-arg "TORCH=$torch" -f deploy/images/builder.Dockerfile \
      -t "$BUILDER_IMAGE:$torch" .
    builders[$torch]=1
  fi
  image=${IMAGE:-localhost/orate/$service:$TAG-$VARIANT}
  start=$(date +%s)
  "$BUILDER" build "${args[@]}" -f "$file" -t "$image" .
  if [ "${PUSH_IMAGE:-false}" = true ]; then "$BUILDER" push "$image"; fi
  built+=("$service=$image=$(($(date +%s) - start))")
done
[ -z "${IMAGE:-}" ] || exit 0

# Sizes as podman reports them (uncompressed, all layers), merged into the results file by service name.
python3 - "$RESULTS" "$VARIANT" "${built[@]}" <<'EOF'
import json, platform, subprocess, sys
from datetime import datetime, timezone
from pathlib import Path

path, variant, entries = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
data = json.loads(path.read_text()) if path.exists() else {}
data.setdefault("benchmark", "image sizes: `make images` (deploy/images/build.sh), podman, uncompressed")
data["machine"] = {"platform": platform.platform(), "cpus": __import__("os").cpu_count()}
images = data.setdefault("images", {})
for entry in entries:
    service, image, seconds = entry.split("=")
    info = json.loads(subprocess.check_output(["podman", "image", "inspect", image]))[0]
    images[f"{service}:{variant}"] = {
        "image": image,
        "size_bytes": info["Size"],
        "size_mb": round(info["Size"] / 1e6, 1),
        "layers": len(info["RootFS"]["Layers"]),
        "build_seconds": int(seconds),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    print(f"{image}: {info['Size'] / 1e6:.1f} MB")
path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
EOF
