# otok — build, cross-compile, test, benchmark.
# Run `make help` for the targets. Every test target installs what it needs.

SHELL        := /bin/bash
GO           ?= go
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT       ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS      := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GOFLAGS_REL  := -trimpath -ldflags '$(LDFLAGS)'
DIST         := dist
# Packages with unit tests (everything but the system tests under test/).
UNIT_PKGS     = $(shell $(GO) list ./... | grep -v '/test/')
SYSTEM_PKGS   = $(shell $(GO) list ./test/... 2>/dev/null)
# mipsle stripped size limit in bytes (issue 2: 8 MB, to be tightened).
SIZE_LIMIT_MIPSLE ?= 8000000

export CGO_ENABLED=0

.PHONY: help build cross size test deps vet unit unit-qemu system bench demo fuzz clean ipk apk test-qemu security-report

help:
	@echo "make build      host binary in $(DIST)/otok"
	@echo "make cross      static binaries for mipsle mips arm arm64 amd64 in $(DIST)/"
	@echo "make size       stripped and xz -9e sizes of the cross binaries"
	@echo "make test       deps + vet + unit tests (native, mips, arm under qemu-user) + system tests"
	@echo "make bench      every benchmark, one table"
	@echo "make test-qemu  otok on emulated routers (mipsel mips armhf arm64; QEMU_ARCHES=, QEMU_PKGS=)"
	@echo "make security-report  escape probes, hostile inputs, kill -9 faults, fuzz pass -> test/security/REPORT.md (FUZZTIME=60s, SECURITY_QEMU=1: probes in the qemu guests too)"
	@echo "make demo       build an image and run containers end to end (root)"
	@echo "make ipk ARCH=A OpenWrt opkg package dist/otok_<version>_<A>.ipk (A: mipsel_24kc, x86_64, ...)"
	@echo "make apk ARCH=A OpenWrt 25.12+ apk v3 package dist/otok-<version>_<A>.apk"

build:
	@mkdir -p $(DIST)
	$(GO) build $(GOFLAGS_REL) -o $(DIST)/otok ./cmd/otok

# name:GOARCH:extra-env
CROSS_TARGETS := mipsle:mipsle:GOMIPS=softfloat mips:mips:GOMIPS=softfloat arm:arm:GOARM=7 arm64:arm64: amd64:amd64:

cross:
	@mkdir -p $(DIST)
	@set -e; for t in $(CROSS_TARGETS); do \
		name=$${t%%:*}; rest=$${t#*:}; arch=$${rest%%:*}; extra=$${rest#*:}; \
		echo "  GO $$name"; \
		env GOOS=linux GOARCH=$$arch $$extra $(GO) build $(GOFLAGS_REL) -o $(DIST)/otok-$$name ./cmd/otok; \
	done

size: cross
	@bash test/size.sh $(DIST) $(SIZE_LIMIT_MIPSLE)

deps:
	@bash test/deps.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }

unit:
	$(GO) test -count=1 $(UNIT_PKGS)

# The same unit tests on big-endian MIPS and on ARM under qemu-user. Tests
# that need namespaces skip there with a printed reason (qemu-user rejects
# clone flags); they run for real in the qemu-system guests.
unit-qemu:
	GOARCH=mips GOMIPS=softfloat $(GO) test -count=1 -exec qemu-mips-static $(UNIT_PKGS)
	GOARCH=arm GOARM=7 $(GO) test -count=1 -exec qemu-arm-static $(UNIT_PKGS)

system: build cross
	OTOK_BIN=$(CURDIR)/$(DIST)/otok OTOK_DIST=$(CURDIR)/$(DIST) $(GO) test -count=1 -p 1 $(SYSTEM_PKGS)

test: deps vet unit unit-qemu system $(if $(filter 1,$(OTOK_SKIP_QEMU)),,test-qemu)

# Emulated routers under qemu-system (test/qemu/README.md): the lifecycle
# scenario and the system test packages (go test -exec) in each guest.
# QEMU_ARCHES="mipsel mips armhf arm64" (default all), QEMU_PKGS="./runtime/
# …" or none, QEMU_SCENARIO=0, QEMU_JOBS (default 3); cache OTOK_QEMU_CACHE
# (/var/cache/otok-qemu). `make test` runs it unless OTOK_SKIP_QEMU=1.
# Built, then run (not `go run`, which turns every failure into exit 1):
# exit 1 = an otok step or test failed, 3 = only infrastructure errors
# (make then says "Error 3").
test-qemu: deps cross
	$(GO) build -o $(DIST)/otok-qemu-driver ./test/qemu/cmd/otok-qemu
	QEMU_ARCHES="$(QEMU_ARCHES)" QEMU_PKGS="$(QEMU_PKGS)" OTOK_DIST=$(CURDIR)/$(DIST) $(DIST)/otok-qemu-driver

# Every benchmark, each printing its table: container start against crun,
# runc, lxc and systemd-nspawn (test/bench.sh), image import against cp+sync
# and squashfs compressors (test/flash), network setup against ip/nft
# scripts (test/netcfg).
bench: build cross
	@bash test/bench.sh
	OTOK_BENCH=1 OTOK_BIN=$(CURDIR)/$(DIST)/otok OTOK_BENCH_ROOTFS=$(OTOK_BENCH_ROOTFS) $(GO) test -count=1 -run Bench -v ./test/flash
	OTOK_BENCH=1 OTOK_BIN=$(CURDIR)/$(DIST)/otok $(GO) test -count=1 -run BenchSetupTeardown -v ./test/netcfg

demo: deps build
	@bash test/demo.sh

fuzz:
	@bash test/fuzz.sh $${FUZZTIME:-60s}

# The adversarial suite (test/security/README.md): probes in default,
# --userns and NET_ADMIN modes, hostile inputs, 100 kill -9 trials
# (OTOK_SECURITY_TRIALS), a fuzz pass (FUZZTIME per target, default 60s);
# SECURITY_QEMU=1 adds the probes in the four qemu guests
# (SECURITY_QEMU_ARCHES="arm64 mips" for some); writes and prints
# test/security/REPORT.md.
security-report: build
	@FUZZTIME=$${FUZZTIME:-60s} SECURITY_QEMU=$${SECURITY_QEMU:-0} OTOK_BIN=$(CURDIR)/$(DIST)/otok bash test/security/report.sh

# OpenWrt packages from the static binaries, without the SDK (see
# openwrt-feed/README.md): make ipk|apk ARCH=<OpenWrt package arch>. The
# arch table (and how to add one) is openwrt-feed/mkpkg/arch.go. Every input
# is checked before anything is built or written. PKG_VERSION overrides the
# version derived from git describe, BIN the binary (default: build it).
PKG_RELEASE       ?= 1
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
MKPKG_ARGS = -format $@ -arch '$(ARCH)' -dist '$(DIST)' -epoch '$(SOURCE_DATE_EPOCH)' \
	-commit "$$(git rev-parse HEAD 2>/dev/null)" \
	$(if $(PKG_VERSION),-version '$(PKG_VERSION)',-release '$(PKG_RELEASE)' \
	-describe "$$(git describe --tags --long --always --abbrev=7 2>/dev/null)" \
	-commits "$$(git rev-list --count HEAD 2>/dev/null)")

ipk apk:
	@cross=$$($(GO) run ./openwrt-feed/mkpkg -check $(MKPKG_ARGS)) || exit 1; \
	if [ -z '$(BIN)' ]; then \
		sel=; for t in $(CROSS_TARGETS); do case $$t in "$$cross":*) sel=$$t;; esac; done; \
		$(MAKE) --no-print-directory cross CROSS_TARGETS="$$sel" || exit 1; \
	fi; \
	$(GO) run ./openwrt-feed/mkpkg $(MKPKG_ARGS) $(if $(BIN),-bin '$(BIN)')

clean:
	rm -rf $(DIST)
