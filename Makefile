# station: factory provisioning station.  `make help` lists the targets.
#
# Layout of the build (everything under $(BUILD), default build/):
#   libstation.a  station/{core,proto,config,usb,line,export,app}, db/, hsm/, ui/
#   libfx.a       fixtures/board/   (the simulated board; tests and tools only)
#   libfxemu.a    fixtures/usbemu/  (the umockdev harness; needs glib/umockdev)
#   station       the product binary: station/cli/ + libstation.a
#   fx-*          fixtures/bin/*.c  (simulator tools, manufacturer kit, harness)
#   tests/...     tests/{unit/<folder>,fixtures,integration}/test_*.c, cmocka
#   inc/<layer>/  the folders a layer may include (see "layers" below)
# A new module needs no Makefile edit: drop its .c in the right directory.

BUILD   ?= build
SAN     ?=
CC      ?= cc
CLANG   ?= clang
PKG     ?= pkg-config

PKGS      = libusb-1.0 openssl sqlite3 ncursesw libp11 jansson inih libpq
EMU_PKGS  = umockdev-1.0 gobject-2.0 glib-2.0
TEST_PKGS = cmocka

# Debian 12 packages the build, the tests and the demo need.
DEB_PKGS = build-essential pkg-config clang libclang-rt-14-dev \
           libusb-1.0-0-dev libssl-dev openssl libsqlite3-dev sqlite3 \
           libncurses-dev libp11-dev libengine-pkcs11-openssl softhsm2 opensc \
           libcmocka-dev libjansson-dev libcsv-dev libinih-dev libp11-kit-dev \
           libumockdev-dev umockdev libglib2.0-dev dfu-util tmux chromium \
           postgresql postgresql-common libpq-dev

pkg_cflags = $(shell $(PKG) --cflags $(1) 2>/dev/null)
pkg_libs   = $(shell $(PKG) --libs $(1) 2>/dev/null)

# CFLAGS, CPPFLAGS and LDFLAGS are the user's (default: optimise, debug info).
# Everything the project requires -- language, warnings, hardening -- is in
# ST_* and comes after the user's flags on every command line, so
# `make CFLAGS=-O0` changes the optimisation and nothing else -- except that
# _FORTIFY_SOURCE does nothing without optimisation, so a build whose CFLAGS
# leave it off (-O0 last, or no -O at all) gets -Og after them: still a
# debugging build, and the fortified string functions stay on.
CFLAGS  ?= -O2 -g
USER_OPT  := $(lastword $(filter -O%,$(CFLAGS)))
OPT_FLOOR := $(if $(filter-out -O0,$(USER_OPT)),,-Og)
WARN    = -Wall -Wextra -Werror -Wformat=2 -Wformat-security -Wno-unused-parameter
HARDEN  = -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIE \
          -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3
SANFLAGS =
ifeq ($(SAN),1)
  # FORTIFY and ASan both interpose the string functions; ASan checks more.
  HARDEN   = -fstack-protector-strong -fstack-clash-protection -fcf-protection -fPIE \
             -U_FORTIFY_SOURCE
  SANFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
endif
ST_CPPFLAGS = -D_GNU_SOURCE
ST_CFLAGS   = -std=c11 $(OPT_FLOOR) $(WARN) $(HARDEN) $(SANFLAGS) -MMD -MP
SANLINK     = $(if $(filter 1,$(SAN)),-fsanitize=address -fsanitize=undefined)
ST_LDFLAGS  = -pie -Wl,-z,relro,-z,now $(SANLINK)

# p11-kit-1: only its pkcs11.h (hsm/hsm_anchor.c), nothing is linked from it
LIB_CFLAGS := $(call pkg_cflags,$(PKGS)) $(call pkg_cflags,p11-kit-1)
LIB_LIBS   := $(call pkg_libs,$(PKGS)) -lcsv -lpthread -lm
EMU_CFLAGS := $(call pkg_cflags,$(EMU_PKGS))
EMU_LIBS   := $(call pkg_libs,$(EMU_PKGS))
TEST_CFLAGS := $(call pkg_cflags,$(TEST_PKGS))
TEST_LIBS  := $(call pkg_libs,$(TEST_PKGS))

# ---- layers ------------------------------------------------------------------
# Every folder is a layer that may include only the folders listed for it
# (docs/architecture.md has the picture).  Headers are always included with
# their folder ("core/errbuf.h", "db/db.h", "fixtures/board/fx_board.h"), and
# each layer is compiled with one include path, $(BUILD)/inc/<layer>, a
# directory of links to exactly the folders it may see: an include that runs
# up a layer does not compile.  tests/check-layers.sh checks the same rules
# from the sources (and that no include uses "..").
SEES_core    = core
SEES_proto   = core proto
SEES_config  = core config
SEES_db      = core db
SEES_hsm     = core hsm
SEES_ledger  = core ledger
SEES_ui      = core ui
SEES_usb     = core proto usb
SEES_line    = core proto config db line
SEES_export  = core config db export
SEES_app     = core proto config db hsm ledger ui usb line export app
SEES_cli     = $(SEES_app) cli
SEES_fxboard = core proto fixtures/board
SEES_fxemu   = core fixtures/board fixtures/usbemu
SEES_fxbin   = core proto ui fixtures/board fixtures/usbemu
SEES_tests   = $(SEES_app) fixtures/board fixtures/usbemu tests
LAYERS = core proto config db hsm ledger ui usb line export app cli fxboard fxemu fxbin tests

# Where a layer's sources are.
DIRS_core = station/core
DIRS_proto = station/proto
DIRS_config = station/config
DIRS_usb = station/usb
DIRS_line = station/line
DIRS_export = station/export
DIRS_app = station/app
DIRS_cli = station/cli
DIRS_db = db
DIRS_hsm = hsm
DIRS_ledger = station/ledger
DIRS_ui = ui
DIRS_fxboard = fixtures/board
DIRS_fxemu = fixtures/usbemu
DIRS_fxbin = fixtures/bin
DIRS_tests = tests/unit/* tests/fixtures tests/integration tests/bench tests/rig
srcs_of = $(foreach d,$(DIRS_$(1)),$(wildcard $(d)/*.c))

# The product library: every layer but the CLI (linked into the binary only).
LIB_LAYERS = core proto config db hsm ledger ui usb line export app
LIB_SRCS  = $(foreach l,$(LIB_LAYERS),$(call srcs_of,$(l)))
CLI_SRCS  = $(call srcs_of,cli)
FX_SRCS   = $(call srcs_of,fxboard)
EMU_SRCS  = $(call srcs_of,fxemu)
FXBIN_SRCS = $(call srcs_of,fxbin)
# Unit tests mirror the folders (tests/unit/<folder>/); the simulated board's
# self-tests are in tests/fixtures/, tests across modules in tests/integration/.
UNIT_SRCS = $(wildcard tests/unit/*/test_*.c tests/fixtures/test_*.c tests/integration/test_*.c)
BENCH_SRCS = $(wildcard tests/bench/bench_*.c)
FUZZ_SRCS = $(wildcard tests/fuzz/fuzz_*.c)
# What a fuzz target links: the module it fuzzes and what that module needs,
# compiled along with it (instrumented), and the whole core, which any module
# may use.  A target that names nothing gets FUZZ_DEPS; FUZZ_SECONDS_<target>
# is its share of `make fuzz-run` (default 25).
CORE_SRCS = $(call srcs_of,core)
FUZZ_DEPS = station/proto/proto.c $(CORE_SRCS)
FUZZ_DEPS_fuzz_csr       = hsm/csr_policy.c $(CORE_SRCS)
FUZZ_DEPS_fuzz_profile   = station/config/profile.c $(CORE_SRCS)
FUZZ_DEPS_fuzz_batch     = fixtures/board/fx_batch.c fixtures/board/fx_knobs.c \
                           fixtures/board/fx_store.c station/proto/proto.c $(CORE_SRCS)
FUZZ_DEPS_fuzz_allowlist = $(wildcard db/*.c) $(CORE_SRCS)
FUZZ_DEPS_fuzz_manifest  = station/export/manifest_verify.c station/export/jose.c \
                           $(CORE_SRCS)
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
UNITS    = $(patsubst tests/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
BENCHES  = $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRCS))
FUZZERS  = $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

ALL_LIBS = $(BUILD)/libfxemu.a $(BUILD)/libfx.a $(BUILD)/libstation.a

.PHONY: all tests deps check check-fast check-layers check-calls print-layers test-unit test-e2e check-asan fuzz fuzz-run bench run clean help
all: $(STATION) $(FXBINS)

# The benchmarks are built with the tests (so a change that breaks one fails
# `make check`), and run only by `make bench`.
tests: all $(UNITS) $(BENCHES)

help:
	@echo "make            build $(STATION) and the fixture tools"
	@echo "make deps       install missing Debian packages (apt-get; sudo when not root)"
	@echo "make check      the whole suite: layers, calls, unit + end-to-end, then again under ASan+UBSan, then fuzzing"
	@echo "make check-fast layers, calls, unit + end-to-end tests once, no sanitizers, no fuzzing"
	@echo "make run        the demo line: SoftHSM token, simulated lot, emulated boards, operator screen"
	@echo "make bench      benchmarks; figures are printed as ratios against a same-run baseline"
	@echo "make clean      remove build/ build-asan/"

# The include farm of each layer: $(BUILD)/inc/<layer>/<folder> -> the folder.
inc_src = $(if $(filter db hsm ui tests fixtures/%,$(1)),$(1),station/$(1))
$(BUILD)/inc/%/.stamp: Makefile
	$(Q)rm -rf $(BUILD)/inc/$* && mkdir -p $(BUILD)/inc/$*
	$(Q)$(foreach d,$(SEES_$*),mkdir -p $(dir $(BUILD)/inc/$*/$(d)) && \
	  ln -s $(CURDIR)/$(call inc_src,$(d)) $(BUILD)/inc/$*/$(d) && ) touch $@

# Each object is compiled with its layer's farm and nothing else of the tree.
define layer_rules
$(call obj,$(call srcs_of,$(1))): LAYER := $(1)
$(call obj,$(call srcs_of,$(1))): | $(BUILD)/inc/$(1)/.stamp
endef
$(foreach l,$(LAYERS),$(eval $(call layer_rules,$(l))))

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(say) CC $<
	$(Q)$(CC) $(CPPFLAGS) $(ST_CPPFLAGS) -I$(BUILD)/inc/$(LAYER) $(CFLAGS) $(ST_CFLAGS) \
	  $(LIB_CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

# Only the harness and tools/tests that use it see glib and umockdev headers.
$(EMU_OBJS) $(call obj,$(FXBIN_SRCS) $(UNIT_SRCS) $(BENCH_SRCS)): EXTRA_CFLAGS += $(EMU_CFLAGS)
$(call obj,$(UNIT_SRCS)): EXTRA_CFLAGS += $(TEST_CFLAGS)

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

LINK = $(CC) $(CFLAGS) $(ST_CFLAGS) $(LDFLAGS) $(ST_LDFLAGS)

$(STATION): $(call obj,$(CLI_SRCS)) $(BUILD)/libstation.a
	$(say) LD $@
	$(Q)$(LINK) -o $@ $^ $(LIB_LIBS)

$(BUILD)/fx-%: $(BUILD)/obj/fixtures/bin/fx-%.o $(ALL_LIBS)
	$(say) LD $@
	$(Q)$(LINK) -o $@ $^ $(EMU_LIBS) $(LIB_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(LINK) -o $@ $^ $(TEST_LIBS) $(EMU_LIBS) $(LIB_LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(say) LD $@
	$(Q)$(LINK) -o $@ $^ $(EMU_LIBS) $(LIB_LIBS)

# libFuzzer targets: always clang, always with ASan+UBSan, only the parsers
# (each with its own FUZZ_DEPS_<target>, hence the second expansion).  A fuzz
# target sees what the tests see.
.SECONDEXPANSION:
$(BUILD)/fuzz/%: tests/fuzz/%.c $$(call fuzz_deps,$$*) | $(BUILD)/inc/tests/.stamp
	@mkdir -p $(dir $@)
	$(say) FUZZ $@
	$(Q)$(CLANG) -D_GNU_SOURCE -I$(BUILD)/inc/tests -g -O1 \
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

check-layers:
	@tests/check-layers.sh

# The call graph of the objects (tests/check-calls.sh): it needs the build.
check-calls: tests
	@BUILD=$(BUILD) tests/check-calls.sh

# The suites build with every CPU (the tests themselves say how many they run
# at once: tests/run-e2e.sh).
NPROC := $(shell nproc 2>/dev/null || echo 1)

check-fast:
	$(MAKE) --no-print-directory -j$(NPROC) tests
	$(MAKE) --no-print-directory check-layers check-calls test-unit test-e2e

check-asan:
	$(MAKE) --no-print-directory -j$(NPROC) BUILD=build-asan SAN=1 tests
	$(MAKE) --no-print-directory BUILD=build-asan SAN=1 test-unit test-e2e

fuzz: $(FUZZERS)
fuzz-run:
	$(MAKE) --no-print-directory -j$(NPROC) fuzz
	@BUILD=$(BUILD) tests/run-fuzz.sh \
	  $(foreach f,$(FUZZERS),$(f):$(or $(FUZZ_SECONDS_$(notdir $(f))),25))

# Each phase prints its wall time: the whole must stay under 15 minutes on 2
# cores (docs/qa.md), and the log says where the time went.
check: deps
	@t0=$$(date +%s); \
	for phase in check-fast check-asan fuzz-run; do \
		t=$$(date +%s); \
		$(MAKE) --no-print-directory $$phase || exit 1; \
		echo "make check: $$phase took $$(( $$(date +%s) - t )) s"; \
	done; \
	echo "make check: all suites passed in $$(( $$(date +%s) - t0 )) s"

bench: deps
	$(MAKE) --no-print-directory all $(BENCHES)
	@BUILD=$(BUILD) tests/bench/run.sh

run: deps
	$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) fixtures/demo.sh

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# The layer table, for tests/check-layers.sh and check-calls.sh: "layer: folders it may include".
print-layers:
	@$(foreach l,$(LAYERS),echo "$(l): $(SEES_$(l))";)
	@$(foreach l,$(LAYERS),echo "dirs $(l): $(DIRS_$(l))";)
