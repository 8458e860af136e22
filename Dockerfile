# syntax=docker/dockerfile:1
# Manifold: a static binary on distroless, running as non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t manifold .
#   docker run -p 8080:8080 -v $PWD/conf:/etc/manifold:ro manifold   # conf/config.yaml
#   docker run -p 8080:8080 -e MANIFOLD_CONFIG=/etc/manifold/demo.yaml manifold   # the demo
#
# Production-safe defaults: the image serves only the config you mount at
# /etc/manifold/config.yaml (with none there it refuses to start; mount the
# directory, not the file, so that an editor's atomic save is seen), and it
# sets no MANIFOLD_* override, because environment beats file: whatever your
# file says about admin.address, demo or anything else is what runs. The
# admin listener (/metrics, no authentication) therefore follows your file:
# off with admin.address "", loopback-only (127.0.0.1:9091) when the key is
# absent; to scrape it, set admin.address ":9091" (or
# -e MANIFOLD_ADMIN_ADDRESS=:9091) and publish 9091 on a private network.
# The demo config (demo: true, /__demo/ with ?delay= and ?fail=) ships as
# /etc/manifold/demo.yaml and runs only when asked for. See docs/deploy.md.

# The builder is pinned to the Go version in go.mod.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# The same script CI runs: CGO_ENABLED=0, -trimpath, version stamped.
RUN VERSION="${VERSION}" ./scripts/build.sh /out/manifold

# distroless/static: CA certificates, tzdata, /etc/passwd with nonroot; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/manifold /usr/local/bin/manifold
COPY config.yaml /etc/manifold/demo.yaml
# The demo's key set (DEMO ONLY), where demo.yaml's relative jwks_file finds it.
COPY docs/examples/jwt/demo-jwks.json /etc/manifold/docs/examples/jwt/demo-jwks.json
ENV MANIFOLD_CONFIG=/etc/manifold/config.yaml
USER nonroot:nonroot
# 9091 (admin) is deliberately not exposed: it has no authentication.
EXPOSE 8080
# No shell or curl in the image: the binary probes /__health on the main
# listener (server.address of $MANIFOLD_CONFIG), so it works with admin off.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/manifold", "health"]
ENTRYPOINT ["/usr/local/bin/manifold"]
CMD ["run"]
