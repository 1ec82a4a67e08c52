# syntax=docker/dockerfile:1
# The dc-operator image: a static binary on distroless, running as the non-root user 65532.
#   docker build -t digital-channels-operator:0.1.0 .
# scripts/build-static runs the same build without Docker (CI does, to prove it).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
# Static glibc build (see scripts/build-static); SQLX_OFFLINE: no database at build time.
# --no-default-features: without the simulator, the PostgreSQL starter, `demo` and `simulate`.
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-gnu" \
 && cargo build --locked --release --no-default-features --target "$target" --bin dc-operator \
 && cp "target/$target/release/dc-operator" /dc-operator \
 && /dc-operator --help >/dev/null

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="digital-channels-operator" \
      org.opencontainers.image.description="Kubernetes operator that enables Genesys Multicloud CX tenants for Digital Channels" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /dc-operator /dc-operator
USER 65532:65532
# /metrics, /healthz and /readyz (--metrics-addr, default 0.0.0.0:8080)
EXPOSE 8080
ENTRYPOINT ["/dc-operator"]
CMD ["run"]
