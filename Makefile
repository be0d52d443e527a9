# The README's two commands: `make book` (build the book) and `make test` (what CI runs).
# Both set everything up themselves on a fresh machine: virtualenv, packages, offline data.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST_DIR := /usr/share/datasets/fashion-mnist
export INGUR_PROFILE ?= smoke
# Progress bars are for people at a notebook; builds and CI print one line per training run instead.
export TQDM_DISABLE ?= 1
export PYTHONHASHSEED = 0

.PHONY: book test setup data unit notebooks fresh-execution build-book ledger figures student teacher release clean

book: setup ledger fresh-execution build-book  ## the main job: execute every notebook (smoke profile), build the HTML book
	@echo "Book built: $(CURDIR)/_build/html/index.html"

test: setup unit fresh-execution notebooks ledger build-book  ## unit tests, nbval over every notebook (each executed once: the book build reuses nbval's outputs), a book build
	@echo "All tests passed; book at $(CURDIR)/_build/html/index.html"

setup: $(VENV)/.installed data

# pyproject.toml lists the requirements (extras book, test, full); constraints.txt pins the versions CI passed with.
$(VENV)/.installed: requirements.txt pyproject.toml constraints.txt
	@echo "==> Creating the virtual environment $(VENV) and installing packages"
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt $(TORCH_SPEC)
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt
	@touch $@

data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then \
	  echo "==> Fashion-MNIST: offline copy found in $(FMNIST_DIR)"; \
	else \
	  echo "==> Fashion-MNIST: installing the Debian package dataset-fashion-mnist"; \
	  ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist) \
	  || echo "    could not install it; the loaders will try the Hugging Face Hub instead"; \
	fi

unit:
	@echo "==> Lint: ruff check (rules and files in pyproject.toml's [tool.ruff])"
	$(PY) -m ruff check
	@echo "==> Unit tests"
	$(PY) -m pytest -q tests

notebooks:
	@echo "==> Notebooks under nbval, profile $(INGUR_PROFILE)"
	$(PY) -m pytest -q --nbval-lax --durations=0 -p no:cacheprovider notebooks

ledger:
	@echo "==> Regenerating book/ledger.md from data/reported and data/results"
	$(PY) -m ingur_lib ledger --write > /dev/null

# The book's execution cache holds what nbval ran in `make test` (notebooks/conftest.py); a book built on its
# own executes everything anew, so that it never shows outputs of older code.
fresh-execution:
	rm -rf _build/.jupyter_cache

build-book:
	@echo "==> Building the book (executes every notebook, profile $(INGUR_PROFILE))"
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going

figures: setup  ## every thesis figure from recorded results, PDF + PNG, into figures/
	$(PY) -m ingur_lib figures --out figures

student: setup  ## the classroom notebooks (solutions stripped) into classroom/, what Colab and the download button give readers
	$(PY) -m ingur_lib student --out classroom

teacher: setup  ## the teacher's notebooks (solutions and worked answers kept) into teacher/
	$(PY) -m ingur_lib student --teacher --out teacher

# The version Colab installs: _config.yml's repository.branch is v + pyproject's version (a test holds it), and
# this step makes that tag on a clean, tested commit; push it, and the badges and setup cells resolve.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
release: setup  ## tag this commit v$(VERSION), the ref every notebook's Colab cell clones
	@test -z "$$(git status --porcelain)" || { echo "release: commit your changes first (the tag names a commit)"; exit 1; }
	$(PY) -m pytest -q tests/test_notebooks.py -k "pin"
	git tag -a v$(VERSION) -m "Ingur v$(VERSION): the version the book's Colab badges and setup cells install"
	@echo "Tagged v$(VERSION); publish it with: git push origin v$(VERSION)"

clean:
	rm -rf _build student teacher figures
