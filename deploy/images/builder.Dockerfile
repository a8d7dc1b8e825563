# The build stage every service image starts from, built by deploy/images/build.sh before the services (podman's
# layer cache makes a rebuild with nothing changed free) as localhost/orate/builder:<TORCH>:
#   none  the orchestrator (no torch)
#   cpu   torch's CPU wheel
#   gpu   PyPI's torch: a CUDA build whose nvidia-* wheels carry the CUDA runtime (cuBLAS, cuDNN, NCCL...);
#         the node's NVIDIA container runtime brings the driver
# It holds the generated protobuf code, an empty venv with torch, pyproject.toml and shared/ in /src. A
# service's Dockerfile adds its own folder, installs its extra into /opt/venv and copies only the venv (and its
# assets) onto the base, so nothing here but the venv reaches a runtime image.

ARG BASE=localhost/orate/base:bookworm
FROM ${BASE}
# Pip's own settings as build arguments: a wheelhouse, a local index, a proxy's CA (deploy/images/build.sh).
ARG PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL= PIP_CERT=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# meeteval (asr-sactc's evaluation metrics) ships only an sdist with a C++ extension.
RUN apt-get update && apt-get install -y --no-install-recommends g++ python3-dev \
    && rm -rf /var/lib/apt/lists/*
# Generated code demands a protobuf runtime at least as new as its protoc: grpcio-tools before 1.71 bundles
# protoc 29 (gencode 5.29), the oldest runtime pyproject allows, so any resolved runtime loads it.
RUN python3 -m venv /opt/protoc && /opt/protoc/bin/pip install "grpcio-tools>=1.68,<1.71"
RUN python3 -m venv /opt/venv
# torch before any extra, so that the extras find it installed and pull no other build. The GPU install
# ignores the wheelhouse: its torch==X+cpu satisfies torch==X and would win. The check fails the build on
# the wrong flavour.
ARG TORCH=none TORCH_VERSION=2.13.0 TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN case "$TORCH" in \
      none) exit 0 ;; \
      cpu) /opt/venv/bin/pip install ${TORCH_CPU_INDEX:+--extra-index-url "$TORCH_CPU_INDEX"} \
             "torch==$TORCH_VERSION+cpu" ;; \
      gpu) env -u PIP_FIND_LINKS /opt/venv/bin/pip install "torch==$TORCH_VERSION" ;; \
      *) echo "TORCH must be none, cpu or gpu, got $TORCH" >&2; exit 2 ;; \
    esac \
    && /opt/venv/bin/python -c "import sys, torch; cuda = torch.version.cuda; print('torch', torch.__version__, \
'CUDA', cuda); sys.exit((cuda is None) != ('$TORCH' == 'cpu'))"
# The sources last, so that a change to them leaves the torch layer cached.
WORKDIR /src
COPY proto/ proto/
RUN /opt/protoc/bin/python -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto \
    --grpc_python_out=proto proto/orate/v1/*.proto
COPY pyproject.toml ./
COPY shared/ shared/
