# syntax=docker/dockerfile:1.7
#
# The one Spate image. Every role runs from it by subcommand:
#
#   spate jobmaster ...   a job's JobMaster (the operator's Deployment runs this)
#   spate worker ...      a worker (the JobMaster's resource manager creates these pods)
#   spate-operator ...    the Kubernetes operator (charts/spate runs this)
#
# Build:  docker build -t spate:dev .
# The build needs what `bash e2e/test.sh` needs on a fresh machine: a Rust toolchain, clang++
# (RocksDB's C++, .cargo/config.toml), and libclang (RocksDB's bindings are generated with
# bindgen at build time).
# protoc is not installed: it comes from the vendored `protoc-bin-vendored` crate (proto/build.rs).

# The toolchain the workspace is tested with; DataFusion 55.2 needs Rust 1.94 or newer.
ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder

# The rust image already has gcc and make; clang++ compiles RocksDB's C++ and libclang is for
# bindgen (RocksDB's bindings).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends clang libclang-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# Caches survive between builds (BuildKit); the binaries are copied out of the cached target
# directory in the same step, since a cache mount is not part of the image.
# The operator is built with its `otel` feature, so that the chart's tracing.otlpEndpoint
# (OTEL_EXPORTER_OTLP_ENDPOINT) exports its spans; without an endpoint it exports nothing.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin spate --bin spate-operator --features spate-operator/otel \
    && mkdir -p /out \
    && cp target/release/spate target/release/spate-operator /out/ \
    && strip --strip-debug /out/spate /out/spate-operator

# The release profile keeps line tables (`debug = "line-tables-only"`); the image drops them
# above but keeps the symbol table, so backtraces still name functions.

# ---------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# ca-certificates: TLS to S3/GCS/Azure and to the Kubernetes API server. RocksDB is linked
# statically; libstdc++ and libgcc are part of the slim base.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed non-root uid/gid, so `runAsNonRoot` and volume permissions can refer to it.
ARG SPATE_UID=10001
RUN groupadd --system --gid ${SPATE_UID} spate \
    && useradd --system --uid ${SPATE_UID} --gid spate --home-dir /var/lib/spate \
        --create-home --shell /usr/sbin/nologin spate

COPY --from=builder /out/spate /out/spate-operator /usr/local/bin/

USER ${SPATE_UID}:${SPATE_UID}
WORKDIR /var/lib/spate
# Workers keep local state (RocksDB, task-local checkpoint copies) under the temp directory
# unless told otherwise; /tmp is writable for the spate user.
ENV RUST_LOG=info

# 6123: JobMaster gRPC; 8080: the operator's /metrics and /healthz.
EXPOSE 6123 8080

# No ENTRYPOINT: Kubernetes sets `command` per role (`spate` for JobMaster and workers,
# `spate-operator` for the operator); `docker run IMAGE` alone prints spate's help.
CMD ["spate", "--help"]
