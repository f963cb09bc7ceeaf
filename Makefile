# reportes: make run starts everything locally, make test runs the suite.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/reportes/reportes/internal/buildinfo.Version=$(VERSION)
PKGS    := ./...

.PHONY: all build run test fuzz bench chaos lint docs-assets clean

all: build

## build: versioned binaries in bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/ingestor ./cmd/api ./cmd/projector ./cmd/devstack

## run: start PostgreSQL, NATS and FerretDB locally (unless the environment names yours), then the ingestor and the API on :8002
run: build
	./bin/devstack -data .data

## test: the whole suite with the race detector, against real services it starts itself
test:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)
	$(MAKE) fuzz FUZZTIME=2s

## fuzz: run every fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## chaos: the long fault suite (ten times the load and faults of make test)
chaos:
	REPORTES_CHAOS=10 $(GO) test -race -count=1 -timeout 60m -run 'Fault|Graceful|Crashes' -v ./e2e

## bench: the benchmark suite (under 15 minutes on 2 cores); writes bench/results.md
bench: build
	mkdir -p bench/out
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./pkg/... | tee bench/out/hotpaths.txt
	$(GO) run ./bench -api bin/api -ingestor bin/ingestor -projector bin/projector -hotpaths bench/out/hotpaths.txt -out bench/results.md

## lint: go vet and golangci-lint (pinned in .golangci.yml)
lint:
	$(GO) vet $(PKGS)
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0 run

## docs-assets: refresh the Swagger UI and ReDoc files embedded in the API from npm
SWAGGER_UI_VERSION ?= 5.35.0
REDOC_VERSION      ?= 2.5.4
docs-assets:
	rm -rf .npm-assets && mkdir -p .npm-assets
	cd .npm-assets && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) redoc@$(REDOC_VERSION) && \
		for f in *.tgz; do mkdir -p "$${f%.tgz}" && tar xzf "$$f" -C "$${f%.tgz}" --strip-components 1; done
	cp .npm-assets/swagger-ui-dist-$(SWAGGER_UI_VERSION)/swagger-ui-bundle.js .npm-assets/swagger-ui-dist-$(SWAGGER_UI_VERSION)/swagger-ui.css internal/httpapi/assets/
	cp .npm-assets/redoc-$(REDOC_VERSION)/bundles/redoc.standalone.js internal/httpapi/assets/
	printf 'swagger-ui-dist %s (npm): swagger-ui-bundle.js, swagger-ui.css\nredoc %s (npm): bundles/redoc.standalone.js\nRefresh with: make docs-assets SWAGGER_UI_VERSION=... REDOC_VERSION=...\n' $(SWAGGER_UI_VERSION) $(REDOC_VERSION) > internal/httpapi/assets/VERSIONS
	rm -rf .npm-assets

clean:
	rm -rf bin .data
