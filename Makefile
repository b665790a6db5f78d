# `make run`: the main job on its built-in default.  `make test`: the test suite.  Both install what they need.
.PHONY: setup run test lint

setup:
	bash scripts/setup.sh

run: setup
	.venv/bin/focalnet train

test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check src tests benchmarks
