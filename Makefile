# One entry point for building, testing and running. `make test` and `make demo` work on a fresh
# Debian machine as root: they install the Debian packages they need first.
SHELL := /bin/bash
BUILD_DIR ?= _build/cmake
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
APP_VSN := $(shell sed -n 's/.*{vsn, "\(.*\)"}.*/\1/p' erl_src/emqx_azure_marketplace.app.src)
PLUGIN_VSN ?= $(APP_VSN)
PLUGIN_DIR ?= _build/plugin
PORT ?= 8480

DEB_PACKAGES := cmake make g++ erlang-nox erlang-dev erlang-eunit erlang-inets erlang-ssl \
  erlang-crypto erlang-public-key erlang-tools erlang-runtime-tools erlang-mnesia rebar3 \
  erlang-proper erlang-proper-dev libboost-json1.81-dev libcurl4-openssl-dev libssl-dev \
  libgtest-dev openssl ca-certificates

.PHONY: all deps nif cpp-tests test eunit dialyzer demo bench soak emulator clean plugin

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

# Every test: GoogleTest (through ctest), then EUnit (with PropEr) against the emulator.
test: deps
	$(MAKE) cpp-tests
	$(MAKE) plugin
	$(MAKE) eunit

# Static checks of the Erlang code (specs, records in match patterns, unreachable code).
dialyzer: deps
	rebar3 dialyzer

demo: deps
	rebar3 as test compile
	erl -noshell -pa _build/test/lib/*/ebin _build/test/lib/emqx_azure_marketplace/tests/emulator \
	  _build/test/lib/emqx_azure_marketplace/tests/erl _build/test/lib/emqx_azure_marketplace/tests/demo \
	  -eval "azmp_demo:main()"

bench: deps
	rebar3 as test compile
	erl -noshell +P 2000000 -pa _build/test/lib/*/ebin _build/test/lib/emqx_azure_marketplace/tests/emulator \
	  _build/test/lib/emqx_azure_marketplace/tests/erl -pa _build/test/lib/emqx_azure_marketplace/bench \
	  -eval 'azmp_bench:main(), azmp_bench_gating:main(), azmp_bench_metering:main(), azmp_bench_listener:main(), halt(0).'
	cmake --build $(BUILD_DIR) --target azmp_jwt_bench -j $(JOBS)
	$(BUILD_DIR)/azmp_jwt_bench; rc=$$?; [ $$rc -le 1 ]  # 1: below target (reported), 2: could not measure

# Longer runs than `make test` affords: the PropEr state machine over 1,000 sequences, then a plugin
# node SIGKILLed 50 times while it links, lands, handles webhooks and meters (invariants checked).
soak: deps
	AZMP_STATEM_NUMTESTS=$${AZMP_STATEM_NUMTESTS:-1000} rebar3 eunit --module=azmp_statem_tests
	rebar3 as test compile
	erl -noshell -pa _build/test/lib/*/ebin _build/test/lib/emqx_azure_marketplace/tests/emulator \
	  _build/test/lib/emqx_azure_marketplace/tests/erl -eval 'azmp_soak:main()'

# A standalone emulator: HTTP on PORT, HTTPS on PORT+1.
emulator: deps
	rebar3 as test compile
	erl -noshell -pa _build/test/lib/*/ebin _build/test/lib/emqx_azure_marketplace/tests/emulator \
	  -eval 'azmp_emulator:standalone(["$(PORT)"])'

clean:
	rm -rf $(BUILD_DIR) _build/default _build/test priv/*.so
