# Two commands for a new user: `make test` and `make demo`. Both create .venv in the checkout.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Development pins; the package itself accepts torch>=2.4 (see pyproject.toml).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

.PHONY: test demo venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[dev]' $(TORCH_PINS)
	touch $@

venv: $(VENV)/.installed

# every test, the slow ones (that start other processes) included; `$(PY) -m pytest -m "not slow"` skips those
test: venv
	$(PY) -m pytest -q tests

demo: venv
	$(PY) -m editvit demo --output runs/demo $(if $(DATA),--data-dir $(DATA))

clean:
	rm -rf $(VENV) build *.egg-info
