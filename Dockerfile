# syntax=docker/dockerfile:1
#
# Base images are pinned by digest, so that a moved tag (or a compromised
# registry tag) cannot change what is built or run: a digest names content,
# so a wrong one fails the pull, it never pulls something else. The tag stays
# beside it for readers and for Renovate or Dependabot ("docker" ecosystem),
# which propose digest updates. These digests were taken from public
# repositories that pin the same tags (each seen in at least two of them),
# not resolved from the registry here (this workplace reaches none); a
# release pipeline should check them once:
#
#   crane digest golang:1.26
#   crane digest gcr.io/distroless/static:nonroot
#
# and may override either with --build-arg. A build with an unpinned image
# fails unless REQUIRE_DIGESTS=false.
ARG GO_IMAGE=golang:1.26@sha256:3aff6657219a4d9c14e27fb1d8976c49c29fddb70ba835014f477e1c70636647
ARG RUNTIME_IMAGE=gcr.io/distroless/static:nonroot@sha256:f7f8f729987ad0fdf6b05eeeae94b26e6a0f613bdf46feea7fc40f7bd72953e6

# Build the manager binary.
FROM ${GO_IMAGE} AS builder
ARG GO_IMAGE
ARG RUNTIME_IMAGE
ARG REQUIRE_DIGESTS=true
ARG TARGETOS
ARG TARGETARCH
RUN for ref in "$GO_IMAGE" "$RUNTIME_IMAGE"; do \
      case "$ref" in \
        *@sha256:*) ;; \
        *) if [ "$REQUIRE_DIGESTS" = true ]; then echo "base image $ref is not pinned by digest" >&2; exit 1; fi; \
           echo "warning: base image $ref is not pinned by digest" >&2 ;; \
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
