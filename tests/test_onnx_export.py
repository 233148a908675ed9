"""ONNX export: scripts/export_onnx.py writes a graph with fixed frame counts and dynamic batch / height / width (any
size: padded to the patch size inside the graph and cropped back) that ONNX Runtime runs like PyTorch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.serving.onnx_export import check_onnx_model, export_onnx

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),  # torch.export's own deprecation notice
]

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "export_onnx.py"
# Trained with other frame counts than exported; output_threshold makes the graph carry the eval-mode masking.
TINY = {
    "hidden_sizes": [4],
    "patch_size": 2,
    "num_input_frames": 5,
    "num_output_frames": 4,
    "output_threshold": 0.45,
}


def run_script(argv: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("export_onnx_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """One export through the script (it checks the file itself), shared by the tests."""
    root = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    model.save_pretrained(root / "model")
    output = root / "out" / "model.onnx"
    run_script(
        [
            "--model",
            str(root / "model"),
            "--output",
            str(output),
            "--num_input_frames",
            "3",
            "--num_output_frames",
            "2",
        ]
    )
    return {"model": model, "path": output}


def test_script_exports_fixed_frames_dynamic_sizes_matching_pytorch(exported, capsys):
    session = onnxruntime.InferenceSession(str(exported["path"]), providers=["CPUExecutionProvider"])
    (graph_input,), (graph_output,) = session.get_inputs(), session.get_outputs()
    assert graph_input.name == "pixel_values" and graph_output.name == "predictions"
    batch, frames, channels, height, width = graph_input.shape
    assert (frames, channels) == (3, 1) and all(isinstance(d, str) for d in (batch, height, width))
    assert graph_output.shape[1:3] == [2, 1]
    generator = torch.Generator().manual_seed(1)
    for shape in ((1, 3, 1, 6, 4), (4, 3, 1, 10, 14)):  # other sizes than the export's and the check's
        pixel_values = torch.rand(shape, generator=generator)
        with torch.no_grad():
            expected = exported["model"](pixel_values=pixel_values, num_output_frames=2).predictions.numpy()
        actual = session.run(None, {"pixel_values": pixel_values.numpy()})[0]
        assert actual.shape == expected.shape == (shape[0], 2, 1, *shape[3:])
        assert np.abs(actual - expected).max() <= 1e-4
        assert (actual == 0).any() and (actual > 0.45).any()  # the output threshold is in the graph


def test_check_fails_on_another_model(exported):
    other = ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY)).eval()  # other weights
    with pytest.raises(RuntimeError, match="differ by"):
        check_onnx_model(exported["path"], other, atol=1e-4)


def test_bad_arguments_fail_before_exporting(exported, tmp_path):
    with pytest.raises(ValueError, match="output_path must end in .onnx"):
        export_onnx(exported["model"], tmp_path / "model.txt")
    with pytest.raises(ValueError, match="num_output_frames must be a positive int"):
        export_onnx(exported["model"], tmp_path / "model.onnx", num_output_frames=0)
    with pytest.raises(TypeError, match="model must be"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "model.onnx")
    with pytest.raises(SystemExit) as exit_info:  # the script: one line, no usage block
        run_script(["--model", str(tmp_path / "nowhere"), "--output", str(tmp_path / "model.onnx")])
    line = exit_info.value.code
    assert line.startswith("export_onnx.py: error: ") and "nowhere" in line and "\n" not in line
    assert not (tmp_path / "model.onnx").exists()
    ensemble = ConvLSTMForFramePrediction(
        ConvLSTMConfig(
            hidden_sizes=[4], patch_size=2, rain_rate_transform={"kind": "log1p"}, ensemble_noise_channels=2
        )
    )
    with pytest.raises(ValueError, match="ensemble model .*ensemble_noise_channels=2.* random draw"):
        export_onnx(ensemble, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize("warp, padding", [("previous", "zeros"), ("origin", "persistence")])
def test_rain_model_with_advection_and_a_boundary_margin_exports_and_matches(tmp_path, warp, padding):
    # The advection head's grid_sample warp (of the previous frame, or of the origin along the summed motion, the
    # inflow band kept as it was) and the repeated-edge margin around every fed-back frame.
    torch.manual_seed(3)
    config = ConvLSTMConfig(
        hidden_sizes=[4],
        patch_size=2,
        num_input_frames=3,
        num_output_frames=2,
        advection=True,
        advection_warp=warp,
        advection_padding=padding,
        boundary_padding=2,
        rain_rate_transform={"kind": "log1p"},
    )
    model = ConvLSTMForFramePrediction(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    result = export_onnx(model, tmp_path / "rain.onnx")  # checks two input sizes against PyTorch itself
    assert max(result["max_abs_diff"].values()) <= 1e-4
    session = onnxruntime.InferenceSession(str(result["path"]), providers=["CPUExecutionProvider"])
    pixel_values = torch.rand(2, 3, 1, 8, 10)
    with torch.no_grad():
        expected = model(pixel_values=pixel_values, num_output_frames=2).predictions.numpy()
    actual = session.run(None, {"pixel_values": pixel_values.numpy()})[0]
    assert actual.shape == (2, 2, 1, 8, 10) and np.abs(actual - expected).max() <= 1e-4


def test_a_graph_takes_any_grid_padding_with_no_rain_as_forecast_rain_rate_does(tmp_path):
    # patch_size=4 on 30 x 46 frames (no multiple) and on 32 x 48 (advection models: the check's default shapes
    # above, no multiples either); the transform's offset makes no rain a non-zero model-space value, so padding
    # with 0 instead of it would show.
    torch.manual_seed(5)
    config = ConvLSTMConfig(
        hidden_sizes=[8],
        patch_size=4,
        num_input_frames=3,
        num_output_frames=2,
        rain_rate_transform={"kind": "log1p", "offset": 0.5},
    )
    model = ConvLSTMForFramePrediction(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    transform = model.rain_rate_transform
    assert transform.no_rain_value < 0
    shapes = [(2, 3, 1, 30, 46), (1, 3, 1, 32, 48)]
    result = export_onnx(model, tmp_path / "rain.onnx", num_output_frames=2, check=False)
    assert max(check_onnx_model(result["path"], model, shapes=shapes).values()) <= 1e-4
    session = onnxruntime.InferenceSession(str(result["path"]), providers=["CPUExecutionProvider"])
    rain = 8 * torch.rand(2, 3, 30, 46, generator=torch.Generator().manual_seed(6)) ** 3  # mm/h
    graph = session.run(None, {"pixel_values": transform.forward(rain)[:, :, None].numpy()})[0]
    assert graph.shape == (2, 2, 1, 30, 46)
    # The graph in mm/h is forecast_rain_rate's forecast (which pads 0 mm/h: the no-rain value in model space).
    expected = model.forecast_rain_rate(rain, num_output_frames=2, probability_matching=None)
    np.testing.assert_allclose(
        transform.inverse(torch.from_numpy(graph[:, :, 0])), expected, rtol=1e-4, atol=1e-4
    )
    with torch.no_grad():  # padded with 0 instead, the forecast near the bottom and right edges differs
        zero_padded = torch.nn.functional.pad(transform.forward(rain)[:, :, None], (0, 2, 0, 2))
        other = model(pixel_values=zero_padded, num_output_frames=2).predictions[..., :30, :46]
    assert np.abs(other.numpy() - graph).max() > 1e-3
