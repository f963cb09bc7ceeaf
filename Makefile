# reportes: make run starts everything locally, make test runs the suite.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/reportes/reportes/internal/buildinfo.Version=$(VERSION)
PKGS    := ./...

.PHONY: all build run test test-short fuzz bench chaos lint clean

all: build

## build: versioned binaries in bin/
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/ingestor ./cmd/api ./cmd/devstack

## run: start PostgreSQL, NATS and FerretDB locally (unless the environment names yours), then the ingestor and the API on :8002
run: build
	./bin/devstack -data .data

## test: the whole suite with the race detector, against real services it starts itself
test:
	$(GO) test -race -count=1 -timeout 30m $(PKGS)
	$(MAKE) fuzz FUZZTIME=5s

## fuzz: run every fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $(FUZZTIME) ./pkg/cdc
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./pkg/projection
	$(GO) test -run '^$$' -fuzz '^FuzzRow$$' -fuzztime $(FUZZTIME) ./pkg/cdc/postgres

## chaos: the long fault suite (ten times the load and faults of make test)
chaos:
	REPORTES_CHAOS=10 $(GO) test -race -count=1 -timeout 60m -run 'Fault|Graceful|Crashes' -v ./e2e

## bench: the benchmark suite; writes bench/results.md
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./pkg/...

## lint: go vet and golangci-lint (pinned in .golangci.yml)
lint:
	$(GO) vet $(PKGS)
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.6.2 run

clean:
	rm -rf bin .data
