# lua-vivalearning: Lua 5.1-5.4 and LuaJIT module with a C core for the Microsoft Graph Viva Learning API.
# `make test` and `make demo` work as the first command on a fresh Debian 12 machine.

# LUA picks the Lua to build for and test with: lua5.1, lua5.2, lua5.3, lua5.4 or luajit (2.1,
# OpenResty's luajit2). lua5.4 builds in place (_build, ./vivalearning/core.so, as the README's
# LUA_CPATH="./?.so" expects); every other one into its own directories, _build/$(LUA) and
# lib/$(LUA)/vivalearning/*.so, so the builds of several versions live side by side.
LUA        ?= lua5.4
LUA_NAME   := $(notdir $(LUA))
ifeq ($(LUA_NAME),luajit)
LUA_VER    ?= 5.1
LUA_PC     := luajit
else ifneq ($(filter lua5.1 lua5.2 lua5.3 lua5.4,$(LUA_NAME)),)
LUA_VER    ?= $(LUA_NAME:lua%=%)
LUA_PC     := lua$(LUA_VER)
else
LUA_VER    ?= 5.4
LUA_PC     := lua$(LUA_VER)
endif
CC         ?= cc
PREFIX     ?= /usr/local
LUA_LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VER)
LUA_DIR    ?= $(PREFIX)/share/lua/$(LUA_VER)
BINDIR     ?= $(PREFIX)/bin

# 5.1, 5.2 and LuaJIT take the 5.3 C API from Debian's lua-compat53 (compat-5.3.h, which lives
# in /usr/include/lua5.1 and lua5.2: after LuaJIT's own headers, never before them).
LUA_CFLAGS  := $(shell pkg-config --cflags $(LUA_PC) 2>/dev/null || echo -I/usr/include/lua$(LUA_VER))
COMPAT_CFLAGS :=
ifeq ($(LUA_PC),luajit)
COMPAT_CFLAGS := -idirafter /usr/include/lua5.1
endif
# the frame-loop bench host (bench/frame_host.c) embeds liblua
LUA_LIBS    := $(shell pkg-config --libs $(LUA_PC) 2>/dev/null || echo -llua$(LUA_VER))
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
# libcrypto (OpenSSL, already under libcurl) signs the certificate credential's assertion (src/assertion.c)
CRYPTO_LIBS := $(shell pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)

OPT      ?= -O2 -g
WARN     := -std=c99 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS   ?= $(OPT)
ALL_CFLAGS = $(CFLAGS) $(WARN) -fPIC -D_POSIX_C_SOURCE=200809L $(LUA_CFLAGS) $(COMPAT_CFLAGS) $(CURL_CFLAGS)
# The module is linked against libcurl and libcrypto only: liblua is never linked in (the host provides it).
LDFLAGS  ?=
LIBFLAG  ?= -shared

ifeq ($(LUA_NAME),lua5.4)
BUILD    ?= _build
OUT      ?= .
else
BUILD    ?= _build/$(LUA_NAME)
OUT      ?= lib/$(LUA_NAME)
endif
SRC      := $(wildcard src/*.c)
OBJ      := $(SRC:src/%.c=$(BUILD)/%.o)
MODULE   := $(OUT)/vivalearning/core.so
# OS glue for the pure-Lua layer (fsync, isatty, monotime), a module of its own: the core
# knows nothing of files or terminals.
SYS_MODULE := $(OUT)/vivalearning/sys.so
# libsqlite3 for the sync state store (state.lua), a module of its own as well.
SQLITE_MODULE := $(OUT)/vivalearning/sqlite.so
SQLITE_LIBS := $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3)

# Debian packages the project needs; `deps` installs whichever are missing.
# Every Lua: LuaJIT is OpenResty's fork (luajit2), never Debian's luajit/libluajit-5.1-dev,
# which would take ngx_lua (and so the emulator) off it.
DEB_PKGS := lua5.4 liblua5.4-dev lua5.1 liblua5.1-0-dev lua5.2 liblua5.2-dev lua5.3 liblua5.3-dev \
            luajit2 libluajit2-5.1-dev lua-compat53 lua-compat53-dev lua-cjson libcurl4-openssl-dev libssl-dev lua-busted lua-argparse \
            nginx-light libnginx-mod-http-lua lua-resty-core openssl curl pkg-config \
            gcc make libsqlite3-dev
CHECK_PKGS := valgrind clang libclang-rt-14-dev cppcheck
BENCH_PKGS := wrk
ROCK_PKGS  := luarocks
ROCKSPEC   := $(wildcard rockspec/vivalearning-*.rockspec)

EMU_DIR  ?= $(CURDIR)/emulator/.run
BUSTED   ?= busted

.PHONY: all deps deps-check deps-bench build build-all test test-all test-openresty check check-asan check-valgrind cppcheck \
        fuzz demo bench bench-frame emulator-start emulator-stop install uninstall clean deps-rock rock

all: build

define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

deps:
	$(call install_missing,$(DEB_PKGS))

deps-check: deps
	$(call install_missing,$(CHECK_PKGS))

# The luarocks path: luarocks itself (nothing else installs it), and then the rockspec with
# --deps-mode=none, since lua-cjson comes from apt (luarocks does not know about it).
deps-rock: deps
	$(call install_missing,$(ROCK_PKGS))

# ROCK_FLAGS: extra luarocks flags, e.g. ROCK_FLAGS="--tree /tmp/rocks" (the spec installs there).
ROCK_FLAGS ?=
rock: deps-rock
	luarocks --lua-version $(LUA_VER) $(ROCK_FLAGS) make --deps-mode=none $(ROCKSPEC)

# Node (for the official JS client in bench/import.lua) only when the commands are missing:
# a machine may carry another build of nodejs, with npm inside, that Debian's npm conflicts with.
deps-bench: deps
	$(call install_missing,$(BENCH_PKGS))
	@if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq nodejs npm >/dev/null; \
	fi

build: $(MODULE) $(SYS_MODULE) $(SQLITE_MODULE)

$(BUILD)/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD):
	mkdir -p $@

$(MODULE): $(OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(LDFLAGS) -o $@ $(OBJ) $(CURL_LIBS) $(CRYPTO_LIBS)

$(SYS_MODULE): src/sys/sys.c src/luacompat.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) $(LDFLAGS) -o $@ $<

$(SQLITE_MODULE): src/sqlite/sqlite.c src/luacompat.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(LIBFLAG) $(LDFLAGS) -o $@ $< $(SQLITE_LIBS)

# Start the emulator (unless one already answers from EMU_DIR), run every spec on each Lua of
# TEST_LUAS (make test: Lua 5.4 and LuaJIT; make test-all: all five), stop it again.
# deps-rock: spec/make_rock_spec.lua builds and installs the rock for real.
ALL_LUAS  := lua5.1 lua5.2 lua5.3 lua5.4 luajit
TEST_LUAS ?= lua5.4 luajit
test: deps deps-rock
	@for l in $(TEST_LUAS); do $(MAKE) --no-print-directory build LUA=$$l || exit 1; done
	@EMU_DIR="$(EMU_DIR)" LUAS="$(TEST_LUAS)" BUSTED="$(BUSTED)" sh spec/run
	@$(MAKE) --no-print-directory test-openresty

test-all: deps deps-rock
	@$(MAKE) --no-print-directory test TEST_LUAS="$(ALL_LUAS)"

# Every Lua's build, side by side (lib/LUA/, and ./ for lua5.4).
build-all:
	@for l in $(ALL_LUAS); do $(MAKE) --no-print-directory build LUA=$$l || exit 1; done

# The io = "ngx" specs inside a test nginx (spec/openresty/*_nginx.lua, spec/support/openresty.lua):
# the module's LuaJIT build, the emulator as spec/run starts it.
test-openresty: deps build
	@$(MAKE) --no-print-directory build LUA=luajit
	@EMU_DIR="$(EMU_DIR)" BUSTED="$(BUSTED)" sh spec/run --pattern=_nginx spec/openresty

emulator-start: deps
	@./emulator/run --dir "$(EMU_DIR)"

emulator-stop:
	@./emulator/stop --dir "$(EMU_DIR)"

# Sanitizers, valgrind and cppcheck over the C core and the specs.
check: deps-check build
	@sh .ci/check

fuzz: deps-check
	@sh .ci/fuzz

demo: deps build
	@EMU_DIR="$(EMU_DIR)" LUA="$(LUA)" $(LUA) bin/demo

# The frame-loop host (bench/frame_host.c): a C program embedding Lua, so it links liblua.
FRAME_HOST := $(BUILD)/frame_host
$(FRAME_HOST): bench/frame_host.c | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -D_POSIX_C_SOURCE=200809L $(LUA_CFLAGS) -o $@ $< $(LUA_LIBS)

bench: deps-bench build $(FRAME_HOST)
	@$(MAKE) --no-print-directory build LUA=luajit
	@EMU_DIR="$(EMU_DIR)" LUA="$(LUA)" FRAME_HOST="$(FRAME_HOST)" sh bench/run

# Only the frame-loop benchmark (no wrk or node needed): BENCH_FRAMES=240 BENCH_BUDGET=0.001.
bench-frame: deps build $(FRAME_HOST)
	@EMU_DIR="$(EMU_DIR)" LUA="$(LUA)" FRAME_HOST="$(FRAME_HOST)" sh bench/run frame

install: build
	install -d $(DESTDIR)$(LUA_LIBDIR)/vivalearning $(DESTDIR)$(LUA_DIR)/vivalearning $(DESTDIR)$(BINDIR)
	install -m 755 $(MODULE) $(DESTDIR)$(LUA_LIBDIR)/vivalearning/core.so
	install -m 755 $(SYS_MODULE) $(DESTDIR)$(LUA_LIBDIR)/vivalearning/sys.so
	install -m 755 $(SQLITE_MODULE) $(DESTDIR)$(LUA_LIBDIR)/vivalearning/sqlite.so
	install -m 644 lua/vivalearning/*.lua $(DESTDIR)$(LUA_DIR)/vivalearning/
	sed '1s|^#!.*|#!/usr/bin/env $(LUA_NAME)|' bin/vivalearning > $(DESTDIR)$(BINDIR)/vivalearning
	chmod 755 $(DESTDIR)$(BINDIR)/vivalearning

uninstall:
	rm -rf $(DESTDIR)$(LUA_LIBDIR)/vivalearning $(DESTDIR)$(LUA_DIR)/vivalearning $(DESTDIR)$(BINDIR)/vivalearning

clean:
	rm -rf _build _build-* lib vivalearning fuzz/corpus-run
	-@./emulator/stop --dir "$(EMU_DIR)" --quiet 2>/dev/null || true
