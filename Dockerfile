# syntax=docker/dockerfile:1
#
# Base images are referenced by digest in release builds, so that a moved
# tag (or a compromised registry tag) cannot change what is built or run.
# The defaults below are tags: this repository does not ship a digest it has
# not resolved from the registry itself. A release build passes the digests
# and sets REQUIRE_DIGESTS=true, which fails the build on an unpinned image:
#
#   go_digest=$(crane digest golang:1.26)              # or:
#   #   docker buildx imagetools inspect golang:1.26 --format '{{json .Manifest.Digest}}'
#   run_digest=$(crane digest gcr.io/distroless/static:nonroot)
#   docker build \
#     --build-arg GO_IMAGE=golang:1.26@$go_digest \
#     --build-arg RUNTIME_IMAGE=gcr.io/distroless/static:nonroot@$run_digest \
#     --build-arg REQUIRE_DIGESTS=true -t ghcr.io/erpsync/erpsync-operator:vX.Y.Z .
#
# To pin in this file instead, replace the defaults with name:tag@sha256:…
# (keeping the tag for readers) and let Renovate or Dependabot
# ("docker" ecosystem) propose digest updates.
ARG GO_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=gcr.io/distroless/static:nonroot

# Build the manager binary.
FROM ${GO_IMAGE} AS builder
ARG GO_IMAGE
ARG RUNTIME_IMAGE
ARG REQUIRE_DIGESTS=false
ARG TARGETOS
ARG TARGETARCH
RUN for ref in "$GO_IMAGE" "$RUNTIME_IMAGE"; do \
      case "$ref" in \
        *@sha256:*) ;; \
        *) if [ "$REQUIRE_DIGESTS" = true ]; then echo "base image $ref is not pinned by digest" >&2; exit 1; fi; \
           echo "warning: base image $ref is not pinned by digest (set REQUIRE_DIGESTS=true for releases)" >&2 ;; \
      esac; \
    done
WORKDIR /workspace
# Cache modules before copying the source, so source edits do not refetch them.
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY connectors/ connectors/
COPY controllers/ controllers/
COPY internal/ internal/
COPY sinks/ sinks/
# A static binary (no cgo: the SQLite sink is pure Go).
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -ldflags="-s -w" -o manager ./cmd/manager

# A distroless, non-root runtime image.
FROM ${RUNTIME_IMAGE}
WORKDIR /
COPY --from=builder /workspace/manager .
USER 65532:65532
ENTRYPOINT ["/manager"]
