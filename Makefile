# momgate build entry points. `make run` and `make test` are the two
# commands the README promises work on a fresh machine.

GO        ?= go
BIN       := bin
BINARIES  := momgate-server momgate-mom momgate-qmgr momgate-migrate
FUZZTIME  ?= 10s
BENCHTIME ?= 1s

.PHONY: all build run test vet race bench bench-conn bench-openpbs bench-munge scale scale-growth scale-ha munge-deps munge-tools munge-check fuzz lint clean man install  uninstall test-openpbs plugin

# Install layout; `make install PREFIX=/usr DESTDIR=/tmp/pkg` for packaging.
# Units and configs name BINDIR and SYSCONFDIR; DESTDIR only stages files.
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/momgate
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
INSTALL    ?= install
# Rewrites the default paths in dist/ for this layout.
DISTSED    := sed -e 's|/usr/local/bin|$(BINDIR)|g' -e 's|/etc/momgate|$(SYSCONFDIR)/momgate|g' \
              -e 's|/usr/local/share/doc/momgate|$(DOCDIR)|g'

all: build

build:
	@mkdir -p $(BIN)
	@for b in $(BINARIES); do \
		$(GO) build -trimpath -o $(BIN)/$$b ./cmd/$$b || exit 1; \
	done

# Starts a demo cluster on 127.0.0.1-127.0.0.4, shows what it admits and
# what it refuses, and keeps it up until Ctrl-C, which stops it cleanly
# (exit 0): momgate-demo gives the demo the terminal, so Ctrl-C does not
# interrupt make itself, nor a reader of the output (make run | tee log).
run: build
	@$(GO) build -trimpath -o $(BIN)/momgate-demo ./tools/cmd/momgate-demo
	@$(BIN)/momgate-demo foreground ./scripts/demo.sh $(BIN)

vet:
	$(GO) vet ./...

# Unit, fuzz-seed and integration tests under the race detector.
test: vet
	$(GO) test -race -count=1 -timeout 15m ./...

# libauth_momgate.so, the OpenPBS authentication plugin (contrib/openpbs/
# plugin/): C, libc, and OpenSSL's libcrypto (Debian package libssl-dev)
# for the records of PBS_ENCRYPT_METHOD=momgate; every PBS daemon and
# command already links libcrypto. Authentication's cryptography is in the
# momgate daemons.
PLUGIN_SRC    := $(wildcard contrib/openpbs/plugin/*.c)
PLUGIN_CFLAGS ?= -O2 -g -std=c11 -Wall -Wextra -Werror -fPIC -fvisibility=hidden \
                 -fstack-protector-strong -D_FORTIFY_SOURCE=2
PLUGIN_LIBS   ?= -lcrypto -pthread
plugin: $(BIN)/libauth_momgate.so

$(BIN)/libauth_momgate.so: $(PLUGIN_SRC) $(wildcard contrib/openpbs/plugin/*.h)
	@mkdir -p $(BIN)
	@printf '#include <openssl/evp.h>\n' | $(CC) -E - >/dev/null 2>&1 || \
		{ echo "plugin: OpenSSL headers not found: apt-get install libssl-dev" >&2; exit 1; }
	$(CC) $(PLUGIN_CFLAGS) -shared -Wl,-z,relro,-z,now -o $@ $(PLUGIN_SRC) $(PLUGIN_LIBS)

# A real OpenPBS cluster in network namespaces (contrib/openpbs/test/):
# needs root and ../shared/openpbs; skipped with the reason otherwise.
# Never part of `make test`.
# Stock OpenPBS: resvport first (the harness itself), then momgate, then
# momgate with PBS_ENCRYPT_METHOD=momgate. Then OpenPBS with the patches of
# contrib/openpbs/patches (built once per series): momgate with encryption
# (and delete node closing the node's open connection at pbs_comm), and
# resvport, which they must not change. Last, the move from resvport to
# momgate with a job running (docs/OPENPBS.md 8.2).
test-openpbs:
	@for args in "--auth resvport" "--auth momgate" "--auth momgate --encrypt" \
		"--auth momgate --encrypt --patched" "--auth resvport --patched" "--migrate"; do \
		rc=0; contrib/openpbs/test/harness.sh $$args || rc=$$?; \
		if [ $$rc -eq 77 ]; then echo "test-openpbs: skipped (reason above)"; exit 0; fi; \
		[ $$rc -eq 0 ] || exit $$rc; \
	done

# Go benchmarks of every package (the record layer against the bare AEAD,
# IM request/response under each protection, ...), then the loopback
# phases through a real server and MOM: raw connections, PING swaps,
# session swaps with forward secrecy, IM polls under none, auth and encrypt,
# with their ratios (momgate-bench run; MUNGE figures: make bench-munge).
BENCH_DURATION ?= 3s
BENCH_WARMUP   ?= 1s
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...
	$(GO) build -trimpath -o $(BIN)/momgate-bench ./tools/cmd/momgate-bench
	./$(BIN)/momgate-bench run --bin $(BIN) --duration $(BENCH_DURATION) --warmup $(BENCH_WARMUP) --cost

# Inside OpenPBS (docs/PERFORMANCE.md): handshakes per second through
# libauth_momgate.so and OpenPBS's libauth_munge.so, and the time for ten
# pbs_moms to join the namespace cluster. Root; needs ../shared/openpbs.
bench-openpbs:
	@./scripts/bench-openpbs.sh

# Raw loopback connections vs momgate PING swaps through a real MOM vs
# MUNGE-authenticated connections vs MUNGE's own remunge, in one run.
# Installs munge, libmunge-dev and gcc if missing (as root, with apt-get);
# if it cannot, it says what is missing and measures the momgate figures.
bench-munge: build
	$(GO) build -trimpath -o $(BIN)/momgate-bench ./tools/cmd/momgate-bench
	@if ./tools/munge/install-deps.sh; then $(MAKE) --no-print-directory munge-tools; \
	else echo "bench-munge: MUNGE figures will be skipped" >&2; fi
	@./scripts/bench-munge.sh $(BIN)

# The connection path alone (docs/PERFORMANCE.md, issue 15 item 2): raw
# loopback vs PING swaps through a real MOM, with CPU time and allocations
# per operation of each process, then system calls per operation under
# strace -c. No MUNGE.
bench-conn: build
	$(GO) build -trimpath -o $(BIN)/momgate-bench ./tools/cmd/momgate-bench
	$(BIN)/momgate-bench run --bin $(BIN) --cost --strace

# One server and one MOM against SCALE_NODES simulated MOMs on loopback
# (docs/PERFORMANCE.md, scale): rates, CPU per heartbeat, memory, key
# rotation, and SCALE_CHURN deletes then re-creates. scale-growth runs it at
# 1,000, 10,000 and 100,000 nodes and prints the growth table.
SCALE_NODES ?= 10000
SCALE_CHURN ?= 1000
SCALE_HEARTBEATS ?= 50
SCALE_FLAGS ?=
scale: build
	$(GO) build -trimpath -o $(BIN)/momgate-scale ./tools/cmd/momgate-scale
	$(BIN)/momgate-scale --bin $(BIN) --nodes $(SCALE_NODES) --churn $(SCALE_CHURN) --heartbeats $(SCALE_HEARTBEATS) $(SCALE_FLAGS)
scale-growth: build
	$(GO) build -trimpath -o $(BIN)/momgate-scale ./tools/cmd/momgate-scale
	$(BIN)/momgate-scale --bin $(BIN) --growth 1000,10000,100000 --churn $(SCALE_CHURN) --heartbeats $(SCALE_HEARTBEATS) $(SCALE_FLAGS)

# A replicated group of three servers on 127.0.5.1-.3 (issue 14, docs/HA.md)
# with the daemon's default raft timing, and SCALE_NODES simulated MOMs
# listing all three and moving between them by the MOM's own failover
# rules: kill -9 of the leader, then the time to a write on a survivor and
# until every MOM is in session with the new leader.
scale-ha: build
	$(GO) build -trimpath -o $(BIN)/momgate-scale ./tools/cmd/momgate-scale
	$(BIN)/momgate-scale --bin $(BIN) --group 3 --nodes $(SCALE_NODES) $(SCALE_FLAGS)

# The MUNGE-authenticated connection client and server (tools/munge), built
# with Debian's gcc against libmunge (Debian package libmunge-dev).
MUNGE_CC     ?= gcc
MUNGE_CFLAGS ?= -std=c11 -D_GNU_SOURCE -O2 -g -pthread -Wall -Wextra -Wshadow -Wformat=2
MUNGE_TOOLS  := $(BIN)/munge-conn-server $(BIN)/munge-conn-client
munge-deps:
	@./tools/munge/install-deps.sh
munge-tools: $(MUNGE_TOOLS)
$(BIN)/munge-conn-%: tools/munge/munge-conn-%.c tools/munge/conn.c tools/munge/conn.h
	@mkdir -p $(BIN)
	$(MUNGE_CC) $(MUNGE_CFLAGS) -o $@ $< tools/munge/conn.c -lmunge

# Only the self-checks of the MUNGE connection tools against a private
# munged (accept, replay refused, garbage refused, wrong uid refused).
munge-check: munge-deps munge-tools
	@BENCH_MUNGE_CHECK_ONLY=1 ./scripts/bench-munge.sh $(BIN)

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@./scripts/fuzz.sh $(FUZZTIME)

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Man pages (section 8), rendered by each binary from its flags and help
# (internal/cliutil/man.go).
man: build
	@mkdir -p $(BIN)/man
	@for b in $(BINARIES); do \
		$(BIN)/$$b man > $(BIN)/man/$$b.8 || exit 1; \
	done

# Binaries, systemd units, sysusers entry, example configs (never
# overwriting an existing one), man pages, shell completions, docs.
install: build man
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
		$(DESTDIR)$(SYSCONFDIR)/momgate $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR)
	@for b in $(BINARIES); do \
		$(INSTALL) -m 0755 $(BIN)/$$b $(DESTDIR)$(BINDIR)/$$b || exit 1; \
		$(INSTALL) -m 0644 $(BIN)/man/$$b.8 $(DESTDIR)$(MANDIR)/man8/$$b.8 || exit 1; \
		$(BIN)/$$b completion bash > $(DESTDIR)$(BASHCOMPDIR)/$$b || exit 1; \
		$(BIN)/$$b completion zsh > $(DESTDIR)$(ZSHCOMPDIR)/_$$b || exit 1; \
		$(BIN)/$$b completion fish > $(DESTDIR)$(FISHCOMPDIR)/$$b.fish || exit 1; \
	done
	@for u in momgate-server.service momgate-mom.service; do \
		$(DISTSED) dist/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	$(INSTALL) -m 0644 dist/momgate.sysusers $(DESTDIR)$(SYSUSERSDIR)/momgate.conf
	@for c in server.toml mom.toml; do \
		dst=$(DESTDIR)$(SYSCONFDIR)/momgate/$$c; \
		if [ -e "$$dst" ]; then echo "kept existing $$dst"; \
		else $(DISTSED) dist/$$c > "$$dst" && chmod 0644 "$$dst" || exit 1; fi; \
	done
	$(INSTALL) -m 0644 docs/DEPLOYMENT.md docs/PROTOCOL.md $(DESTDIR)$(DOCDIR)/
	@echo "installed under $(DESTDIR)$(PREFIX); next: systemd-sysusers, then docs/DEPLOYMENT.md"

# Removes what install put in place except configs and state.
uninstall:
	@for b in $(BINARIES); do \
		rm -f $(DESTDIR)$(BINDIR)/$$b $(DESTDIR)$(MANDIR)/man8/$$b.8 \
			$(DESTDIR)$(BASHCOMPDIR)/$$b $(DESTDIR)$(ZSHCOMPDIR)/_$$b $(DESTDIR)$(FISHCOMPDIR)/$$b.fish; \
	done
	rm -f $(DESTDIR)$(UNITDIR)/momgate-server.service $(DESTDIR)$(UNITDIR)/momgate-mom.service \
		$(DESTDIR)$(SYSUSERSDIR)/momgate.conf
	rm -rf $(DESTDIR)$(DOCDIR)

clean:
	rm -rf $(BIN)
