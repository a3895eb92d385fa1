# featpipe - plain GNU make.  See README.md.
#   make             build every tool into $(BUILD)/bin
#   make check       C unit tests and bats suites (TAP output)
#   make check SAN=1 the same, built with ASan+UBSan into build-san/
#   make bench       featpipe end to end vs kcat and a Python baseline (scripts/bench)
#   make fuzz        libFuzzer on the frame decoder (FUZZ_SECONDS=60)
#   make install     PREFIX=/usr/local DESTDIR=
VERSION   := 0.1.0
PREFIX    ?= /usr/local
DESTDIR   ?=
CC        ?= gcc
CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
WERROR    ?= 1
SAN       ?= 0
PKG_CONFIG ?= pkg-config

ifeq ($(SAN),1)
BUILD     ?= build-san
SANFLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD     ?= build
SANFLAGS  :=
endif
ifeq ($(WERROR),1)
WARN += -Werror
endif

TOOLS     := $(patsubst cmd/%.c,%,$(wildcard cmd/fp-*.c))

# Every tool links msgpack-c; these add what each tool needs (pkg-config names).
PKGS_base       := msgpack
PKGS_fp-cat     :=
PKGS_fp-broker  := rdkafka
PKGS_fp-consume := rdkafka hiredis
PKGS_fp-produce := rdkafka
PKGS_fp-import  :=
PKGS_fp-keyby   := libxxhash
PKGS_fp-merge   := hiredis libxxhash
PKGS_fp-kvwrite := hiredis libxxhash
PKGS_fp-lag     := rdkafka hiredis libmicrohttpd
PKGS_fp-top     := hiredis
PKGS_tests      := hiredis libxxhash rdkafka

ALLPKGS   := $(sort $(PKGS_base) $(foreach t,$(TOOLS),$(PKGS_$(t))) $(PKGS_tests))
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(ALLPKGS) 2>/dev/null)
pkglibs    = $(shell $(PKG_CONFIG) --libs $(PKGS_base) $(1))

CPPFLAGS  += -D_POSIX_C_SOURCE=200809L -DFP_VERSION='"$(VERSION)"' -MMD -MP
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) $(SANFLAGS) $(PKG_CFLAGS)
LDFLAGS   += $(SANFLAGS)

LIB_SRC   := $(wildcard lib/*.c)
LIB_OBJ   := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
LIB_A     := $(BUILD)/libfeatpipe.a
BINS      := $(addprefix $(BUILD)/bin/,$(TOOLS))
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNITS     := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
MAN1      := $(wildcard man/*.1)
MAN5      := $(wildcard man/*.5)
MAN7      := $(wildcard man/*.7)

.PHONY: all check check-installed unit bats fuzz install uninstall clean demo bench
.SECONDARY:
all: $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/bin/%: $(BUILD)/cmd/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_A) $(call pkglibs,$(PKGS_$*)) -lm

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB_A) $(call pkglibs,$(PKGS_tests)) -lm

# TAP from both tiers; the exit status is non-zero if any test failed.
# README command #2.  Installs what is missing first (scripts/install-deps is
# quiet and quick when nothing is), then builds and tests in a fresh make, so
# that pkg-config sees the libraries just installed.
check:
	@scripts/install-deps
	@$(MAKE) --no-print-directory check-installed

check-installed: all $(UNITS)
	@fail=0; \
	for t in $(UNITS); do echo "# $$t"; $$t || fail=1; done; \
	FP_BIN=$(abspath $(BUILD)/bin) bats --tap tests/*.bats || fail=1; \
	exit $$fail

unit: $(UNITS)
	@fail=0; for t in $(UNITS); do echo "# $$t"; $$t || fail=1; done; exit $$fail

# One suite: make bats T=tests/fp-cat.bats
bats: all
	FP_BIN=$(abspath $(BUILD)/bin) bats --tap $(or $(T),tests/*.bats)

# Figures and the latency histogram in build/bench/ (BENCHMARKS.md explains them)
bench: all
	scripts/bench

FUZZ_SECONDS ?= 60
FUZZ_DIR  := $(BUILD)/fuzz
fuzz: $(FUZZ_DIR)/fuzz_frame
	@mkdir -p $(FUZZ_DIR)/corpus
	cp -n tests/fuzz/seeds/* $(FUZZ_DIR)/corpus/ 2>/dev/null || true
	$(FUZZ_DIR)/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
		-detect_leaks=1 -print_final_stats=1 $(FUZZ_DIR)/corpus

$(FUZZ_DIR)/fuzz_frame: tests/fuzz/fuzz_frame.c $(LIB_SRC) $(wildcard lib/*.h)
	@mkdir -p $(dir $@)
	clang -std=c11 -g -O1 -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer,address,undefined \
		$(PKG_CFLAGS) -o $@ tests/fuzz/fuzz_frame.c lib/frame.c lib/mpraw.c lib/json.c lib/buf.c lib/num.c \
		$(call pkglibs,) -lm

# README command #1: a broker, a Redis and a real pipeline (scripts/demo).
demo:
	scripts/demo

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	$(if $(MAN1),install -m 644 $(MAN1) $(DESTDIR)$(PREFIX)/share/man/man1/)
	$(if $(MAN5),install -m 644 $(MAN5) $(DESTDIR)$(PREFIX)/share/man/man5/)
	$(if $(MAN7),install -m 644 $(MAN7) $(DESTDIR)$(PREFIX)/share/man/man7/)

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(TOOLS)) \
		$(addprefix $(DESTDIR)$(PREFIX)/share/man/man1/,$(notdir $(MAN1))) \
		$(addprefix $(DESTDIR)$(PREFIX)/share/man/man5/,$(notdir $(MAN5))) \
		$(addprefix $(DESTDIR)$(PREFIX)/share/man/man7/,$(notdir $(MAN7)))

clean:
	rm -rf build build-san

-include $(LIB_OBJ:.o=.d) $(BUILD)/cmd/*.d $(BUILD)/tests/unit/*.d
