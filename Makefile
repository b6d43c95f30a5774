# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.

GO        ?= go
BINARY    ?= crmon
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/crmon-dev/crmon/internal/version.Version=$(VERSION)
# urfave_cli_no_docs leaves out the CLI library's man page and Markdown
# writers, which crmon does not use: their Markdown parser compiles its
# tables when the program starts (218 KB of heap kept for its whole life).
GOTAGS    ?= urfave_cli_no_docs
RUN_ARGS  ?= --collection-interval 1s
IMAGE     ?= crmon
# The build host's CA bundle, copied into the image for the exporters and
# alert channels (Debian: the ca-certificates package).
CA_CERTS  ?= /etc/ssl/certs/ca-certificates.crt
# The image's build context: the binary and the CA bundle, nothing else.
IMAGE_CONTEXT ?= dist/image
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
# systemd reads units from /usr/local/lib/systemd/system and /usr/lib/systemd/system.
UNITDIR   ?= $(PREFIX)/lib/systemd/system
export PATH := $(PATH):/usr/local/go/bin
# The Go release crmon is built and tested with (go.mod's toolchain line):
# the go command fetches it through the module proxy the first time. It
# carries the standard library fixes govulncheck asks for.
export GOTOOLCHAIN ?= go1.26.11
# Screenshots and other files the tests leave for a person to look at.
export CRMON_TEST_ARTIFACTS ?= $(CURDIR)/test-artifacts

.DEFAULT_GOAL := help
.PHONY: help deps docker-env generate check-generated build image install run test test-unit e2e bench bench-agent lint format

help: ## Show this help
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

deps: ## Install build and test dependencies with apt-get (as root)
	@scripts/deps.sh

docker-env: deps ## Start dockerd and build the local test image (as root)
	@if [ "$$(id -u)" -eq 0 ]; then scripts/docker-env.sh; else echo "docker-env: not root, skipping"; fi

generate: ## Regenerate vmlinux.h-based eBPF objects and Go bindings (needs clang-19)
	$(GO) generate ./internal/probe/...

check-generated: ## Fail if the committed eBPF objects do not match their sources
	@scripts/check-generated.sh

build: ## Build the crmon binary, static (no clang needed: eBPF objects are committed)
	CGO_ENABLED=0 $(GO) build -trimpath -tags '$(GOTAGS)' -ldflags '$(LDFLAGS)' -o $(BINARY) ./cmd/crmon

image: build ## Build the container image crmon:<version> and crmon:latest (FROM scratch: pulls nothing)
	@test -r $(CA_CERTS) || { echo "image: no CA bundle at $(CA_CERTS) (apt-get install ca-certificates, or CA_CERTS=FILE)"; exit 1; }
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)
	cp $(BINARY) $(IMAGE_CONTEXT)/crmon
	cp $(CA_CERTS) $(IMAGE_CONTEXT)/ca-certificates.crt
	docker build -f Dockerfile -t $(IMAGE):$(VERSION) -t $(IMAGE):latest \
		--build-arg VERSION=$(VERSION) \
		--build-arg REVISION=$$(git rev-parse HEAD 2>/dev/null || echo unknown) \
		--build-arg CREATED=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
		$(IMAGE_CONTEXT)
	@docker image inspect -f '{{.RepoTags}} {{.Size}} bytes' $(IMAGE):$(VERSION)

install: build ## Install the binary, the systemd unit and a default config (DESTDIR, PREFIX, SYSCONFDIR, UNITDIR)
	install -D -m 0755 $(BINARY) $(DESTDIR)$(BINDIR)/crmon
	install -d -m 0755 $(DESTDIR)$(UNITDIR)
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' deploy/systemd/crmon.service >$(DESTDIR)$(UNITDIR)/crmon.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/crmon.service
	@# An existing config is the operator's: never overwritten.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/crmon/crmon.toml ]; then \
		echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/crmon/crmon.toml"; \
	else \
		install -D -m 0644 deploy/systemd/crmon.toml $(DESTDIR)$(SYSCONFDIR)/crmon/crmon.toml; \
	fi
	@echo "installed; then: systemctl daemon-reload && systemctl enable --now crmon"

run: build ## Build and run the agent with the default config (root for eBPF)
	@if [ "$$(id -u)" -eq 0 ] && command -v dockerd >/dev/null; then scripts/docker-env.sh >/dev/null || true; fi
	./$(BINARY) run $(RUN_ARGS)

test: deps docker-env check-generated lint ## Run every test: lint, unit, fixtures, golden e2e, eBPF and Docker ground truth
	@scripts/check-short.sh
	@scripts/host-state.sh --tidy >.host-state.before
	$(GO) test -count=1 -p 1 -timeout 40m ./...
	@scripts/host-state.sh | diff -u .host-state.before - >&2 || { echo "the tests left the host changed (see the diff above)" >&2; exit 1; }
	@rm -f .host-state.before

test-unit: ## Run only the tests that need no root, eBPF or Docker, and change nothing on the host
	$(GO) test -count=1 -short ./...

e2e: ## Run the golden end-to-end test (-update to rewrite testdata/e2e-output.txt)
	$(GO) test -count=1 -run TestEndToEnd ./cmd/crmon/ $(if $(UPDATE),-args -update)

bench: ## Run the Go benchmarks: collection cycle, scrape, probe reads, exec overhead
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./internal/... | tee bench.out
	$(GO) test -run '^$$' -bench 'ExecOverhead|Scrape' -benchtime 60x ./cmd/crmon | tee -a bench.out

bench-agent: build ## Agent CPU (% of one core) and RSS after a few minutes at 1 s (as root)
	@scripts/bench-agent.sh

lint: ## go vet, gofmt, staticcheck and govulncheck (offline, against a pinned vulnerability database)
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) tool staticcheck ./...
	@scripts/vulncheck.sh

format: ## gofmt every Go file
	gofmt -w $$(git ls-files '*.go')
