"""Tests of `bidirectional_conv_lstm.serving.prediction` (frames in any layout a person has) and of `scripts/predict.py`'s
one-line errors, as a new user meets them."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.serving.prediction import (
    match_channels,
    predict_files,
    read_frames,
    to_channels_first,
)

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "predict.py"
TINY = {"hidden_sizes": [4], "patch_size": 2, "kernel_size": 3, "num_input_frames": 3, "num_output_frames": 2}


def _rgb_stack(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(5, 12, 16, 3), dtype=np.uint8)  # (T, H, W, 3)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A grey and an RGB tiny model, saved with save_pretrained."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    paths = {}
    for name, channels in (("grey", 1), ("rgb", 3)):
        ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY, num_channels=channels)).save_pretrained(root / name)
        paths[name] = root / name
    return paths


# ------------------------------------------------------------------------------------------------ layouts
def test_channels_last_rgb_is_read_as_three_channels_not_as_width(tmp_path):
    stack = _rgb_stack()
    np.save(tmp_path / "rgb.npy", stack)
    frames = read_frames(tmp_path / "rgb.npy", num_channels=3)
    assert frames.shape == (1, 5, 3, 12, 16)
    torch.testing.assert_close(frames[0], torch.from_numpy(stack).permute(0, 3, 1, 2).float() / 255)
    assert read_frames(tmp_path / "rgb.npy").shape == (
        1,
        5,
        3,
        12,
        16,
    )  # no model: the last axis of 3 is colour
    grey = read_frames(
        tmp_path / "rgb.npy", num_channels=1
    )  # a grey model: ITU-R 601 luma, as PIL computes it
    expected = np.stack([np.asarray(Image.fromarray(frame).convert("L")) for frame in stack]) / 255
    assert grey.shape == (1, 5, 1, 12, 16)
    assert np.abs(grey[0, :, 0].numpy() - expected).max() <= 1 / 255 + 1e-6  # PIL rounds to integers


def test_layout_decided_by_the_models_channels_and_conversions():
    first = np.zeros((4, 3, 8, 3), dtype=np.uint8)  # (T, C=3, H, W=3) or (T, H=3, W=8, C=3)?
    assert to_channels_first(first, num_channels=3).shape == (4, 3, 8, 3)  # axis -3 holds 3: channels first
    assert to_channels_first(np.zeros((4, 8, 8, 1)), num_channels=1).shape == (4, 1, 8, 8)
    assert to_channels_first(np.zeros((2, 4, 8, 8, 3)), num_channels=3).shape == (2, 4, 3, 8, 8)
    assert to_channels_first(np.zeros((4, 8, 8))).shape == (4, 1, 8, 8)
    grey = torch.rand(4, 1, 8, 8)
    assert torch.equal(match_channels(grey, 3), grey.expand(4, 3, 8, 8))
    rgba = torch.rand(4, 4, 8, 8)
    assert torch.equal(match_channels(rgba, 3), rgba[:, :3])
    with pytest.raises(ValueError, match=r"2 channels per frame but the model takes num_channels=3"):
        match_channels(torch.rand(4, 2, 8, 8), 3, name="input 'x.npy'")
    with pytest.raises(ValueError, match=r"\(T, H, W, C\)"):
        to_channels_first(np.zeros((8, 8)))


def test_gif_and_png_folder_are_read(tmp_path):
    stack = _rgb_stack(1)
    images = [Image.fromarray(frame) for frame in stack[..., 0]]  # grey frames
    images[0].save(tmp_path / "clip.gif", save_all=True, append_images=images[1:], duration=100, loop=0)
    gif = read_frames(tmp_path / "clip.gif", num_channels=1)
    assert gif.shape == (1, 5, 1, 12, 16)
    np.testing.assert_array_equal((gif[0, :, 0].numpy() * 255).round().astype(np.uint8), stack[..., 0])
    assert read_frames(tmp_path / "clip.gif").shape == (1, 5, 1, 12, 16)  # grey content: one channel
    assert read_frames(tmp_path / "clip.gif", num_channels=3).shape == (1, 5, 3, 12, 16)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for index, frame in enumerate(stack):
        Image.fromarray(frame).convert("RGBA").save(folder / f"frame_{index}.png")
    assert read_frames(folder).shape == (1, 5, 3, 12, 16)  # RGBA frames: the alpha channel is dropped
    (tmp_path / "clip.txt").write_text("not frames")
    with pytest.raises(ValueError, match=r"unknown file type '.txt'.*\.gif"):
        read_frames(tmp_path / "clip.txt")
    (tmp_path / "broken.gif").write_bytes(b"GIF89a not really")
    with pytest.raises(ValueError, match="cannot be read as a GIF"):
        read_frames(tmp_path / "broken.gif")


def test_predict_files_takes_an_rgb_gif_for_a_grey_model(models, tmp_path):
    images = [Image.fromarray(frame) for frame in _rgb_stack(2)]
    images[0].save(tmp_path / "rgb.gif", save_all=True, append_images=images[1:], duration=100, loop=0)
    paths = predict_files(models["grey"], tmp_path / "rgb.gif", tmp_path / "out", num_output_frames=4)
    assert np.load(paths["predictions"]).shape == (1, 4, 1, 12, 16)
    np.save(tmp_path / "rgb.npy", _rgb_stack(3))
    paths = predict_files(models["rgb"], tmp_path / "rgb.npy", tmp_path / "out_rgb")
    assert np.load(paths["predictions"]).shape == (1, 2, 3, 12, 16)


# ------------------------------------------------------------------------------- the script's bad input
def _run_script(monkeypatch, capsys, *argv: str) -> str:
    """Run scripts/predict.py in this process; return what it printed (stdout, or the error it exits with)."""
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *argv])
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as exit:
        return str(exit.code)
    return capsys.readouterr().out


def test_script_errors_are_one_line_naming_the_problem(models, tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "frames.npy", np.zeros((4, 8, 8), dtype=np.uint8))
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "config.json").write_bytes((models["grey"] / "config.json").read_bytes())
    weights = (models["grey"] / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # an interrupted download
    common = ["--input", str(tmp_path / "frames.npy"), "--output_dir", str(tmp_path / "out")]
    cases = {
        str(truncated): f"{truncated / 'model.safetensors'} (Error while deserializing header",
        str(tmp_path / "nowhere"): "no such folder, and not a Hub repo id",
        "no where": "no such folder, and not a Hub repo id",
        str(tmp_path): "is a folder without config.json",
    }
    for model, expected in cases.items():
        message = _run_script(monkeypatch, capsys, "--model", model, *common)
        assert message.startswith("predict.py: error: model=") and "\n" not in message, message
        assert expected in message, message
    message = _run_script(monkeypatch, capsys, "--model", str(models["grey"]), "--input", "missing.gif")
    assert message == (
        "predict.py: error: input 'missing.gif' does not exist; give a .npy / .npz array, .gif, or a folder of "
        ".png frames"
    )
    assert not (tmp_path / "out").exists()  # nothing written by a failed run
    printed = _run_script(monkeypatch, capsys, "--model", str(models["grey"]), *common)
    assert "predictions: " in printed and (tmp_path / "out" / "prediction.gif").is_file()
