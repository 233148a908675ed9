"""The frame-prediction pipeline: every input a person has, saving with the model, and remote code without the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import pipeline
from transformers.dynamic_module_utils import get_imports, get_relative_import_files

import bidirectional_conv_lstm
from bidirectional_conv_lstm import (
    ConvLSTMConfig,
    ConvLSTMForFramePrediction,
    ConvLSTMImageProcessor,
    FramePredictionPipeline,
    save_frame_prediction_model,
)
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"hidden_sizes": [4], "patch_size": 2, "num_input_frames": 3, "num_output_frames": 2}
RNG = np.random.default_rng(0)
VIDEO = RNG.integers(0, 256, size=(4, 7, 9), dtype=np.uint8)  # (T, H, W), odd sizes: padded and cropped
PIPELINE_FILES = (
    "pipeline_convlstm.py",
    "processing_convlstm.py",
    "video_inputs.py",
    "rain_rate.py",
    "argument_checks.py",
    "preprocessor_config.json",
)


def trained_looking(config: ConvLSTMConfig, seed: int = 0) -> ConvLSTMForFramePrediction:
    torch.manual_seed(seed)
    model = ConvLSTMForFramePrediction(config).eval()
    with torch.no_grad():  # away from the initialisation, so a re-initialisation on load would show
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("model")
    model = trained_looking(ConvLSTMConfig(**TINY))
    save_frame_prediction_model(model, folder)
    return {"dir": folder, "model": model}


@pytest.fixture(scope="module")
def predictor(saved) -> FramePredictionPipeline:
    return pipeline("frame-prediction", model=str(saved["dir"]))


def expected_uint8(model, video: np.ndarray, num_output_frames: int = 2) -> np.ndarray:
    """Processor, model and post-processing by hand, on the last num_input_frames frames."""
    processor = ConvLSTMImageProcessor.from_model_config(model.config)
    inputs = processor(video[-model.config.num_input_frames :])
    with torch.no_grad():
        outputs = model(pixel_values=inputs["pixel_values"], num_output_frames=num_output_frames)
    return processor.post_process_frame_prediction(
        outputs, original_sizes=inputs["original_sizes"], data_format=inputs["data_format"]
    )[0]


def test_pipeline_and_processor_files_import_only_what_remote_code_may():
    package = Path(bidirectional_conv_lstm.__file__).parent / "models" / "convlstm"
    allowed = set(sys.stdlib_module_names) | {"torch", "numpy", "PIL", "transformers"}
    for name in (
        "pipeline_convlstm.py",
        "processing_convlstm.py",
        "video_inputs.py",
        "rain_rate.py",
        "argument_checks.py",
        "georeferencing_convlstm.py",
    ):
        imports = set(get_imports(package / name))
        assert imports <= allowed, f"{name} imports {sorted(imports - allowed)}"
    needed = {Path(path).name for path in get_relative_import_files(package / "pipeline_convlstm.py")}
    assert needed == {
        "processing_convlstm.py",
        "video_inputs.py",
        "rain_rate.py",
        "argument_checks.py",
        "georeferencing_convlstm.py",
    }


def test_saving_writes_the_pipeline_and_processor_and_the_installed_pipeline_loads(saved, predictor):
    config = json.loads((saved["dir"] / "config.json").read_text())
    assert config["custom_pipelines"] == {
        "frame-prediction": {"impl": "pipeline_convlstm.FramePredictionPipeline", "pt": ["AutoModel"]}
    }
    for name in PIPELINE_FILES:
        assert (saved["dir"] / name).is_file(), name
    package = Path(bidirectional_conv_lstm.__file__).parent / "models" / "convlstm"
    assert (saved["dir"] / "pipeline_convlstm.py").read_bytes() == (
        package / "pipeline_convlstm.py"
    ).read_bytes()
    # The installed pipeline, without trust_remote_code: the config hides the task the package serves.
    assert (
        type(predictor) is FramePredictionPipeline
        and type(predictor.image_processor) is ConvLSTMImageProcessor
    )
    loaded = ConvLSTMConfig.from_pretrained(saved["dir"])
    assert loaded.custom_pipelines == {} and "frame-prediction" in loaded.to_dict()["custom_pipelines"]


def test_every_input_kind_gives_the_same_prediction(saved, predictor, tmp_path):
    expected = expected_uint8(saved["model"], VIDEO)
    assert expected.shape == (2, 7, 9) and expected.dtype == np.uint8
    frames = [Image.fromarray(frame) for frame in VIDEO]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (tmp_path / "pngs").mkdir()
    for index, frame in enumerate(frames):
        frame.save(tmp_path / "pngs" / f"frame_{index:02d}.png")
    np.save(tmp_path / "clip.npy", VIDEO)
    inputs = {
        "array": VIDEO,
        "tensor": torch.from_numpy(VIDEO),
        "pil frames": frames,
        "gif": str(tmp_path / "clip.gif"),
        "png folder": tmp_path / "pngs",
        "npy": str(tmp_path / "clip.npy"),
    }
    for name, video in inputs.items():
        result = predictor(video, num_output_frames=2)
        assert np.array_equal(result["predictions"], expected), name
    batch = predictor([VIDEO, str(tmp_path / "clip.gif")], num_output_frames=2)
    assert isinstance(batch, list) and all(np.array_equal(r["predictions"], expected) for r in batch)
    stacked = predictor(np.stack([VIDEO, VIDEO])[:, :, None], num_output_frames=2)  # (B, T, 1, H, W)
    assert [r["predictions"].shape for r in stacked] == [(2, 1, 7, 9)] * 2  # the input's own layout


def test_options_horizon_input_frames_output_type_and_gif(saved, predictor, tmp_path):
    longer = predictor(VIDEO, num_output_frames=5)["predictions"]
    assert longer.shape == (5, 7, 9) and np.array_equal(longer[:2], expected_uint8(saved["model"], VIDEO))
    two_frames = predictor(VIDEO, num_input_frames=2)["predictions"]
    assert np.array_equal(two_frames, predictor(VIDEO[-2:])["predictions"])
    assert not np.array_equal(two_frames, predictor(VIDEO)["predictions"])  # 3 frames by default
    as_float = predictor(VIDEO, output_type="float", data_format="channels_last")["predictions"]
    assert as_float.dtype == np.float32 and as_float.shape == (2, 7, 9, 1)
    assert np.array_equal(np.round(as_float[..., 0] * 255).astype(np.uint8), predictor(VIDEO)["predictions"])

    result = predictor(VIDEO, num_output_frames=3, gif_path=tmp_path / "out" / "forecast.gif")
    written = Path(result["gif_path"])
    assert written.read_bytes() == result["gif"] and result["gif"][:4] == b"GIF8"
    with Image.open(written) as gif:
        assert (gif.n_frames, gif.size) == (3, (9, 7))
    batch = predictor([VIDEO, VIDEO], gif_path=tmp_path / "batch.gif")
    assert [Path(r["gif_path"]).name for r in batch] == ["batch_0.gif", "batch_1.gif"]


def test_bad_inputs_raise_clear_errors(predictor, tmp_path):
    (tmp_path / "notes.txt").write_text("no frames")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        predictor(str(tmp_path / "missing.gif"))
    with pytest.raises(ValueError, match=r"\.gif, a \.npy/\.npz file or a folder"):
        predictor(str(tmp_path / "notes.txt"))
    with pytest.raises(FileNotFoundError, match="holds no image frames"):
        predictor(tmp_path / "empty")
    with pytest.raises(ValueError, match="num_output_frames must be a positive int"):
        predictor(VIDEO, num_output_frames=0)
    with pytest.raises(ValueError, match="output_type"):
        predictor(VIDEO, output_type="png")
    with pytest.raises(ValueError, match="needs a radar model"):
        predictor(VIDEO, output_type="rain_rate")
    (tmp_path / "broken.gif").write_bytes(b"GIF89a not really")
    with pytest.raises(ValueError, match="cannot be read as a GIF"):
        predictor(str(tmp_path / "broken.gif"))
    with pytest.raises(TypeError, match="inputs must be a path"):
        predictor({"frames": VIDEO})
    with pytest.raises(ValueError, match="num_channels=1"):
        predictor(RNG.integers(0, 256, size=(4, 8, 8, 5), dtype=np.uint8))


def test_a_model_saved_without_processor_and_a_radar_model(tmp_path):
    plain = trained_looking(ConvLSTMConfig(**TINY))
    plain.save_pretrained(tmp_path / "plain")  # transformers' own save: no processor, no pipeline files
    result = pipeline("frame-prediction", model=str(tmp_path / "plain"))(VIDEO)
    assert np.array_equal(result["predictions"], expected_uint8(plain, VIDEO))

    transform = RainRateTransform("dbr")
    radar = trained_looking(ConvLSTMConfig(**TINY, rain_rate_transform=transform.to_dict()), seed=1)
    save_frame_prediction_model(radar, tmp_path / "radar")
    rain = RNG.gamma(0.5, 4.0, size=(3, 6, 5)).astype(np.float32)
    rain[-1, 0, 0] = np.nan  # no data in the last frame
    forecast = pipeline("frame-prediction", model=str(tmp_path / "radar"))(rain)["predictions"]
    reference = radar.forecast_rain_rate(rain[None], num_output_frames=2)[0]  # the model's own mm/h path
    assert forecast.shape == (2, 6, 5) and np.isnan(forecast[:, 0, 0]).all()
    np.testing.assert_allclose(forecast, reference, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_a_radar_model_forecasts_grids_of_any_size(tmp_path):
    # patch_size=4 and 37 x 53 frames (neither side a multiple): padded with no rain and cropped back, in every
    # input the pipeline takes (an array, a batch of two sizes, a DataArray).
    xarray = pytest.importorskip("xarray")
    config = ConvLSTMConfig(
        hidden_sizes=[8],
        patch_size=4,
        num_input_frames=3,
        num_output_frames=2,
        rain_rate_transform=RainRateTransform("dbr").to_dict(),
    )
    radar = trained_looking(config, seed=2)
    save_frame_prediction_model(radar, tmp_path / "radar")
    predictor = pipeline("frame-prediction", model=str(tmp_path / "radar"))
    rain = RNG.gamma(0.5, 4.0, size=(3, 37, 53)).astype(np.float32)
    forecast = predictor(rain)["predictions"]
    assert forecast.shape == (2, 37, 53) and np.isfinite(forecast).all()
    reference = radar.forecast_rain_rate(rain[None], num_output_frames=2)[0]
    np.testing.assert_allclose(forecast, reference, rtol=1e-5, atol=1e-6)
    batch = predictor([rain, rain[:, :30, :46]])
    assert [result["predictions"].shape for result in batch] == [(2, 37, 53), (2, 30, 46)]
    frames = xarray.DataArray(
        rain,
        dims=("time", "y", "x"),
        coords={
            "time": np.datetime64("2017-05-09T12:00") + np.arange(3) * np.timedelta64(5, "m"),
            "y": 4000.0 * np.arange(37)[::-1],
            "x": 4000.0 * np.arange(53),
        },
        attrs={"units": "mm/h"},
    )
    on_the_map = predictor(frames)["predictions"]
    assert on_the_map.dims == ("time", "y", "x") and on_the_map.shape == (2, 37, 53)
    np.testing.assert_array_equal(on_the_map["x"].values, frames["x"].values)


# Runs in a Python that cannot import bidirectional_conv_lstm (a meta-path finder refuses it).
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
    from transformers import AutoImageProcessor, pipeline

    model_dir, tensors_file, threads = sys.argv[1:4]
    torch.set_num_threads(int(threads))
    tensors = load_file(tensors_file)
    try:
        pipeline("frame-prediction", model=model_dir)
    except ValueError as error:
        refused = "trust_remote_code" in str(error)
    else:
        refused = False
    predictor = pipeline("frame-prediction", model=model_dir, trust_remote_code=True)
    processor = AutoImageProcessor.from_pretrained(model_dir, trust_remote_code=True)
    predictions = predictor(tensors["video"].numpy(), num_output_frames=2)["predictions"]
    inputs = processor(tensors["video"].numpy())
    assert not any(name.startswith("bidirectional_conv_lstm") for name in sys.modules)
    print("\\n" + json.dumps({  # after the unanswered prompt's "[y/N] "
        "refused": refused,
        "modules": [type(x).__module__ for x in (predictor, predictor.model, processor)],
        "same_predictions": bool(np.array_equal(predictions, tensors["expected"].numpy())),
        "same_pixel_values": bool(torch.equal(inputs["pixel_values"], tensors["pixel_values"])),
    }))
    """
)


def test_pipeline_and_processor_load_as_remote_code_without_the_package(saved, tmp_path):
    processor = ConvLSTMImageProcessor.from_model_config(saved["model"].config)
    tensors = {
        "video": torch.from_numpy(VIDEO),
        "expected": torch.from_numpy(expected_uint8(saved["model"], VIDEO)),
        "pixel_values": processor(VIDEO)["pixel_values"],
    }
    save_file(tensors, tmp_path / "tensors.safetensors")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "PYTHON"))}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_HUB_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(saved["dir"]), str(tmp_path / "tensors.safetensors"), "1"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,  # the refused load asks "run the custom code? [y/N]": answer nothing
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["refused"], "loaded the pipeline's remote code without trust_remote_code=True"
    assert all(module.startswith("transformers_modules.") for module in out["modules"]), out["modules"]
    assert out["same_predictions"] and out["same_pixel_values"]
