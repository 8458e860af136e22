# syntax=docker/dockerfile:1
# Manifold: a static binary on distroless, running as non-root.
#   docker build --build-arg VERSION=$(git describe --tags --always) -t manifold .
#   docker run -p 8080:8080 -p 9091:9091 manifold

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
COPY config.yaml /etc/manifold/config.yaml
ENV MANIFOLD_CONFIG=/etc/manifold/config.yaml \
    MANIFOLD_ADMIN_ADDRESS=:9091
USER nonroot:nonroot
EXPOSE 8080 9091
# No shell or curl in the image: the binary probes itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/manifold", "health"]
ENTRYPOINT ["/usr/local/bin/manifold"]
CMD ["run"]
