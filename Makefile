# sc2lsp: `make demo` and `make test` are the two commands a fresh machine needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast test-deps model attribution-index clean-venv vsix vscode-test-tools llama-server

$(STAMP): pyproject.toml setup.py sc2lsp/attribution/_speedups.c
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# the CPU build of torch first, so nothing later pulls a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	# llama-cpp-python compiles from source (~6 min on 2 cores); pip caches the wheel
	$(BIN)/python -m pip install -q -e ".[train,test]"
	touch $(STAMP)

install: $(STAMP)

## `sc2lsp serve` driven over stdio like an editor: a suggestion in examples/demo, then typing (warm-cache latency).
demo: $(STAMP)
	$(BIN)/python -m sc2lsp.demo

## The whole suite (slow tests included). First installs what the editor tests need when it can (as root:
## apt packages; with node: the .vsix, code-server, playwright-core); tests whose tools are missing skip.
test: $(STAMP) test-deps
	$(BIN)/python -m pytest -q -ra

## The editor tests' tools (editors/test-deps.sh): installed when possible, never a failure.
test-deps:
	@bash editors/test-deps.sh

## Everything but the tests marked slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

## Rebuild the embedded model from scratch (two stages, about 2.5 hours on 2 cores); see models/sc2-tiny/MODEL_CARD.md.
model: $(STAMP)
	$(BIN)/python -m finetune prepare-stdlib
	$(BIN)/python -m finetune pretrain --config finetune/configs/sc2-tiny.toml
	$(BIN)/python -m finetune prepare-stdlib out=runs/stdlib-long max_chars=3500 epochs=4 tokenizer=runs/sc2-tiny/hf
	$(BIN)/python -m finetune pretrain --config finetune/configs/sc2-tiny-long.toml
	$(BIN)/python -m finetune export-tiny

## The attribution index of sc2-tiny's training corpus (this interpreter's standard library), linked in models.toml.
attribution-index: $(STAMP)
	$(BIN)/python -c "from finetune.export import build_stdlib_attribution_index as b; print(b('models/sc2-tiny/attribution'))"

## llama.cpp's llama-server, built once from llama-cpp-python's sdist into ~/.cache/sc2lsp/llama-server (~10+ min on
## 2 cores): the llama-server reference of bench/latency.py and bench/team.py, tests/backends/test_remote_llama_server.py.
llama-server:
	nice -n 10 bench/build_llama_server.sh

clean-venv:
	rm -rf $(VENV)

# ------------------------------------------------------------------ VS Code extension (editors/vscode)
VSCODE := editors/vscode
VSIX := $(VSCODE)/build/sc2lsp.vsix

## The VS Code extension as a .vsix (npm ci, tsc type check, esbuild bundle, vsce package).
vsix: $(VSIX)

$(VSIX): $(VSCODE)/package.json $(VSCODE)/package-lock.json $(VSCODE)/tsconfig.json $(wildcard $(VSCODE)/src/*.ts) $(VSCODE)/README.md
	cd $(VSCODE) && npm ci --no-audit --no-fund --loglevel=error && npm run -s build && npm run -s package

## code-server + playwright-core for tests/editors/test_vscode.py (outside the repo; root: add --apt for chromium/ripgrep).
vscode-test-tools:
	bash $(VSCODE)/scripts/install-test-tools.sh
