# Luminary: `make demo` runs the main job, `make test` the whole suite. Both bootstrap .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit bench bench-tracking bench-datasets bench-serving bench-ui proto clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: $(STAMP)
	$(BIN)/luminary demo

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

$(VENV)/.installed-bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

bench: bench-tracking bench-datasets bench-serving bench-ui

bench-tracking: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/tracking_vs_mlflow.py

bench-datasets: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/datasets_vs_dvc.py

# Needs taskset (util-linux), h2load (Debian's nghttp2-client) and network access once, to fetch
# Triton's perf_analyzer into ~/.cache/luminary-bench.
bench-serving: $(STAMP)
	$(BIN)/python benchmarks/serving.py

# Needs Debian's chromium for the browser timing (skipped without it).
bench-ui: $(STAMP)
	$(BIN)/python benchmarks/ui.py

# The serving protocol's messages, generated from src/luminary/serving/_proto/*.proto into a
# private descriptor pool (see that package's docstring). Needs grpcio-tools.
PROTO_DIR := src/luminary/serving/_proto
proto: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check grpcio-tools
	cd src && ../$(BIN)/python -m grpc_tools.protoc -I . --python_out=. \
		luminary/serving/_proto/model_config.proto luminary/serving/_proto/grpc_service.proto
	sed -i 's/_descriptor_pool.Default()/_pool.POOL/; s/^from google.protobuf import descriptor_pool as _descriptor_pool$$/from luminary.serving import _proto as _pool/' \
		$(PROTO_DIR)/model_config_pb2.py $(PROTO_DIR)/grpc_service_pb2.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
