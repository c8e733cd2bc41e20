# The README's two set-up commands:
#   make quickstart   install what is missing, build, run experiments/quickstart.recipe,
#                     print the table and write the figures (results/scratch/quickstart/;
#                     the committed reference run is results/quickstart/)
#   make test         install what is missing, build, run the whole Criterion suite
# Other targets: build, test-sanitize (ASan + UBSan), pretrain, evaluator, basecheck, clean.

BUILD ?= build
SAN_BUILD ?= build-sanitize
QADAPT = $(BUILD)/qadapt
QUICK_OUT ?= results/scratch/quickstart

.PHONY: deps build quickstart test test-sanitize pretrain evaluator basecheck clean

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

pretrain: build
	$(QADAPT) run experiments/pretrain.recipe

evaluator: build
	$(QADAPT) run experiments/evaluator.recipe

basecheck: build
	$(QADAPT) basecheck --out results/pretrained

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
