# syntax=docker/dockerfile:1
# One image, both binaries:
#   /usr/local/bin/cni-cloud-controller  the route controller (Deployment; default, non-root)
#   /usr/local/bin/cni-cloud             the CNI plugin; `cni-cloud install` (the DaemonSet,
#                                        root with NET_ADMIN only) execs its installer,
#   /usr/local/bin/cni-cloud-install     kept apart so the plugin maps none of its dependencies
# plus `nft` and exactly the shared libraries it links, which the installer drives.
#
#   docker build -t ghcr.io/cni-cloud/cni-cloud:0.1.0 .
#
# checkov:skip=CKV_DOCKER_2: no HEALTHCHECK - Kubernetes probes (/healthz, /readyz, `cni-cloud install --check`) are the health checks; Docker's is ignored by the kubelet

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

# --- build: release binaries from the locked dependency graph --------------------------
FROM docker.io/library/rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
# The plugin is statically linked (static-pie: ASLR kept): the installer copies it onto the
# node, where the container runtime executes it with the *host's* libc — a dynamic binary
# built here would need this image's glibc on every host (Amazon Linux 2 has 2.26, Ubuntu
# 22.04 2.35). Static, it also maps no shared libraries, which keeps the peak RSS of every
# ADD/DEL under the reference plugins' (cni-cloud/README.md, benchmark). The controller is built
# without its default `simulate` feature: no mock clouds or Kubernetes API in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    host="$(rustc -vV | sed -n 's/^host: //p')" \
 && cargo build --release --locked -p cni-cloud-controller --no-default-features \
 && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked -p cni-cloud --bin cni-cloud --bin cni-cloud-install --target "$host" \
 && install -D -m 0755 "target/$host/release/cni-cloud" /out/usr/local/bin/cni-cloud \
 && install -D -m 0755 "target/$host/release/cni-cloud-install" /out/usr/local/bin/cni-cloud-install \
 && install -D -m 0755 target/release/cni-cloud-controller /out/usr/local/bin/cni-cloud-controller

# --- nft: the binary and the libraries it needs beyond glibc (already in the base) -------
FROM docker.io/library/debian:${DEBIAN_RELEASE}-slim AS nft
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables \
 && rm -rf /var/lib/apt/lists/*
RUN install -D -m 0755 /usr/sbin/nft /out/usr/sbin/nft \
 && ldd /usr/sbin/nft \
    | awk '$3 ~ /^\// { print $3 }' \
    | grep -Ev '/(libc|libm|libgcc_s|ld-linux[^/]*)\.so' \
    | xargs -r cp --parents -L -t /out

# --- final: distroless (glibc, CA certificates, no shell, no package manager) ------------
FROM gcr.io/distroless/cc-debian13:nonroot
COPY --from=nft /out/ /
COPY --from=build /out/ /
# The controller's default identity; the DaemonSet overrides it with runAsUser: 0.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/cni-cloud-controller"]
CMD ["run"]
