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

# Benchmarks; figures are read from the output, never asserted.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 60m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf bin
