# migtrace — the two commands of README.md, plus the rest.
#   make demo   set up this machine, build, and run migtrace on its bundled demo (no QEMU of yours needed)
#   make test   set up this machine, build the two USDT QEMUs of the live tests (once per machine, cached under
#               .cache/qemu-usdt), build, and run every test (root tests included when run as root)
# Quiet unless V=1.
.DELETE_ON_ERROR:
Q := $(if $(V),,@)
SWIFT ?= swift
# Release builds link the Swift runtime statically: no dynamic loading of a dozen runtime libraries at every
# start (≈ 3 ms of each `analyze` run), and the binary runs where no Swift toolchain is installed.
RELEASE_FLAGS := -c release --static-swift-stdlib

PREFIX ?= /usr/local

.PHONY: all setup qemu-usdt build release demo test bench fuzz format lint clean install

all: build

setup:
	$(Q)bash scripts/setup

# QEMU 10.0.13 from Debian's source with USDT probes, as is and with QEMU 11.1's arithmetic (era C); only the
# tests need them. A no-op (stamps) once built.
qemu-usdt: setup
	$(Q)bash scripts/build-qemu-usdt

build: setup
	$(Q)$(SWIFT) build

# By product: the test-support target imports Testing, which a static release build does not have.
release: setup
	$(Q)$(SWIFT) build $(RELEASE_FLAGS) --product migtrace-demo-target
	$(Q)$(SWIFT) build $(RELEASE_FLAGS) --product migtrace

# The binary and the demo's stand-in QEMU (demo finds it next to migtrace), statically linked.
install: release
	$(Q)install -d $(DESTDIR)$(PREFIX)/bin
	$(Q)install -m 755 .build/release/migtrace .build/release/migtrace-demo-target $(DESTDIR)$(PREFIX)/bin/

demo: release
	$(Q).build/release/migtrace demo

# The suites that run real QEMU migrations (two TCG QEMUs each, on two cores) run after the others, one at a
# time: in parallel with the rest their migration thread is starved and the "clean migration" tests see stalls.
REAL_QEMU_SUITES := RealQEMU
test: setup qemu-usdt
	$(Q)$(SWIFT) build --build-tests
	$(Q)$(SWIFT) test --skip-build --skip '$(REAL_QEMU_SUITES)'
	$(Q)$(SWIFT) test --skip-build --filter '$(REAL_QEMU_SUITES)' --no-parallel

bench: setup
	$(Q)bash bench/run

fuzz: setup
	$(Q)bash fuzz/run

format:
	$(Q)$(SWIFT) format format --configuration .swift-format -i -r Sources Tests Plugins Package.swift

lint:
	$(Q)$(SWIFT) format lint --strict --configuration .swift-format -r Sources Tests Plugins Package.swift

clean:
	$(Q)rm -rf .build .cache/guest
