# mmghost: `make demo` (the main job) and `make test` set up everything they
# need on a fresh machine: a virtualenv in .venv with the pinned stack, mmcv
# built from its sdist (about 20 minutes on 2 cores, once; pip caches the
# wheel). A second run rebuilds nothing that is already there.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STACK := $(VENV)/.stack-installed
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup test test-kernels demo bench clean-venv

setup: $(STACK)

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first (mmcv's build imports it), setuptools<82 (mmcv's setup.py and
# mmengine's `mmdet::` scopes need pkg_resources), then mmcv with its ops,
# then the rest, then mmghost itself (editable).
$(STACK): $(PY) setup.py requirements/stack.txt
	$(PIP) install -q torch==2.13.0 'setuptools<82' wheel mmengine==0.10.7
	$(PY) -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null \
	  || MMCV_WITH_OPS=1 MAX_JOBS=$(JOBS) $(PIP) install --no-build-isolation mmcv==2.1.0
	$(PIP) install -q -r requirements/stack.txt
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PIP) install -q --no-build-isolation -e '.[onnx]'
	$(PIP) install -q --no-build-isolation -e '.[openvino]'
	$(PY) -c "import mmghost, mmcv, mmdet; print('stack ready: mmghost', mmghost.__version__, 'mmcv', mmcv.__version__, 'mmdet', mmdet.__version__)"
	touch $(STACK)

test: $(STACK)
	$(PY) -m pytest tests -q -rs

# The tests that train (marked `trains`) under each CPU kernel path that CI
# machines differ by: native, AVX2, SSE4.1 (ATen's default kernels) and
# oneDNN limited to AVX2 alone. One machine stands in for several.
KERNEL_PATHS := native \
	ONEDNN_MAX_CPU_ISA=AVX2,ATEN_CPU_CAPABILITY=avx2 \
	ONEDNN_MAX_CPU_ISA=SSE41,ATEN_CPU_CAPABILITY=default \
	ONEDNN_MAX_CPU_ISA=AVX2

test-kernels: $(STACK)
	@status=0; for path in $(KERNEL_PATHS); do \
	  vars=$$(test $$path = native || echo $$path | tr , ' '); \
	  log=$$(mktemp); \
	  env $$vars $(PY) -m pytest tests -q -m trains -rf > $$log 2>&1 \
	    || status=1; \
	  echo "kernel path $$path: $$(grep -E '^(FAILED|ERROR) ' $$log)" \
	    "$$(tail -n 1 $$log)"; \
	  rm -f $$log; \
	done; exit $$status

demo: $(STACK)
	$(PY) tools/demo.py

bench: $(STACK)
	$(PY) benchmarks/bench.py --device cpu

clean-venv:
	rm -rf $(VENV)
