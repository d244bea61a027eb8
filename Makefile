# flowscope: the two commands a new user types, and the targets behind them.
#
#   make demo   install missing Debian packages, build, record built-in sample
#               traffic into an archive, query one flow back
#   make test   install missing Debian packages, run the static analyzers
#               (make analyze), build, run every test through ctest, then
#               again in an ASan+UBSan build, and the threaded tests once
#               more under ThreadSanitizer
#
#   make install   build, then install the binary, the man pages and
#               docs/examples under PREFIX (default /usr/local), below DESTDIR
#               when given (make install DESTDIR=/tmp/root PREFIX=/usr)
#   make deb    build build/flowscope_<version>_<arch>.deb (docs/install.md)
#
# Other targets: deps (install only), build (default), asan, test-release,
# test-asan, test-tsan, analyze, bench, format, format-check, clean.  The build itself is CMake; this file only drives it.

SHELL := /bin/bash
JOBS  ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 12
ANALYZE_BUILD ?= build-analyze

# Build dependencies and the independent test oracles, as Debian 12 packages.
DEB_BUILD := gcc make cmake pkg-config libc6-dev libdpdk-dev dpdk liburing-dev \
             liblmdb-dev libpcap-dev libzstd-dev libcmocka-dev \
             libluajit2-5.1-dev \
             pandoc \
             libcap-dev
DEB_BUILD += libinih-dev
DEB_BUILD += dpkg-dev file
DEB_BUILD += libsystemd-dev
DEB_BUILD += libmicrohttpd-dev libgnutls28-dev libcurl4-gnutls-dev
DEB_BUILD += libjansson-dev
DEB_BUILD += nettle-dev
DEB_BUILD += libjansson-dev
DEB_TEST  := tcpdump tshark zstd tcpreplay lmdb-utils clang-format util-linux python3 strace \
             python3-lmdb python3-zstandard \
             iproute2 jq clang libclang-rt-14-dev \
             clang-tools cppcheck perl \
             groff-base man-db
DEB_TEST  += lintian shellcheck
DEB_TEST  += prometheus
DEB_TEST  += systemd
DEB_TEST  += openssl curl
DEB_TEST  += git
DEB_TEST  += chromium
DEB_TEST  += nfdump pmacct
DEB_TEST  += clickhouse-server
# and npm (e2e_web's puppeteer-core, from tests/e2e/web/package-lock.json): Debian's package
# when no npm is there; a Node.js install that brings its own npm is left alone
DEB_ALL   := $(DEB_BUILD) $(DEB_TEST)

.PHONY: all build install deb deps asan test test-release test-asan test-tsan test-fuzz fuzz-force bench demo format \
        format-check clean analyze

all: build

# Installs exactly the packages that are missing; a no-op when all are present.
# Runs without prompts (as root, or through sudo when that exists).
deps:
	@missing=$$(for p in $(DEB_ALL); do \
	    dpkg-query -W -f='$${db:Status-Status}\n' "$$p" 2>/dev/null | grep -qx installed || echo "$$p"; \
	  done; command -v npm >/dev/null || echo npm); \
	if [ -z "$$missing" ]; then echo "deps: all $(words $(DEB_ALL)) Debian packages present"; exit 0; fi; \
	echo "deps: installing" $$missing; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO="sudo -n"; \
	else echo "deps: need root (or sudo) to install:" $$missing >&2; exit 1; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get update -q >/dev/null && \
	$$SUDO apt-get install -y -q --no-install-recommends $$missing >/dev/null || \
	{ echo "deps: apt-get install failed for:" $$missing >&2; exit 1; }; \
	echo "deps: done"

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOWSCOPE_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# CMake's install (GNUInstallDirs): PREFIX is configured in (paths under /etc
# follow it as GNUInstallDirs says), DESTDIR is where the tree is put.
PREFIX ?= /usr/local
install: build
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@DESTDIR="$(DESTDIR)" cmake --install $(BUILD)

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DFLOWSCOPE_WERROR=ON \
	    -DFLOWSCOPE_SANITIZE=address,undefined >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

test-release: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

test-asan: asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	    ctest --output-on-failure -j $(JOBS) --timeout 900

# The threaded tests (label "tsan") again under ThreadSanitizer.
test-tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DFLOWSCOPE_WERROR=ON \
	    -DFLOWSCOPE_SANITIZE=thread >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target tsan_tests
	@cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	    ctest --output-on-failure -L tsan --timeout 600

# libFuzzer targets (clang, ASan+UBSan), each for a bounded time: make
# FUZZ_SECONDS=600 test-fuzz for a longer run.  A crash leaves its input in
# $(FUZZ_BUILD)/ and fails the target.
FUZZ_CFLAGS = -std=c17 -D_GNU_SOURCE -g -O1 -I. -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=all -DFLOWSCOPE_VERSION='"fuzz"'
# Seeds: tests/fuzz/corpus/<target>/ (copied, so a run adds nothing there; remade by
# tests/fuzz/make_seeds.sh); every input that once crashed a target stays in
# tests/fuzz/regressions/<target>/ and is run first.
FUZZ_TARGETS = fuzz_parse fuzz_plan fuzz_pcapng fuzz_units fuzz_index fuzz_segment fuzz_steno
FUZZ_TARGETS += fuzz_api fuzz_eve
FUZZ_ARCHIVE_SRC = archive/archive.c archive/index.c archive/terms.c archive/writer.c \
    archive/reader.c archive/rules.c archive/scan.c archive/segio.c archive/verify.c \
    archive/recover.c archive/retention.c archive/pins.c archive/flowexport.c archive/lmdbcheck.c flowtrack/flowkey.c \
    archive/dump.c flowtrack/parse.c flowtrack/table.c flowtrack/bpf.c flowtrack/units.c \
    flowtrack/community_id.c qq/qq.c
FUZZ_ARCHIVE_LIBS = $$(pkg-config --cflags --libs lmdb libpcap libzstd liburing nettle) -lpthread
# The targets are built, then run, $(JOBS) at a time (each fuzzer on one core
# for FUZZ_SECONDS); every binary is built again on every run.
FUZZ_BINS = $(addprefix $(FUZZ_BUILD)/,$(FUZZ_TARGETS))
test-fuzz: deps
	@$(MAKE) --no-print-directory -j $(JOBS) $(FUZZ_BINS)
	@$(MAKE) --no-print-directory -j $(JOBS) -O $(addprefix fuzz-run-,$(FUZZ_TARGETS))

$(FUZZ_BUILD)/fuzz_parse: fuzz-force
	@clang $(FUZZ_CFLAGS) tests/fuzz/fuzz_parse.c flowtrack/parse.c flowtrack/flowkey.c flowtrack/units.c \
	    -o $@
$(FUZZ_BUILD)/fuzz_plan: fuzz-force
	@clang $(FUZZ_CFLAGS) tests/fuzz/fuzz_plan.c query/plan.c archive/index.c archive/terms.c \
	    archive/archive.c archive/lmdbcheck.c flowtrack/flowkey.c flowtrack/parse.c flowtrack/table.c \
	    flowtrack/units.c qq/qq.c $$(pkg-config --cflags --libs lmdb libpcap) -lpthread -o $@
$(FUZZ_BUILD)/fuzz_pcapng: fuzz-force
	@clang $(FUZZ_CFLAGS) tests/fuzz/fuzz_pcapng.c ingest/file.c ingest/pcapng_links.c \
	    ingest/source.c qq/qq.c $$(pkg-config --cflags --libs libpcap) -lpthread -o $@
$(FUZZ_BUILD)/fuzz_units: fuzz-force
	@clang $(FUZZ_CFLAGS) tests/fuzz/fuzz_units.c tools/cli.c $(FUZZ_ARCHIVE_SRC) \
	    $(FUZZ_ARCHIVE_LIBS) -o $@
$(FUZZ_BUILD)/fuzz_index $(FUZZ_BUILD)/fuzz_segment: fuzz-force
	@clang $(FUZZ_CFLAGS) tests/fuzz/$(@F).c $(FUZZ_ARCHIVE_SRC) $(FUZZ_ARCHIVE_LIBS) -o $@
$(FUZZ_BUILD)/fuzz_steno: fuzz-force
	@clang $(FUZZ_CFLAGS) tests/fuzz/fuzz_steno.c query/steno.c flowtrack/units.c \
	    $$(pkg-config --cflags --libs libpcap) -o $@
$(FUZZ_BUILD)/fuzz_api: fuzz-force
	@cmake "-DFILES=$(CURDIR)/query/web/index.html|$(CURDIR)/query/web/app.js|$(CURDIR)/query/web/app.css|$(CURDIR)/query/web/favicon.svg" \
	    -DOUT=$(FUZZ_BUILD)/web_assets.c -P query/web/embed.cmake
	@clang $(FUZZ_CFLAGS) tests/fuzz/fuzz_api.c query/api.c query/api_query.c query/api_trigger.c \
	    query/web.c query/web_api.c $(FUZZ_BUILD)/web_assets.c \
	    query/steno.c query/run.c query/readahead.c query/plan.c query/export.c query/flows.c tools/cli.c \
	    $(FUZZ_ARCHIVE_SRC) $(FUZZ_ARCHIVE_LIBS) $$(pkg-config --cflags --libs libmicrohttpd gnutls jansson) \
	    -o $@
$(FUZZ_BUILD)/fuzz_eve: fuzz-force
	@clang $(FUZZ_CFLAGS) tests/fuzz/fuzz_eve.c ingest/eve.c qq/qq.c \
	    $$(pkg-config --cflags --libs jansson) -lm -lpthread -o $@
fuzz-force:
$(FUZZ_BINS): | $(FUZZ_BUILD)
$(FUZZ_BUILD):
	@mkdir -p $@

# fuzz-run-TARGET: its regression inputs, then FUZZ_SECONDS from its seeds.
fuzz-run-%:
	@f=$*; reg=$$(ls -d $(CURDIR)/tests/fuzz/regressions/$$f/* 2>/dev/null); \
	[ -z "$$reg" ] || (cd $(FUZZ_BUILD) && ./$$f $$reg 2>$$f.reg.log) || \
	    { tail -30 $(FUZZ_BUILD)/$$f.reg.log; echo "test-fuzz: $$f: a regression input fails"; exit 1; }; \
	rm -rf $(FUZZ_BUILD)/corpus-$$f && mkdir -p $(FUZZ_BUILD)/corpus-$$f && \
	cp tests/fuzz/corpus/$$f/* $(FUZZ_BUILD)/corpus-$$f/ 2>/dev/null; \
	(cd $(FUZZ_BUILD) && ./$$f -max_total_time=$(FUZZ_SECONDS) -seed=1 -print_final_stats=1 \
	    corpus-$$f 2>$$f.log) || { tail -30 $(FUZZ_BUILD)/$$f.log; exit 1; }; \
	echo "test-fuzz: $$f: $$(echo $$reg | wc -w) regression inputs, $$(grep -o 'stat::number_of_executed_units: [0-9]*' $(FUZZ_BUILD)/$$f.log | grep -o '[0-9]*$$') inputs, no crash"

# Static analysis, both tools failing on any finding and printing it: clang's
# analyzer (scan-build, from clang-tools; a Perl script: perl) over a Debug build from scratch of
# every target, tests and benchmarks included, in $(ANALYZE_BUILD)/ (HTML in
# $(ANALYZE_BUILD)/scan/), then cppcheck over the same compile commands.  A
# finding is fixed in the code; a false one is made plain to the tool (an
# initialisation, a clearer flow), cppcheck's inline suppressions only with a
# comment saying why.
analyze: deps
	@rm -rf $(ANALYZE_BUILD) # from scratch: every file compiled through the analyzer
	@scan-build -o $(ANALYZE_BUILD)/scan cmake -S . -B $(ANALYZE_BUILD) -DCMAKE_BUILD_TYPE=Debug \
	    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
	@grep -q ccc-analyzer $(ANALYZE_BUILD)/CMakeCache.txt || \
	  { echo "analyze: cmake did not take scan-build's compiler" >&2; exit 1; }
	@out=$$(scan-build --status-bugs -o $(ANALYZE_BUILD)/scan \
	          cmake --build $(ANALYZE_BUILD) -j $(JOBS) 2>&1); rc=$$?; \
	  grep -E ' (warning|error): ' <<<"$$out" | sort -u; \
	  if [ $$rc != 0 ]; then grep -E '^scan-build: ' <<<"$$out"; \
	    echo "analyze: scan-build failed (reports in $(ANALYZE_BUILD)/scan/)" >&2; exit 1; fi; \
	  echo "analyze: scan-build: no findings"
	@cppcheck --project=$(ANALYZE_BUILD)/compile_commands.json --enable=warning,portability \
	    --inline-suppr --error-exitcode=1 --quiet -j $(JOBS) \
	    --template='{file}:{line}: {severity}: {message} [{id}]' && \
	  echo "analyze: cppcheck: no findings"

test: format-check analyze test-release test-asan test-tsan test-fuzz
	@echo "make test: static analysis clean, all tests passed (release, ASan+UBSan, TSan and fuzz)"

# Benchmarks (not tests): each prints its baseline from the same run.
bench: build
	@$(BUILD)/tools/bench/qq_bench
	@$(BUILD)/tools/bench/flow_bench
	@$(BUILD)/tools/bench/dump_bench
	@$(BUILD)/tools/bench/trigger_bench
	@tools/bench/ingest_bench.sh $(BUILD)
	@tools/bench/query_bench.sh $(BUILD)
	@tools/bench/query_scaling.sh $(BUILD)
	@tools/bench/query_parallel.sh $(BUILD)
	@tools/bench/web_bench.sh $(BUILD)

demo: build
	@tools/demo.sh $(BUILD)/tools/flowscope

# The Debian package of the release build, by CPack (packaging/CMakeLists.txt says why CPack):
# $(BUILD)/flowscope_<version>_<arch>.deb
deb: build
	@cd $(BUILD) && cpack --config CPackConfig.cmake >cpack.log 2>&1 || \
	  { cat cpack.log >&2; echo "deb: cpack failed" >&2; exit 1; }
	@sed -n "s/^CPack: - package: \(.*\) generated\./\1/p" $(BUILD)/cpack.log

FORMAT_FILES = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')

format: deps
	@clang-format -i $(FORMAT_FILES)

format-check: deps
	@clang-format --dry-run -Werror $(FORMAT_FILES) && echo "format-check: $(words $(FORMAT_FILES)) files clean"

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD) $(ANALYZE_BUILD)
