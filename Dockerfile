# Multi-stage build of the production binaries.
#   docker build --target ingestor  -t reportes-ingestor .
#   docker build --target api       -t reportes-api .
#   docker build --target projector -t reportes-projector .   (VIEW_STORE=postgres)
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/reportes/reportes/internal/buildinfo.Version=${VERSION}" \
      -o /out/ ./cmd/ingestor ./cmd/api ./cmd/projector

# Static binaries on distroless: no shell, no package manager, non-root.
FROM gcr.io/distroless/static-debian12:nonroot AS ingestor
COPY --from=build /out/ingestor /usr/local/bin/ingestor
USER nonroot:nonroot
EXPOSE 8003
ENTRYPOINT ["/usr/local/bin/ingestor"]

FROM gcr.io/distroless/static-debian12:nonroot AS api
COPY --from=build /out/api /usr/local/bin/api
USER nonroot:nonroot
EXPOSE 8002
ENTRYPOINT ["/usr/local/bin/api"]

FROM gcr.io/distroless/static-debian12:nonroot AS projector
COPY --from=build /out/projector /usr/local/bin/projector
USER nonroot:nonroot
EXPOSE 8004
ENTRYPOINT ["/usr/local/bin/projector"]
