# The two set-up commands of the README:
#   make demo   - install, prepare the embedded corpus, open the cockpit on ./workspace
#   make test   - install, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
WORKSPACE ?= workspace
PROFILE   ?= cpu

.PHONY: install demo headless test bench clean

$(BIN)/cockpit: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/cockpit

install: $(BIN)/cockpit

$(WORKSPACE)/prepare.py: | $(BIN)/cockpit
	$(BIN)/cockpit init $(WORKSPACE) --profile $(PROFILE)

demo: $(WORKSPACE)/prepare.py
	$(BIN)/cockpit --workspace $(WORKSPACE)

headless: $(WORKSPACE)/prepare.py
	$(BIN)/cockpit --workspace $(WORKSPACE) --headless

test: $(BIN)/cockpit
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(WORKSPACE)
