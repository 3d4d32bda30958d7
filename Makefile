# onedrivefs — build, test, demo, bench, lint.
GO       ?= go
BIN      := bin/onedrivefs
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -X main.version=$(VERSION)
PKGS     := ./...

.PHONY: all build test demo bench lint clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/onedrivefs

# The whole suite, race detector on, no cached results.
test:
	$(GO) test -race -count=1 -timeout 25m $(PKGS)

# The built-in fake drive and a guided tour (see README).
demo: build
	./$(BIN) demo $(DEMO_ARGS)

# Benchmarks: the packages' Go benchmarks, then the scenario driver
# (cmd/odbench; needs FUSE like the mount tests), which mounts the fake drive,
# measures every scenario against its reference, prints the tables and writes
# BENCHMARKS.md. Figures are read, never asserted. A smoke run that writes
# nothing: make bench BENCH_FLAGS=-quick
BENCH_FLAGS ?=
# The scale benchmarks (remote/graphtest, metastore) use a drive of 1,000
# folders of 100 files; the issue's million items (several minutes, 1 GB):
# make bench BENCH_GENERATE=folders=10000,files=100
BENCH_GENERATE ?=
bench: build
	ONEDRIVEFS_BENCH_GENERATE=$(BENCH_GENERATE) $(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 60m $(PKGS)
	$(GO) build -o bin/odbench ./cmd/odbench
	./bin/odbench -bin $(BIN) $(BENCH_FLAGS)

# gofmt, go vet and staticcheck (its default checks). staticcheck is run at a
# pinned version with `go run`, so it stays out of go.mod; the first run
# fetches it through the module proxy.
STATICCHECK ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)

clean:
	rm -rf bin
