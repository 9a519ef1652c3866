# aggdom: build, run and test. `make run` and `make test` work on a fresh
# machine: they install QEMU and the Rust target when missing.
SHELL := /bin/bash
TARGET := x86_64-unknown-none
KERNEL := target/$(TARGET)/release/aggdom
KERNEL32 := target/$(TARGET)/release/aggdom32
QEMU := qemu-system-x86_64
CARGO_KERNEL := cargo build --release -p aggdom --target $(TARGET)

# `make run`: 3 virtio-net + 1 e1000 uplinks, 2 virtio-net guest ports.
# Every NIC's backend is a UDP socket pair on 127.0.0.1 (NIC i: QEMU listens
# on RUN_PORT_BASE+2i and sends to RUN_PORT_BASE+2i+1), so nothing leaves the
# machine and you can inject frames into any NIC from the host.
RUN_PORT_BASE ?= 47000
RUN_KINDS := virtio-net-pci virtio-net-pci virtio-net-pci e1000 virtio-net-pci virtio-net-pci
# The default configuration: NICs 0-3 uplinks, NIC 4 and 5 guest ports for
# two guests, the domain's own IP 10.0.0.2 (ping it, GET /metrics).
RUN_APPEND ?= uplinks=0,1,2,3 guest=4,52:54:00:00:01:01,10.0.0.11 guest=5,52:54:00:00:01:02,10.0.0.12 ip=10.0.0.2/24
RUN_MEM ?= 128M

# aggctl, the dom0 control tool (drivers/aggctl), built for the host.
AGGCTL := target/release/aggctl

.PHONY: all build aggctl aggctl-static run test test-host test-qemu test-xen soak soak-xen restart-xen bench-xen bench sim fuzz fuzz-deps fuzz-engine deps fmt clean

all: build

# Installs what a fresh machine lacks: QEMU (Debian's qemu-system-x86),
# objcopy, and the bare-metal Rust target (RUSTUP_AUTO_INSTALL=0 here, so
# rust-toolchain.toml alone does not fetch it). Quiet when all is there.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
deps:
	@if ! command -v $(QEMU) >/dev/null || ! command -v objcopy >/dev/null; then \
	  echo "installing qemu-system-x86 and binutils (apt)"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq qemu-system-x86 binutils >/dev/null; fi
	@rustup target list --installed 2>/dev/null | grep -qx $(TARGET) || \
	  { echo "installing the $(TARGET) Rust target (rustup)"; rustup target add $(TARGET); }

build: deps aggctl
	$(CARGO_KERNEL)
	objcopy -O elf32-i386 $(KERNEL) $(KERNEL32)

# The host tool dom0 runs (copy $(AGGCTL) there); `make test` runs its
# tests against a fake xenstore and a fake aggdom (cargo test -p aggctl).
aggctl:
	cargo build --release -p aggctl

run: build
	@args=(); i=0; for kind in $(RUN_KINDS); do \
	  lp=$$(( $(RUN_PORT_BASE) + 2*i )); rp=$$(( lp + 1 )); \
	  args+=(-netdev dgram,id=n$$i,local.type=inet,local.host=127.0.0.1,local.port=$$lp,remote.type=inet,remote.host=127.0.0.1,remote.port=$$rp); \
	  args+=(-device $$kind,netdev=n$$i,mac=52:54:00:00:00:0$$((i+1)),addr=0x$$(printf %x $$((3+i)))); \
	  i=$$((i+1)); done; \
	echo "aggdom: NICs 0-3 uplinks, 4-5 guest ports; NIC i listens on UDP 127.0.0.1:$$(( $(RUN_PORT_BASE) ))+2i. Ctrl-a x quits."; \
	exec $(QEMU) -machine pc -nodefaults -display none -m $(RUN_MEM) \
	  -chardev stdio,id=con,mux=on,signal=off -serial chardev:con -mon chardev=con,mode=readline \
	  -device isa-debug-exit,iobase=0xf4,iosize=0x04 -no-reboot \
	  -kernel $(KERNEL) -append "$(RUN_APPEND)" "$${args[@]}"

# Host unit tests of every pure crate, then the QEMU integration tests.
test: build test-host test-qemu

test-host: deps
	cargo test --workspace --exclude aggdom-harness

test-qemu: build
	AGGDOM_ELF=$(CURDIR)/$(KERNEL) cargo test -p aggdom-harness

# aggdom as a real Xen driver domain (minutes; not part of `make test`):
# Xen 4.17 + dom0 in QEMU (../shared/xen-rig), two NICs passed through to
# aggdom, guests with vif backend=aggdom pinging dom0 through it, a hostile
# guest churning its vif meanwhile. The rig's setup.sh runs every time: it is
# idempotent and quick, and rebuilds a stale cache (a rig change must not be
# hidden by images built before it). One rig at a time on this host: the
# scripts refuse to start beside another one.
XEN_RIG ?= $(abspath ../shared/xen-rig)
XEN_RIG_CACHE ?= /tmp/xen-rig-cache
# The rig's Xen runs with the credit1 scheduler: under its default, credit2,
# 8 of 11 runs on 2026-12-02 failed with dom0 userland corruption (segfaults,
# 'Invalid kernel') or froze with a runnable dom0 vCPU on no run queue, with
# aggdom old and new alike; under credit1, 5 of 5 passed (tests/xen/README.md,
# "Rig faults"). Override with XENRIG_XEN_EXTRA= to try another setting.
XENRIG_XEN_EXTRA ?= sched=credit
export XENRIG_XEN_EXTRA
# dom0 answers SysRq on its console (Ctrl-O + key), so that a failed run can
# ask dom0's kernel what it is doing (tests/xen/xentest.py, xen_debug_dump).
XENRIG_DOM0_EXTRA ?= sysrq_always_enabled
export XENRIG_DOM0_EXTRA
# aggctl for the rig's dom0: static, so it runs whatever dom0's libc is.
AGGCTL_STATIC := target/x86_64-unknown-linux-gnu/release/aggctl
aggctl-static:
	RUSTFLAGS='-C target-feature=+crt-static' cargo build --release -p aggctl --target x86_64-unknown-linux-gnu

test-xen: build aggctl-static
	$(SUDO) bash $(XEN_RIG)/setup.sh $(XEN_RIG_CACHE)
	XEN_RIG=$(XEN_RIG) python3 tests/xen/run-test-xen.py --cache $(XEN_RIG_CACHE) --aggctl $(AGGCTL_STATIC)

# Guests created and destroyed for many cycles while the others keep pinging
# through aggdom (tests/xen/soak-xen.py; SOAK_XEN_ARGS="--cycles 20" etc.).
soak-xen: build
	$(SUDO) bash $(XEN_RIG)/setup.sh $(XEN_RIG_CACHE)
	XEN_RIG=$(XEN_RIG) python3 tests/xen/soak-xen.py --cache $(XEN_RIG_CACHE) $(SOAK_XEN_ARGS)

# Two guests pinging dom0 through aggdom while dom0 runs `aggctl restart`
# (tests/xen/restart-xen.py): the new aggdom boots, both vifs reconnect, both
# guests ping again, and the outage per guest is printed (~6 minutes).
restart-xen: build aggctl-static
	$(SUDO) bash $(XEN_RIG)/setup.sh $(XEN_RIG_CACHE)
	XEN_RIG=$(XEN_RIG) python3 tests/xen/restart-xen.py --cache $(XEN_RIG_CACHE) --aggctl $(AGGCTL_STATIC) $(RESTART_XEN_ARGS)

# The same iperf3 guests and traffic through aggdom and then through the rig's
# Linux driver domain bonding the same NICs (tests/xen/bench-xen.py): a table of
# throughput, latency, rate limit and driver-domain CPU s per GB (~15 min).
bench-xen: build
	$(SUDO) bash $(XEN_RIG)/setup.sh $(XEN_RIG_CACHE)
	XEN_RIG=$(XEN_RIG) python3 tests/xen/bench-xen.py --cache $(XEN_RIG_CACHE) $(BENCH_XEN_ARGS)

# aggdom in QEMU for SOAK_SECONDS (600) with 4 uplinks and 4 guests under
# continuous traffic while links flap, bindings change, identities are
# swapped and pinned and the rebalancer runs; then every frame offered is
# reconciled with aggdom's counters, per guest and per uplink (README,
# Soak). Fails on a frame neither delivered nor counted, heap growth after
# the warm-up, or a panic. SOAK_SEED repeats a run. `make test` runs the
# same for 60 s (tests/harness/tests/soak.rs).
SOAK_SECONDS ?= 600
soak: build
	AGGDOM_ELF=$(CURDIR)/$(KERNEL) SOAK_SECONDS=$(SOAK_SECONDS) cargo run --release -p aggdom-harness --bin soak

# Benchmarks print numbers against the goals; none fails on a number.
bench: build
	cargo bench -p aggregation
	AGGDOM_ELF=$(CURDIR)/$(KERNEL) cargo run --release -p aggdom-harness --bin bench-boot
	AGGDOM_ELF=$(CURDIR)/$(KERNEL) cargo run --release -p aggdom-harness --bin bench-drivers
	AGGDOM_ELF=$(CURDIR)/$(KERNEL) cargo run --release -p aggdom-harness --bin bench-datapath
	AGGDOM_ELF=$(CURDIR)/$(KERNEL) cargo run --release -p aggdom-harness --bin bench-failover

# The aggregation policy simulator: a comparison table, and SVG plots and a
# report in target/sim/.
sim:
	cargo run --release -p aggdom-sim -- target/sim

# Every fuzz target for FUZZ_SECONDS each, one after the other (nightly and
# cargo-fuzz, installed when missing). Each explores from its committed
# corpus (<crate>/fuzz/corpus/<target>, read only: `make test` replays it on
# stable) into target/fuzz/corpus/<target>; a crash input lands in
# target/fuzz/artifacts/<target>/. Prints executions and crashes per target
# and fails if any crashed. Built with overflow checks and debug assertions
# on (-a); without a sanitizer by default, as the fuzzed code is safe Rust
# (FUZZ_SANITIZER=address for ASan). FUZZ_TARGETS picks some; FUZZ_RUNS=N
# stops a target after N executions (or FUZZ_SECONDS, whichever comes
# first: FUZZ_RUNS=10000000 FUZZ_SECONDS=3600 make fuzz); FUZZ_OUT moves
# the output (two runs at once each need their own). FUZZ_JOBS=N runs N
# fuzzers per target on one corpus (libFuzzer reloads it, so each takes up
# what the others find), FUZZ_RUNS split between them, logs <target>.log
# and <target>.job<N>.log, executions summed; a crash in one stops the
# others. FUZZ_BUILD_FLAGS adds cargo-fuzz build flags: --no-trace-compares
# runs a target ~1.7x faster once its coverage has levelled off (libFuzzer
# then no longer learns the constants code compares against; every input
# still runs in full).
FUZZ_SECONDS ?= 60
FUZZ_BUILD_FLAGS ?=
FUZZ_JOBS ?= 1
FUZZ_RUNS ?= -1
FUZZ_SANITIZER ?= none
FUZZ_ALL := tests/fuzz:xs_wire tests/fuzz:xs_client tests/fuzz:config \
  tests/fuzz:metrics_http tests/fuzz:grant_split tests/fuzz:e1000_rx \
  tests/fuzz:virtio_net_rx tests/fuzz:line_editor tests/fuzz:start_info \
  tests/fuzz:acpi_tables tests/fuzz:rx_coalesce drivers/aggregation:ops_and_frames \
  drivers/netback:frontend
FUZZ_TARGETS ?= $(foreach t,$(FUZZ_ALL),$(lastword $(subst :, ,$(t))))
# Inputs capped where longer ones add nothing (target=bytes; the rest keep
# libFuzzer's default, 4096 or the largest corpus input): xs_wire's largest
# message is a 16-byte header and 4096 bytes of payload, and its longest
# request a path and a token of up to 3300 bytes each, so 8 KiB holds any
# message, one past every limit, or several in pieces (the committed 19 KB
# limits seed is cut there when fuzzing; `make test` replays it whole).
FUZZ_MAX_LEN ?= xs_wire=8192
FUZZ_OUT ?= $(CURDIR)/target/fuzz

fuzz-deps:
	@rustup toolchain list | grep -q '^nightly' || \
	  { echo "installing the nightly Rust toolchain (rustup)"; rustup toolchain install nightly --profile minimal; }
	@command -v cargo-fuzz >/dev/null || \
	  { echo "installing cargo-fuzz (cargo install)"; cargo install cargo-fuzz --locked; }

fuzz: fuzz-deps
	@mkdir -p $(FUZZ_OUT); summary=$(FUZZ_OUT)/summary; : > $$summary; failed=0; \
	for entry in $(FUZZ_ALL); do \
	  dir=$${entry%%:*}; t=$${entry##*:}; \
	  case " $(FUZZ_TARGETS) " in *" $$t "*) ;; *) continue;; esac; \
	  mkdir -p $(FUZZ_OUT)/corpus/$$t $(FUZZ_OUT)/artifacts/$$t; log=$(FUZZ_OUT)/$$t.log; \
	  maxlen=; for kv in $(FUZZ_MAX_LEN); do [ "$${kv%%=*}" = $$t ] && maxlen=-max_len=$${kv#*=}; done; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS) s, $(FUZZ_JOBS) job(s) (log $$log)"; \
	  runs=$(FUZZ_RUNS); [ $$runs -gt 0 ] && runs=$$(( (runs + $(FUZZ_JOBS) - 1) / $(FUZZ_JOBS) )); \
	  logs=; pids=; set -m; \
	  for j in $$(seq $(FUZZ_JOBS)); do \
	    jl=$$log; [ $$j -eq 1 ] || jl=$(FUZZ_OUT)/$$t.job$$j.log; logs="$$logs $$jl"; \
	    ( cd $$dir && cargo +nightly fuzz run -O -a -s $(FUZZ_SANITIZER) $(FUZZ_BUILD_FLAGS) $$t \
	        $(FUZZ_OUT)/corpus/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -runs=$$runs $$maxlen \
	        -timeout=10 -print_final_stats=1 -artifact_prefix=$(FUZZ_OUT)/artifacts/$$t/ ) >$$jl 2>&1 & \
	    pids="$$pids $$!"; \
	  done; \
	  rc=0; left=$$pids; \
	  while [ -n "$$left" ]; do \
	    wait -n -p fin $$left 2>/dev/null; r=$$?; \
	    left=$$(for p in $$left; do [ $$p = "$$fin" ] || echo $$p; done); \
	    if [ $$r -ne 0 ] && [ $$rc -eq 0 ]; then rc=$$r; for p in $$left; do kill -- -$$p 2>/dev/null; done; fi; \
	  done 2>/dev/null; set +m; \
	  execs=0; for jl in $$logs; do \
	    e=$$(grep -o 'stat::number_of_executed_units: *[0-9]*' $$jl | grep -o '[0-9]*$$' | tail -1); \
	    [ -n "$$e" ] || e=$$(grep -o '^#[0-9]*' $$jl | tail -1 | tr -d '#'); \
	    execs=$$((execs + $${e:-0})); \
	  done; \
	  artifact=$$(ls -t $(FUZZ_OUT)/artifacts/$$t/* 2>/dev/null | head -1); \
	  if [ $$rc -eq 0 ]; then crashes="0 crashes"; \
	  elif [ -z "$$artifact" ] && grep -q 'libFuzzer: run interrupted' $$logs; then \
	    failed=1; crashes="interrupted, 0 crashes (exit $$rc)"; \
	  else failed=1; crashes="1 crash: $$artifact (exit $$rc)"; fi; \
	  printf '%-16s %12s execs  %s\n' $$t "$${execs:-?}" "$$crashes" >> $$summary; \
	done; \
	echo "fuzz: $(FUZZ_SECONDS) s per target"; cat $$summary; exit $$failed

# The engine alone, for longer (FUZZ_SECONDS=600 make fuzz-engine).
fuzz-engine:
	$(MAKE) fuzz FUZZ_TARGETS=ops_and_frames

fmt:
	cargo fmt --all

clean:
	cargo clean
