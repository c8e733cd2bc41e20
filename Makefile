# The README's two set-up commands:
#   make quickstart   install what is missing, build, run experiments/quickstart.recipe,
#                     print the table and write the figures (results/scratch/quickstart/;
#                     the committed reference run is results/quickstart/)
#   make test         install what is missing, build, run the whole Criterion suite
# Other targets: build, test-sanitize (ASan + UBSan), fuzz (libFuzzer on the recipe parser, clang;
# FUZZ_SECONDS=600 to run longer), pretrain, evaluator, basecheck, clean.

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

# The recipe parser (compiled by clang with libFuzzer, ASan and UBSan) linked against the release
# build's library; seeds are the experiments' recipes; a crash is written to $(FUZZ_BUILD)/crash-*
# (rerun one with: $(FUZZ_BUILD)/fuzz_recipe FILE). Not part of `make test`.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: build
	@scripts/install-deps.sh --fuzz
	mkdir -p $(FUZZ_BUILD)/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c11 \
	  -D_POSIX_C_SOURCE=200809L -I. -Wall -Wextra -Werror tests/fuzz/fuzz_recipe.c harness/recipe.c harness/util.c \
	  -Wl,--start-group $(BUILD)/libqadapt.a -ldnnl $$(pkg-config --libs hdf5 gsl zlib) -lgomp -Wl,--end-group \
	  -o $(FUZZ_BUILD)/fuzz_recipe
	cp experiments/*.recipe $(FUZZ_BUILD)/corpus/
	cd $(FUZZ_BUILD) && ./fuzz_recipe -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=5 \
	  -dict=../tests/fuzz/recipe.dict corpus

pretrain: build
	$(QADAPT) run experiments/pretrain.recipe

evaluator: build
	$(QADAPT) run experiments/evaluator.recipe

basecheck: build
	$(QADAPT) basecheck --out results/pretrained

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(FUZZ_BUILD)
