"""Models saved by earlier versions of the package still load, in every way a user loads them.

``tests/fixtures/model_saved_before_the_move`` is a tiny model (config, weights, the code files, the processor and
the pipeline) saved by ``save_frame_prediction_model`` when every module still sat in one flat folder;
``model_saved_before_the_move_io.safetensors`` holds an input and the predictions that model gave then. It must
load with ``from_pretrained`` here, with ``AutoModel`` + remote code in a Python that cannot import the package,
and through the ``frame-prediction`` pipeline; and so must a model saved now.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, pipeline

from bidirectional_conv_lstm import ConvLSTMForFramePrediction, save_frame_prediction_model

pytestmark = pytest.mark.usefixtures("one_thread")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD_MODEL = FIXTURES / "model_saved_before_the_move"
OLD_IO = load_file(FIXTURES / "model_saved_before_the_move_io.safetensors")

# A Python that cannot import bidirectional_conv_lstm loads a model folder as remote code, three ways.
CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys

    class BlockPackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "bidirectional_conv_lstm":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, BlockPackage())
    import numpy as np
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, pipeline

    model_dir, io_file = sys.argv[1:3]
    torch.set_num_threads(1)
    io = load_file(io_file)
    model = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    with torch.no_grad():
        predictions = model(io["pixel_values"], num_output_frames=io["predictions"].shape[1]).predictions
    predictor = pipeline("frame-prediction", model=model_dir, trust_remote_code=True)
    frames = (io["pixel_values"][0, :, 0].numpy() * 255).round().astype(np.uint8)
    piped = predictor(frames, num_output_frames=2)["predictions"]
    assert not any(name.startswith("bidirectional_conv_lstm") for name in sys.modules)
    print(json.dumps({
        "model_module": type(model).__module__,
        "max_difference": float((predictions - io["predictions"]).abs().max()),
        "pipeline_shape": list(piped.shape),
        "pipeline_dtype": str(piped.dtype),
    }))
    """
)


def _remote_load(model_dir: Path, io_file: Path, tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "PYTHON"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(model_dir), str(io_file)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_old_model_loads_with_from_pretrained_and_predicts_as_before():
    model = ConvLSTMForFramePrediction.from_pretrained(OLD_MODEL).eval()
    assert model.config.hidden_sizes == [6, 4] and model.config.peephole
    with torch.no_grad():
        predictions = model(OLD_IO["pixel_values"], num_output_frames=2).predictions
    torch.testing.assert_close(predictions, OLD_IO["predictions"], rtol=0, atol=1e-6)
    auto = AutoModel.from_pretrained(OLD_MODEL).eval()  # the package's own registration, no remote code
    assert type(auto) is ConvLSTMForFramePrediction


def test_the_old_model_loads_through_the_installed_pipeline():
    predictor = pipeline("frame-prediction", model=str(OLD_MODEL))
    frames = (OLD_IO["pixel_values"][0, :, 0].numpy() * 255).round().astype(np.uint8)
    predictions = predictor(frames, num_output_frames=2)["predictions"]
    assert predictions.shape == (2, 8, 8) and predictions.dtype == np.uint8
    # The pipeline's frames went through uint8: the same forecast, to the grey level.
    with torch.no_grad():
        model = ConvLSTMForFramePrediction.from_pretrained(OLD_MODEL).eval()
        expected = model(
            torch.from_numpy(frames / 255.0).float()[None, :, None], num_output_frames=2
        ).predictions
    assert np.abs(predictions.astype(int) - (expected[0, :, 0].numpy() * 255).round()).max() <= 1


def test_the_old_model_loads_as_remote_code_without_the_package(tmp_path):
    """AutoModel and the pipeline with trust_remote_code, where the package cannot be imported. (A model saved
    now does too: tests/test_remote_code.py and tests/test_pipeline.py.)"""
    model_dir = tmp_path / "model"
    shutil.copytree(OLD_MODEL, model_dir)
    out = _remote_load(model_dir, FIXTURES / "model_saved_before_the_move_io.safetensors", tmp_path)
    assert out["model_module"].startswith("transformers_modules."), out
    assert out["max_difference"] <= 1e-6, out
    assert out["pipeline_shape"] == [2, 8, 8] and out["pipeline_dtype"] == "uint8", out


def test_a_model_saved_now_carries_code_files_of_the_same_names(tmp_path):
    """Remote code is found by file name (config.json's auto_map, custom_pipelines): the names stay (new files
    may join them)."""
    model = ConvLSTMForFramePrediction.from_pretrained(OLD_MODEL)
    save_frame_prediction_model(model, tmp_path)
    assert {p.name for p in tmp_path.glob("*.py")} >= {p.name for p in OLD_MODEL.glob("*.py")}
    saved, old = (json.loads((folder / "config.json").read_text()) for folder in (tmp_path, OLD_MODEL))
    assert saved["auto_map"] == old["auto_map"] and saved["custom_pipelines"] == old["custom_pipelines"]


# What `from bidirectional_conv_lstm import ...` and `from bidirectional_conv_lstm.data import ...` offered before
# the package was laid out in subpackages: every name still is there.
TOP_LEVEL_NAMES = (
    "ConvGate",
    "ConvLSTM",
    "ConvLSTMCell",
    "ConvLSTMConfig",
    "ConvLSTMForFramePrediction",
    "ConvLSTMImageProcessor",
    "ConvLSTMModel",
    "ConvLSTMModelOutput",
    "ConvLSTMPreTrainedModel",
    "FramePredictionOutput",
    "FramePredictionPipeline",
    "__version__",
    "save_frame_prediction_model",
)
DATA_NAMES = (
    "EXAMPLE_EVENTS",
    "FramePredictionCollator",
    "MovingMNISTConfig",
    "RadarSequence",
    "RadarSource",
    "RadarWindowsConfig",
    "RainRateCollator",
    "SyntheticRainConfig",
    "default_cache_dir",
    "example_radar_sources",
    "frames_to_float",
    "generate_moving_mnist",
    "generate_synthetic_rain",
    "iter_moving_mnist",
    "iter_synthetic_rain",
    "load_bundled_digits",
    "load_digit_pools",
    "load_frames_dataset",
    "load_frames_folder",
    "load_moving_mnist",
    "list_radar_files",
    "load_moving_mnist_test_file",
    "load_radar_windows",
    "load_synthetic_rain",
    "mean_pixel_value",
    "moving_mnist_trajectories",
    "radar_windows_info",
    "rain_rate_and_mask",
    "read_radar_archive",
    "read_idx_images",
)


def test_every_public_name_of_before_is_still_importable():
    import bidirectional_conv_lstm
    import bidirectional_conv_lstm.data

    for module, names in (
        (bidirectional_conv_lstm, TOP_LEVEL_NAMES),
        (bidirectional_conv_lstm.data, DATA_NAMES),
    ):
        missing = [name for name in names if not hasattr(module, name)]
        assert missing == [], f"{module.__name__} lost {missing}"
        assert set(names) - {"__version__"} <= set(module.__all__)
    assert bidirectional_conv_lstm.ConvLSTM is bidirectional_conv_lstm.models.convlstm.ConvLSTM
