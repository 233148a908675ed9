# Two entry points (README "Two commands"): `make train` and `make test`.
# Both create .venv, install torch (CPU build, pinned first so no CUDA wheel is pulled) and this package.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
BIN := $(VENV)/bin

.PHONY: setup train test lint demo nowcast

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

setup: $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==$(TORCH_VERSION)
	$(BIN)/pip install -q -e ".[dev,nowcasting,docs]"

demo: setup
	$(BIN)/python scripts/demo_layer.py

RUN_DIR ?= outputs/moving_mnist_cpu

# The main job: train on Moving MNIST, evaluate against the baselines, draw, then reload the saved model
# (from_pretrained) and predict the future of an unseen test sequence.
train: setup
	$(BIN)/python scripts/train.py --config configs/moving_mnist_cpu.yaml --output_dir $(RUN_DIR)
	$(BIN)/python scripts/export_frames.py --config $(RUN_DIR)/training_config.yaml --split test --index 0 \
		--num_frames 10 --output $(RUN_DIR)_prediction/observed.npy
	$(BIN)/python scripts/predict.py --model $(RUN_DIR) --input $(RUN_DIR)_prediction/observed.npy \
		--num_output_frames 10 --output_dir $(RUN_DIR)_prediction
	@cat $(RUN_DIR)/eval/metrics.md

# Precipitation nowcasting (docs/nowcasting/index.md): synthetic pretraining, then the radar events of
# RADAR_ROOT when that folder exists (else the synthetic data alone), then an ensemble of the radar model, scored on
# the held-out events' whole radar domains beside persistence, Lucas-Kanade extrapolation, S-PROG, ANVIL and STEPS.
# Within 15 minutes on 2 CPU cores (see docs/nowcasting/index.md for the measured time).
RADAR_ROOT ?= ../shared/radar
NOWCAST_DIR ?= outputs/nowcasting
nowcast: setup
	$(BIN)/python scripts/train_nowcasting.py $(if $(wildcard $(RADAR_ROOT)),--radar_root $(RADAR_ROOT)) \
		--output_dir $(NOWCAST_DIR)

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
