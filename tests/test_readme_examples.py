"""The README's Python examples run as printed, with local stand-ins for what a reader has and a test has not (a
Hub repo, a trained rain model, a GIF, a file of observed rain) and smaller frames for the layer."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction, save_frame_prediction_model
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform

pytestmark = pytest.mark.usefixtures("one_thread")

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_examples() -> dict[str, str]:
    """The README's ```python blocks, by the first thing each imports from the package (or transformers)."""
    blocks = FENCE.findall(README.read_text())
    named = {}
    for block in blocks:
        if "import ConvLSTM\n" in block:
            named["layer"] = block
        elif 'pipeline("frame-prediction"' in block:
            named["pipeline"] = block
        elif "forecast_rain_rate" in block:
            named["rain"] = block
    assert len(named) == len(blocks) == 3, f"README examples changed: {list(named)} of {len(blocks)} blocks"
    return named


def run(code: str, replacements: dict[str, str], folder: Path, monkeypatch) -> dict:
    for old, new in replacements.items():
        assert old in code, f"the README example no longer says {old!r}"
        code = code.replace(old, new)
    monkeypatch.chdir(folder)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_the_layer_example(tmp_path, monkeypatch):
    small = run(
        readme_examples()["layer"],
        {
            "batch_size, seq_len, height, width = 4, 10, 64, 64": "batch_size, seq_len, height, width = 2, 3, 8, 8"
        },
        tmp_path,
        monkeypatch,
    )
    # The shapes its comments promise, at the smaller size.
    assert small["output"].shape == (2, 3, 128, 8, 8)
    assert small["hidden_state"].shape == small["cell_state"].shape == (2, 2, 64, 8, 8)


def test_the_pipeline_example(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(hidden_sizes=[4], patch_size=2, num_output_frames=3))
    save_frame_prediction_model(model, tmp_path / "model")
    frames = [
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (12, 10), dtype=np.uint8)) for i in range(5)
    ]
    frames[0].save(tmp_path / "observed.gif", save_all=True, append_images=frames[1:], duration=100)
    # A local folder stands for the Hub repo; with the package installed, no remote code runs.
    result = run(
        readme_examples()["pipeline"], {'"you/convlstm-moving-mnist"': '"model"'}, tmp_path, monkeypatch
    )["result"]
    assert result["predictions"].shape == (10, 12, 10) and result["predictions"].dtype == np.uint8
    assert (tmp_path / "forecast.gif").is_file()


def test_the_rain_example(tmp_path, monkeypatch):
    torch.manual_seed(0)
    config = ConvLSTMConfig(
        hidden_sizes=[4],
        patch_size=2,
        num_input_frames=4,
        num_output_frames=12,
        rain_rate_transform=RainRateTransform("log1p").to_dict(),
    )
    ConvLSTMForFramePrediction(config).save_pretrained(tmp_path / "outputs" / "nowcasting")
    observed = np.random.default_rng(0).gamma(0.5, 2.0, (2, 4, 16, 12)).astype(np.float32)
    observed[:, :, :3, :3] = np.nan  # no data in a corner
    np.save(tmp_path / "last_20_minutes.npy", observed)
    forecast = np.asarray(run(readme_examples()["rain"], {}, tmp_path, monkeypatch)["forecast"])
    assert forecast.shape == (2, 12, 16, 12)
    assert np.isnan(forecast[:, :, :3, :3]).all() and np.isfinite(forecast[:, :, 3:, 3:]).all()
    assert (forecast[:, :, 3:, 3:] >= 0).all()
