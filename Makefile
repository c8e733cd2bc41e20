# The README's two set-up commands:
#   make quickstart   install what is missing, build, run experiments/quickstart.recipe,
#                     print the table and write the figures (results/scratch/quickstart/;
#                     the committed reference run is results/quickstart/)
#   make test         install what is missing, build, run the whole Criterion suite
# Other targets: build, test-sanitize (ASan + UBSan), fuzz (libFuzzer on the recipe parser and the
# run-file reader, clang; FUZZ_SECONDS=600 to run longer, FUZZ_TARGET=recipe|runfile for one),
# pretrain, evaluator, basecheck, clean.

BUILD ?= build
SAN_BUILD ?= build-sanitize
QADAPT = $(BUILD)/qadapt
QUICK_OUT ?= results/scratch/quickstart

.PHONY: deps build quickstart test test-sanitize fuzz pretrain evaluator basecheck clean

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --buildtype=release

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

quickstart: build
	$(QADAPT) run experiments/quickstart.recipe --out $(QUICK_OUT)
	$(QADAPT) report $(QUICK_OUT) --baseline lora:w8a8
	$(QADAPT) plot $(QUICK_OUT) --baseline lora:w8a8
	@echo "figures: $(QUICK_OUT)/plots/"

test: build
	@rm -f $(BUILD)/meson-logs/testlog.txt
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 || true
	@scripts/test-summary.sh $(BUILD)/meson-logs/testlog.txt

$(SAN_BUILD)/build.ninja: | deps
	meson setup $(SAN_BUILD) --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false

test-sanitize: deps $(SAN_BUILD)/build.ninja
	ninja -C $(SAN_BUILD)
	@rm -f $(SAN_BUILD)/meson-logs/testlog.txt
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  meson test -C $(SAN_BUILD) --print-errorlogs --num-processes 2 || true
	@scripts/test-summary.sh $(SAN_BUILD)/meson-logs/testlog.txt criterion-sanitized

# Two libFuzzer targets, each compiled by clang with libFuzzer, ASan and UBSan and linked against
# the release build's library: `recipe` (the recipe parser; seeds: the experiments' recipes) and
# `runfile` (the run-file reader: bytes written to a temporary file and loaded; seeds: small run
# files of the recorder and two committed quickstart runs). `make fuzz` runs both for
# FUZZ_SECONDS each; FUZZ_TARGET=recipe or FUZZ_TARGET=runfile runs one. A crash is written to
# $(FUZZ_BUILD)/crash-* (rerun one with: $(FUZZ_BUILD)/fuzz_<target> FILE). The run-file target
# runs in fork mode and goes on after a crash (libhdf5 itself crashes on some corrupted metadata,
# see the README), so one run counts them all. Not part of `make test`.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGET ?= recipe runfile
FUZZ_CFLAGS = -g -O1 -std=c11 -D_POSIX_C_SOURCE=200809L -I. $$(pkg-config --cflags hdf5) -Wall -Wextra -Werror
FUZZ_LIBS = -Wl,--start-group $(BUILD)/libqadapt.a -ldnnl $$(pkg-config --libs hdf5 gsl zlib) -lgomp -Wl,--end-group
FUZZ_SAN = -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
fuzz: build
	@scripts/install-deps.sh --fuzz
	mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/corpus-runfile
	clang $(FUZZ_SAN) $(FUZZ_CFLAGS) tests/fuzz/fuzz_recipe.c harness/recipe.c harness/util.c $(FUZZ_LIBS) \
	  -o $(FUZZ_BUILD)/fuzz_recipe
	clang $(FUZZ_SAN) $(FUZZ_CFLAGS) tests/fuzz/fuzz_runfile.c harness/runs.c harness/results.c harness/schema.c \
	  harness/util.c $(FUZZ_LIBS) -o $(FUZZ_BUILD)/fuzz_runfile
	clang $(FUZZ_CFLAGS) tests/fuzz/runfile_seeds.c $(FUZZ_LIBS) -o $(FUZZ_BUILD)/runfile_seeds
	cp experiments/*.recipe $(FUZZ_BUILD)/corpus/
	$(FUZZ_BUILD)/runfile_seeds $(FUZZ_BUILD)/corpus-runfile
	cp results/quickstart/lora-w8a8-r4-s0.h5 results/quickstart/qlora-w4a8-r4-s0.h5 $(FUZZ_BUILD)/corpus-runfile/
	@for t in $(FUZZ_TARGET); do \
	  case $$t in \
	  recipe) (cd $(FUZZ_BUILD) && ./fuzz_recipe -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=5 \
	            -dict=../tests/fuzz/recipe.dict corpus) || exit 1 ;; \
	  runfile) (cd $(FUZZ_BUILD) && ./fuzz_runfile -max_total_time=$(FUZZ_SECONDS) -max_len=100000 -timeout=10 \
	             -rss_limit_mb=2048 -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 corpus-runfile) \
	             || exit 1 ;; \
	  *) echo "FUZZ_TARGET: $$t is not recipe or runfile" >&2; exit 2 ;; \
	  esac; \
	done

pretrain: build
	$(QADAPT) run experiments/pretrain.recipe

evaluator: build
	$(QADAPT) run experiments/evaluator.recipe

basecheck: build
	$(QADAPT) basecheck --out results/pretrained

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)
