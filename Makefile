# One entry point for building, testing and running. `make test` and `make demo` work on a fresh
# Debian machine as root: they install the Debian packages they need first.
SHELL := /bin/bash
BUILD_DIR ?= _build/cmake
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
APP_VSN := $(shell sed -n 's/.*{vsn, "\(.*\)"}.*/\1/p' erl_src/emqx_azure_marketplace.app.src)
PLUGIN_VSN ?= $(APP_VSN)
PLUGIN_DIR ?= _build/plugin
PORT ?= 8480
# rebar3's build directory (REBAR_BASE_DIR when set, as for a second checkout's own build).
REBAR_BUILD := $(or $(REBAR_BASE_DIR),_build)

DEB_PACKAGES := cmake make g++ erlang-nox erlang-dev erlang-eunit erlang-inets erlang-ssl \
  erlang-crypto erlang-public-key erlang-tools erlang-runtime-tools erlang-mnesia rebar3 \
  erlang-proper erlang-proper-dev libboost-json1.81-dev libcurl4-openssl-dev libssl-dev \
  libgtest-dev openssl ca-certificates clang libclang-rt-14-dev

.PHONY: all deps browser-deps nif cpp-tests test eunit dialyzer demo bench soak emulator clean plugin \
  sanitize sanitize-cpp sanitize-tsan sanitize-eunit fuzz fuzz-build

all: deps nif

# Installs whatever Debian package is missing (needs root and apt-get; does nothing when all are there).
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "not root: install them with apt-get first" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

# The NIF library, copied into priv/ as a regular file (code:priv_dir/1 finds it there).
nif: $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) --target emqx_azure_marketplace_nif -j $(JOBS)
	@mkdir -p priv
	@cp -f $(BUILD_DIR)/emqx_azure_marketplace_nif.so priv/emqx_azure_marketplace_nif.so.tmp
	@mv -f priv/emqx_azure_marketplace_nif.so.tmp priv/emqx_azure_marketplace_nif.so

cpp-tests: $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

eunit:
	rebar3 eunit

# The EMQX plugin package: $(PLUGIN_DIR)/emqx_azure_marketplace-$(PLUGIN_VSN).tar.gz and its .sha256.
plugin: deps
	rebar3 compile
	$(MAKE) nif
	escript scripts/make_plugin.escript $(PLUGIN_VSN) $(PLUGIN_DIR)

# Headless Chromium and its WebDriver, for the browser test (azmp_browser_tests), as `deps' does.
BROWSER_PACKAGES := chromium chromium-driver fonts-dejavu-core
browser-deps:
	@$(MAKE) -s deps DEB_PACKAGES="$(BROWSER_PACKAGES)"

# Every test: GoogleTest (through ctest), then EUnit (with PropEr) against the emulator, the
# browser test included.
test: deps browser-deps
	$(MAKE) cpp-tests
	$(MAKE) plugin
	$(MAKE) eunit

# Static checks of the Erlang code (specs, records in match patterns, unreachable code), and no
# cycle between its modules (also an EUnit test: azmp_module_cycles_tests).
dialyzer: deps
	rebar3 dialyzer
	escript scripts/check_cycles.escript $(REBAR_BUILD)/default/lib/emqx_azure_marketplace/ebin

# CONSOLE=1: afterwards the plugin and the stand-in console stay up for a browser (URLs printed).
demo: deps
	rebar3 as test compile
	AZMP_DEMO_CONSOLE=$(CONSOLE) erl -noshell -pa $(REBAR_BUILD)/test/lib/*/ebin $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/emulator \
	  $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/erl $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/demo \
	  -eval "azmp_demo:main()"

# The bench's own baselines (not needed by `make test'): nginx as the fast server, wrk as the C
# ceiling, jiffy as httpc's JSON decoder (azmp_bench_engine).
BENCH_PACKAGES := nginx-light wrk erlang-jiffy
bench: deps
	@$(MAKE) -s deps DEB_PACKAGES="$(BENCH_PACKAGES)"
	rebar3 as test compile
	cmake --build $(BUILD_DIR) --target azmp_curl_multi_floor -j $(JOBS)
	AZMP_CURL_FLOOR=$(BUILD_DIR)/azmp_curl_multi_floor erl -noshell +P 2000000 -pa $(REBAR_BUILD)/test/lib/*/ebin $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/emulator \
	  $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/erl -pa $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/bench \
	  -eval 'azmp_bench_engine:main(), azmp_bench:main(), azmp_bench_gating:main(), azmp_bench_metering:main(), azmp_bench_listener:main(), azmp_bench_recon:main(), halt(0).'
	cmake --build $(BUILD_DIR) --target azmp_jwt_bench -j $(JOBS)
	$(BUILD_DIR)/azmp_jwt_bench; rc=$$?; [ $$rc -le 1 ]  # 1: below target (reported), 2: could not measure

# Sanitizers, each in a build directory of its own. A report fails the run: ASan halts on its first
# error, UBSan is built not to recover (-fno-sanitize-recover=all), TSan exits non-zero.
ASAN_DIR ?= _build/asan
TSAN_DIR ?= _build/tsan
SAN_CMAKE := -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g -O1"
ASAN_ENV := ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
TSAN_ENV := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

sanitize: deps
	$(MAKE) sanitize-cpp
	$(MAKE) sanitize-tsan
	$(MAKE) sanitize-eunit

# The C++ library and every GoogleTest with AddressSanitizer + UndefinedBehaviorSanitizer.
sanitize-cpp: deps
	cmake -S . -B $(ASAN_DIR) $(SAN_CMAKE) -DAZMP_SANITIZE=address,undefined >/dev/null
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && $(ASAN_ENV) ctest --output-on-failure -j $(JOBS)

# ThreadSanitizer over what runs on more than one thread: the engine, the client, webhook auth.
sanitize-tsan: deps
	cmake -S . -B $(TSAN_DIR) $(SAN_CMAKE) -DAZMP_SANITIZE=thread >/dev/null
	cmake --build $(TSAN_DIR) --target azmp_azure_tests -j $(JOBS)
	$(TSAN_ENV) $(TSAN_DIR)/azmp_azure_tests --gtest_brief=1

# The EUnit suites with the ASan+UBSan NIF loaded into the VM: libasan is preloaded into erl (the
# VM itself is not instrumented, and is not leak-clean: leak detection off). The sanitized library
# goes into a lib directory of its own, first in the code path, so code:priv_dir/1 finds it there
# and priv/ keeps the normal build. Only erl gets libasan, through an `erl` first in PATH (peer
# nodes of the cluster tests start through it too); the VM drops LD_PRELOAD from its environment at
# once, because other programs the tests run (curl) hang with libasan preloaded.
ASAN_EUNIT := _build/asan-eunit
ASAN_EUNIT_APP := $(ASAN_EUNIT)/lib/emqx_azure_marketplace
# Checks that the VM takes the library from there, then runs every suite of tests/erl.
ASAN_EUNIT_EVAL := os:unsetenv("LD_PRELOAD"), \
  true = lists:prefix(filename:absname("$(ASAN_EUNIT_APP)"), filename:absname(code:priv_dir(emqx_azure_marketplace))), \
  R = eunit:test({dir, "$(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/erl"}, [verbose]), \
  halt(case R of ok -> 0; _ -> 1 end).
sanitize-eunit: deps
	cmake -S . -B $(ASAN_DIR) $(SAN_CMAKE) -DAZMP_SANITIZE=address,undefined >/dev/null
	cmake --build $(ASAN_DIR) --target emqx_azure_marketplace_nif -j $(JOBS)
	rebar3 as test compile
	rm -rf $(ASAN_EUNIT) && mkdir -p $(ASAN_EUNIT_APP)/priv $(ASAN_EUNIT)/bin
	ln -s $(abspath $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/ebin) $(ASAN_EUNIT_APP)/ebin
	cp $(ASAN_DIR)/emqx_azure_marketplace_nif.so $(ASAN_EUNIT_APP)/priv/
	printf '#!/bin/sh\nLD_PRELOAD=%s exec %s "$$@"\n' "$$(g++ -print-file-name=libasan.so)" "$$(command -v erl)" \
	  > $(ASAN_EUNIT)/bin/erl && chmod +x $(ASAN_EUNIT)/bin/erl
	PATH=$(CURDIR)/$(ASAN_EUNIT)/bin:$$PATH ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  erl -noshell -pa $(ASAN_EUNIT_APP)/ebin -pz $(REBAR_BUILD)/test/lib/*/ebin \
	  $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/emulator $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/erl \
	  -eval '$(ASAN_EUNIT_EVAL)'

# libFuzzer targets (tests/fuzz/fuzz_*.cpp, built with clang, ASan and UBSan), each run FUZZ_SECONDS
# on its corpus (tests/fuzz/corpus/<target>, seeded by tests/fuzz/make_corpus.py; what a run finds
# new goes to $(FUZZ_DIR)/corpus, not into the repository). A crash fails the run and leaves its
# input in $(FUZZ_DIR)/artifacts.
FUZZ_DIR ?= _build/fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS = $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.cpp)))
fuzz-build: deps
	cmake -S . -B $(FUZZ_DIR) -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAZMP_FUZZ=ON \
	  -DAZMP_CORE_ONLY=ON -DAZMP_BUILD_TESTS=OFF >/dev/null
	cmake --build $(FUZZ_DIR) -j $(JOBS) --target $(FUZZ_TARGETS)

fuzz: fuzz-build
	@mkdir -p $(FUZZ_DIR)/artifacts
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t; \
	  echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_DIR)/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 -max_len=8192 -artifact_prefix=$(FUZZ_DIR)/artifacts/$$t- \
	    $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t 2>$(FUZZ_DIR)/$$t.log \
	    || { tail -50 $(FUZZ_DIR)/$$t.log; exit 1; }; \
	  grep -E '^#[0-9]+.*(DONE|pulse)' $(FUZZ_DIR)/$$t.log | tail -1; \
	  grep -E 'stat::number_of_executed_units' $(FUZZ_DIR)/$$t.log; \
	done

# Longer runs than `make test` affords: the PropEr state machine over 1,000 sequences, then a plugin
# node SIGKILLed 50 times while it links, lands, handles webhooks and meters (invariants checked).
soak: deps
	AZMP_STATEM_NUMTESTS=$${AZMP_STATEM_NUMTESTS:-1000} rebar3 eunit --module=azmp_statem_tests
	rebar3 as test compile
	erl -noshell -pa $(REBAR_BUILD)/test/lib/*/ebin $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/emulator \
	  $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/erl -eval 'azmp_soak:main()'

# A standalone emulator: HTTP on PORT, HTTPS on PORT+1.
emulator: deps
	rebar3 as test compile
	erl -noshell -pa $(REBAR_BUILD)/test/lib/*/ebin $(REBAR_BUILD)/test/lib/emqx_azure_marketplace/tests/emulator \
	  -eval 'azmp_emulator:standalone(["$(PORT)"])'

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR) $(FUZZ_DIR) _build/asan-eunit _build/default _build/test priv/*.so
