# Thin wrappers around dev.py, which needs only Python 3.11+.
.PHONY: run test lint bench
run:
	python3 dev.py run
test:
	python3 dev.py test
lint:
	python3 dev.py lint
bench:
	.venv/bin/python benchmarks/decide.py
