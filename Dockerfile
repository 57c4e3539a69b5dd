# syntax=docker/dockerfile:1.7
#
# The Huddle server image: `docker build -t huddle .` at the repository root.
#
# Build stage: the release binary from the locked dependencies (Cargo.lock), exactly as
# `cargo build --release --locked` builds it on a developer's machine.
# Run stage: Debian slim of the same release as the build image (so the binary's glibc is
# the one it was linked against), a non-root user, the binary and the CA certificates.
# Nothing else is installed: the HEALTHCHECK uses bash's /dev/tcp (bash is in every Debian
# image), so no curl or wget is added to the image for it.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Only what the build reads (see .dockerignore): the manifest, the lock file, the sources,
# the SQL migrations and the browser SDK (both compiled into the binary), and the bench
# declared in Cargo.toml.
COPY Cargo.toml Cargo.lock ./
COPY benches benches
COPY migrations migrations
COPY sdk sdk
COPY src src
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin huddle \
    && install -D -m 0755 target/release/huddle /out/huddle

FROM debian:${DEBIAN_RELEASE}-slim

ARG VERSION=0.1.0
ARG REVISION=unknown
# The repository URL, e.g. `--build-arg SOURCE="$(git remote get-url origin)"`.
ARG SOURCE=""
LABEL org.opencontainers.image.title="huddle" \
      org.opencontainers.image.description="Self-hosted real-time audio/video rooms: tokens, signaling and a WebRTC relay in one binary" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:${DEBIAN_RELEASE}-slim"

# A fixed uid/gid (10001) so that Kubernetes' runAsNonRoot/runAsUser and volume ownership
# (fsGroup) can name it; the data directory is the one writable place.
RUN groupadd --system --gid 10001 huddle \
    && useradd --system --no-log-init --uid 10001 --gid huddle \
       --home-dir /var/lib/huddle --shell /usr/sbin/nologin huddle \
    && install -d -o huddle -g huddle -m 0750 /var/lib/huddle

COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/huddle /usr/local/bin/huddle

# Container defaults (every one can be overridden with -e; flags win over both):
# - HTTP on all interfaces, port 8080;
# - the default SQLite file in the data volume;
# - the relay on UDP 40000-40003 (4 engine threads, one port each). Binding all interfaces
#   needs the address browsers reach the host at: pass HUDDLE_RELAY_PUBLIC_IPS, or the server
#   refuses to start and says so.
ENV HUDDLE_HTTP_ADDR=0.0.0.0:8080 \
    HUDDLE_DATA_DIR=/var/lib/huddle \
    HUDDLE_RELAY_UDP_ADDR=0.0.0.0:40000 \
    HUDDLE_RELAY_THREADS=4
VOLUME ["/var/lib/huddle"]
WORKDIR /var/lib/huddle
USER 10001:10001

EXPOSE 8080/tcp 40000-40003/udp

# `GET /healthz` over bash's /dev/tcp, on the port of HUDDLE_HTTP_ADDR. Kubernetes ignores
# HEALTHCHECK: the Helm chart's probes (/healthz liveness, /readyz readiness) are the checks
# there.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${HUDDLE_HTTP_ADDR##*:}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r _ status _ <&3 && [ \"$status\" = 200 ]"]

ENTRYPOINT ["/usr/local/bin/huddle"]
CMD ["serve"]
