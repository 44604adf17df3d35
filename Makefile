# The two commands of the README: `make run` and `make test`. Both set up .venv first.
VENV   := .venv
PYTHON := $(VENV)/bin/python
# Quiet TensorFlow's C++ start-up chatter (CUDA plugin probes on a CPU machine) and the
# Google client libraries' Python-version notices; the pipeline's own log stays.
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONWARNINGS ?= ignore::FutureWarning
# make PYTHON310=/path/to/python3.10 ... picks the interpreter for a new .venv.
export PYTHON310

.PHONY: venv test-services run test test-fast test-e2e compile bench clean

venv:
	@bash .ci/setup-venv

# MariaDB's server for the MySQL lineage test (installed if missing, or BERTPIPE_TEST_MYSQL_HOST).
test-services:
	@bash .ci/test-services

run: venv
	$(VENV)/bin/bertpipe run

# make test PYTEST_ARGS="tests/test_lineage_mysql.py" runs a part of the suite.
test: venv test-services
	$(PYTHON) -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(PYTHON) -m pytest -m "not e2e" $(PYTEST_ARGS)

test-e2e: venv test-services
	$(PYTHON) -m pytest -m e2e $(PYTEST_ARGS)

# make compile IMAGE=... PIPELINE_ROOT=gs://... for a spec of your own project.
IMAGE ?= gcr.io/your-project/bert-tfx-pipeline:latest
PIPELINE_ROOT ?= gs://your-bucket/bert-pretraining
compile: venv
	$(VENV)/bin/bertpipe compile --output pipeline.json --image $(IMAGE) --pipeline_root $(PIPELINE_ROOT)

bench: venv
	$(PYTHON) benchmarks/bench_pretraining_data.py
	$(PYTHON) benchmarks/bench_training.py

clean:
	rm -rf outputs pipeline.json .pytest_cache
