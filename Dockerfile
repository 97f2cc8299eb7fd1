# syntax=docker/dockerfile:1
# Pentecost server image: one static binary on an empty (scratch) base.
#
#   docker build -t pentecost --build-arg VERSION="$(git describe --tags --always --dirty)" .
#   docker run -p 8080:8080 -v pentecost-data:/data pentecost
#
# Why scratch and not distroless: the binary is static and needs from the
# system only CA certificates (outbound TLS: OIDC/JWKS, ACME, cloud
# engines), a writable data dir and a /tmp. All three come from the build
# stage below, so the image has no second base image to pin and follow,
# and nothing in it but our binary. The price is no /etc/passwd (the user
# is a bare number) and no shell or curl (the health check is the binary).

ARG GO_VERSION=1.26.8

# The build runs on the builder's own platform and cross-compiles, which is
# fast for arm64 (a Raspberry Pi at a venue) since there is no cgo.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION
# scripts/build-static holds the build flags, shared with the release
# archives and with scripts/check-packaging, which tests this binary.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	GOOS=$TARGETOS GOARCH=$TARGETARCH VERSION=$VERSION scripts/build-static /rootfs/usr/local/bin/pentecost
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp /data \
	&& cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
	&& chmod 1777 /rootfs/tmp \
	&& chmod 0700 /data

FROM scratch
COPY --from=build /rootfs/ /
# Owned by the user below: a named volume mounted here starts with this
# owner; a bind-mounted host directory must be chowned to 65532 by hand.
COPY --from=build --chown=65532:65532 /data /data
# Not root; a number, since scratch has no /etc/passwd to name a user in.
USER 65532:65532
WORKDIR /data
# Listen on every address of the container (":8080" is 0.0.0.0 and ::);
# the data dir is the volume. Every other setting: pentecost serve --help.
ENV PENTECOST_ADDR=:8080 \
	PENTECOST_DATA_DIR=/data \
	LOG_FORMAT=json
VOLUME /data
# 8080: HTTP, WebSocket, /metrics for private addresses. 8443: HTTPS with
# PENTECOST_TLS_SELF_SIGNED=true. (PENTECOST_TLS_AUTO serves :443 and :80,
# which a non-root user may bind in a container: Docker sets
# net.ipv4.ip_unprivileged_port_start=0 in its network namespaces.)
EXPOSE 8080 8443
# No curl in the image: the binary checks itself, at the port of
# PENTECOST_ADDR, so changing that variable needs nothing else here.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
	CMD ["/usr/local/bin/pentecost", "healthcheck", "--timeout", "4"]
# SIGTERM (docker stop) drains: clients are asked to move to another node
# for SHUTDOWN_TIMEOUT_SECONDS (15); give docker stop at least that (-t 20).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/pentecost"]
CMD ["serve"]
