# momgate build entry points. `make run` and `make test` are the two
# commands the README promises work on a fresh machine.

GO        ?= go
BIN       := bin
BINARIES  := momgate-server momgate-mom momgate-qmgr momgate-migrate
FUZZTIME  ?= 10s
BENCHTIME ?= 1s

.PHONY: all build run test vet race bench fuzz lint clean

all: build

build:
	@mkdir -p $(BIN)
	@for b in $(BINARIES); do \
		$(GO) build -trimpath -o $(BIN)/$$b ./cmd/$$b || exit 1; \
	done

# Starts a demo cluster on 127.0.0.1-127.0.0.4 and keeps it up until Ctrl-C.
run: build
	@./scripts/demo.sh $(BIN)

vet:
	$(GO) vet ./...

# Unit, fuzz-seed and integration tests under the race detector.
test: vet
	$(GO) test -race -count=1 -timeout 15m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@./scripts/fuzz.sh $(FUZZTIME)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf $(BIN)
