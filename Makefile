# station: factory provisioning station.  `make help` lists the targets.
#
# Layout of the build (everything under $(BUILD), default build/):
#   libstation.a  station/ db/ hsm/ ui/ (all but station/main.c)
#   libfx.a       fixtures/board/   (the simulated board; tests and tools only)
#   libfxemu.a    fixtures/usbemu/  (the umockdev harness; needs glib/umockdev)
#   station       the product binary (links libstation.a only)
#   fx-*          fixtures/bin/*.c  (simulator tools, manufacturer kit, harness)
#   tests/test_*  tests/unit/test_*.c, cmocka, linked with everything
# A new module needs no Makefile edit: drop its .c in the right directory.

BUILD   ?= build
SAN     ?=
CC      ?= cc
CLANG   ?= clang
PKG     ?= pkg-config

PKGS      = libusb-1.0 openssl sqlite3 ncursesw libp11 jansson inih
EMU_PKGS  = umockdev-1.0 gobject-2.0 glib-2.0
TEST_PKGS = cmocka

# Debian 12 packages the build, the tests and the demo need.
DEB_PKGS = build-essential pkg-config clang libclang-rt-14-dev \
           libusb-1.0-0-dev libssl-dev openssl libsqlite3-dev sqlite3 \
           libncurses-dev libp11-dev libengine-pkcs11-openssl softhsm2 opensc \
           libcmocka-dev libjansson-dev libcsv-dev libinih-dev \
           libumockdev-dev umockdev libglib2.0-dev dfu-util tmux

pkg_cflags = $(shell $(PKG) --cflags $(1) 2>/dev/null)
pkg_libs   = $(shell $(PKG) --libs $(1) 2>/dev/null)

WARN    = -Wall -Wextra -Werror -Wformat=2 -Wformat-security -Wno-unused-parameter \
          -Wno-format-truncation   # bounded messages truncate on purpose
HARDEN  = -fstack-protector-strong -fPIE -D_FORTIFY_SOURCE=2
OPT     = -O2 -g
ifeq ($(SAN),1)
  # FORTIFY and ASan both interpose the string functions; ASan checks more.
  HARDEN = -fstack-protector-strong -fPIE
  OPT    = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
endif
CPPFLAGS += -D_GNU_SOURCE -I. -Istation -Idb -Ihsm -Iui -Ifixtures/board -Ifixtures/usbemu
CFLAGS  ?=
CFLAGS  += -std=c11 $(OPT) $(WARN) $(HARDEN) -MMD -MP
SANITIZE = $(if $(filter 1,$(SAN)),-fsanitize=address -fsanitize=undefined)
LDFLAGS += -pie -Wl,-z,relro,-z,now $(SANITIZE)

LIB_CFLAGS := $(call pkg_cflags,$(PKGS))
LIB_LIBS   := $(call pkg_libs,$(PKGS)) -lcsv -lpthread -lm
EMU_CFLAGS := $(call pkg_cflags,$(EMU_PKGS))
EMU_LIBS   := $(call pkg_libs,$(EMU_PKGS))
TEST_CFLAGS := $(call pkg_cflags,$(TEST_PKGS))
TEST_LIBS  := $(call pkg_libs,$(TEST_PKGS))

LIB_SRCS  = $(filter-out station/main.c,$(wildcard station/*.c db/*.c hsm/*.c ui/*.c))
FX_SRCS   = $(wildcard fixtures/board/*.c)
EMU_SRCS  = $(wildcard fixtures/usbemu/*.c)
FXBIN_SRCS = $(wildcard fixtures/bin/*.c)
UNIT_SRCS = $(wildcard tests/unit/test_*.c)
BENCH_SRCS = $(wildcard tests/bench/bench_*.c)
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
# What a fuzz target links: the module it fuzzes and what that module needs,
# compiled along with it (instrumented).  A target that names nothing gets
# FUZZ_DEPS; FUZZ_SECONDS_<target> is its share of `make fuzz-run` (default 25).
FUZZ_DEPS = station/proto.c station/errbuf.c
FUZZ_DEPS_fuzz_csr       = hsm/csr_policy.c station/errbuf.c
FUZZ_DEPS_fuzz_profile   = station/profile.c station/errbuf.c
FUZZ_DEPS_fuzz_batch     = fixtures/board/fx_batch.c fixtures/board/fx_knobs.c \
                           fixtures/board/fx_store.c station/event.c station/proto.c \
                           station/errbuf.c
FUZZ_DEPS_fuzz_allowlist = $(wildcard db/*.c) station/errbuf.c
FUZZ_DEPS_fuzz_manifest  = station/manifest_verify.c station/jose.c station/errbuf.c
FUZZ_SECONDS_fuzz_csr       = 10
FUZZ_SECONDS_fuzz_profile   = 10
FUZZ_SECONDS_fuzz_batch     = 10
FUZZ_SECONDS_fuzz_allowlist = 10
FUZZ_SECONDS_fuzz_manifest  = 10
fuzz_deps = $(or $(FUZZ_DEPS_$(1)),$(FUZZ_DEPS))

# `make V=1` shows full command lines.
ifeq ($(V),1)
  Q =
  say = @true
else
  Q = @
  say = @printf '  %-6s %s\n'
endif

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJS = $(call obj,$(LIB_SRCS))
FX_OBJS  = $(call obj,$(FX_SRCS))
EMU_OBJS = $(call obj,$(EMU_SRCS))

STATION  = $(BUILD)/station
FXBINS   = $(patsubst fixtures/bin/%.c,$(BUILD)/%,$(FXBIN_SRCS))
UNITS    = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
BENCHES  = $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
FUZZERS  = $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

ALL_LIBS = $(BUILD)/libfxemu.a $(BUILD)/libfx.a $(BUILD)/libstation.a

.PHONY: all tests deps check check-fast test-unit test-e2e check-asan fuzz fuzz-run bench run clean help
all: $(STATION) $(FXBINS)

tests: all $(UNITS)

help:
	@echo "make            build $(STATION) and the fixture tools"
	@echo "make deps       install missing Debian packages (apt-get; sudo when not root)"
	@echo "make check      the whole suite: unit + end-to-end, then again under ASan+UBSan, then fuzzing"
	@echo "make check-fast unit + end-to-end tests once, no sanitizers, no fuzzing"
	@echo "make run        the demo line: SoftHSM token, simulated lot, emulated boards, operator screen"
	@echo "make bench      benchmarks; figures are printed as ratios against a same-run baseline"
	@echo "make clean      remove build/ build-asan/"

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(LIB_CFLAGS) -c $< -o $@

# Only the harness and tools/tests that use it see glib and umockdev headers.
$(EMU_OBJS) $(call obj,$(FXBIN_SRCS) $(UNIT_SRCS) $(BENCH_SRCS)): CFLAGS += $(EMU_CFLAGS)
$(call obj,$(UNIT_SRCS)): CFLAGS += $(TEST_CFLAGS)

$(BUILD)/libstation.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/libfx.a: $(FX_OBJS)
	@mkdir -p $(dir $@)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^
$(BUILD)/libfxemu.a: $(EMU_OBJS)
	@mkdir -p $(dir $@)
	$(say) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(STATION): $(call obj,station/main.c) $(BUILD)/libstation.a
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LIBS)

$(BUILD)/fx-%: $(BUILD)/obj/fixtures/bin/fx-%.o $(ALL_LIBS)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(EMU_LIBS) $(LIB_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(EMU_LIBS) $(LIB_LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(EMU_LIBS) $(LIB_LIBS)

# libFuzzer targets: always clang, always with ASan+UBSan, only the parsers
# (each with its own FUZZ_DEPS_<target>, hence the second expansion).
.SECONDEXPANSION:
$(BUILD)/fuzz/%: tests/fuzz/%.c $$(call fuzz_deps,$$*)
	@mkdir -p $(dir $@)
	$(say) FUZZ $@
	$(Q)$(CLANG) -D_GNU_SOURCE -I. -Istation -Idb -Ihsm -Ifixtures/board -g -O1 \
	  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $(LIB_CFLAGS) \
	  -o $@ $^ $(LIB_LIBS)

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing:" $$missing; \
	  if [ "$$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi; \
	  $$sudo apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi

test-unit: tests
	@BUILD=$(BUILD) tests/run-unit.sh $(UNITS)

test-e2e: all
	@BUILD=$(BUILD) tests/run-e2e.sh

check-fast: tests
	$(MAKE) --no-print-directory test-unit test-e2e

check-asan:
	$(MAKE) --no-print-directory BUILD=build-asan SAN=1 tests
	$(MAKE) --no-print-directory BUILD=build-asan SAN=1 test-unit test-e2e

fuzz: $(FUZZERS)
fuzz-run: fuzz
	@BUILD=$(BUILD) tests/run-fuzz.sh \
	  $(foreach f,$(FUZZERS),$(f):$(or $(FUZZ_SECONDS_$(notdir $(f))),25))

check: deps
	$(MAKE) --no-print-directory check-fast
	$(MAKE) --no-print-directory check-asan
	$(MAKE) --no-print-directory fuzz-run
	@echo "make check: all suites passed"

bench: deps
	$(MAKE) --no-print-directory all $(BENCHES)
	@BUILD=$(BUILD) tests/bench/run.sh

run: deps
	$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) fixtures/demo.sh

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
