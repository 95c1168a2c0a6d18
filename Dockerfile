# classifyd: multi-stage build. cargo-chef builds the dependencies from the lock file alone,
# so that layer is reused until Cargo.toml or Cargo.lock change; the final image holds the
# binary, CA certificates and curl (for the health check), and runs as an unprivileged user.

FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /build

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /build/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --bin classifyd

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin classifyd \
    && mkdir -p /data && chown classifyd /data
COPY --from=builder /build/target/release/classifyd /usr/local/bin/classifyd
USER classifyd
ENV CLASSIFYD_LISTEN=0.0.0.0:8080 \
    CLASSIFYD_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
# Liveness only: /ready also needs the database, and a container should not be restarted
# because PostgreSQL is briefly away (compose checks /ready itself).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/health || exit 1
# SIGTERM (docker stop) starts a graceful shutdown within CLASSIFYD_SHUTDOWN_GRACE_SECONDS.
ENTRYPOINT ["classifyd"]
CMD ["serve"]
