# The two set-up commands of the README:
#   make demo   - install, prepare the embedded corpus, open the cockpit on ./workspace
#   make test   - install, run the whole test suite (tests/ray inside a network namespace of its own)
# PYTHON: the interpreter for the venv; empty, scripts/find_python.sh picks one >= 3.11 or says what to install
PYTHON ?=
VENV   ?= .venv
BIN     = $(VENV)/bin
WORKSPACE ?= workspace
PROFILE   ?= cpu

.PHONY: install demo headless test bench clean

$(BIN)/cockpit: pyproject.toml
	@py="$(PYTHON)"; [ -n "$$py" ] || py=$$(scripts/find_python.sh) || exit 1; \
	echo "$$py -m venv $(VENV)"; $$py -m venv $(VENV) || { \
	echo "cockpit: '$$py -m venv' failed: on Debian/Ubuntu install python3.X-venv for that Python" >&2; exit 1; }
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $(BIN)/cockpit

install: $(BIN)/cockpit

$(WORKSPACE)/prepare.py: | $(BIN)/cockpit
	$(BIN)/cockpit init $(WORKSPACE) --profile $(PROFILE)

demo: $(WORKSPACE)/prepare.py
	$(BIN)/cockpit --workspace $(WORKSPACE)

headless: $(WORKSPACE)/prepare.py
	$(BIN)/cockpit --workspace $(WORKSPACE) --headless

# Two workers, one test file each at a time; the real-terminal tests alone after them.
test: $(BIN)/cockpit
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not serial" --ignore=tests/ray
	$(BIN)/python -m pytest -q -m serial --ignore=tests/ray
	scripts/in_netns.sh $(BIN)/python -m pytest -q tests/ray

clean:
	rm -rf $(VENV) $(WORKSPACE)
