"""The nowcasting model card, and a rain-rate model pushed to the (loopback) Hub that loads through remote code where
the package cannot be imported and forecasts mm/h."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform
from bidirectional_conv_lstm.nowcasting.card import create_nowcasting_model_card, save_nowcasting_card
from hub_server import card_metadata_problems
from test_hub import run_client

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "hidden_sizes": [4],
    "patch_size": 2,
    "num_input_frames": 3,
    "num_output_frames": 2,
    "advection": True,
    "loss": "weighted_mse",
    "rain_rate_transform": RainRateTransform("log1p").to_dict(),
}


def scores(csi: float, fss: float, mae: float) -> dict:
    overall = {
        "csi@0.5": csi,
        "csi@1": csi - 0.05,
        "csi@2": csi - 0.1,
        "csi_m": csi - 0.2,
        "mae": mae,
        "mse": 2 * mae,
    }
    overall.update({f"fss@1/{window}": fss for window in (1, 4, 16)})
    return {"overall": overall, "per_lead_time": {key: [value, value / 2] for key, value in overall.items()}}


RESULTS = {
    "num_windows": 7,
    "num_input_frames": 3,
    "num_output_frames": 2,
    "timestep_minutes": 5.0,
    "thresholds": [0.5, 1.0, 2.0],
    "fss_windows": [1, 4, 16],
    "methods": {
        "model": scores(0.625, 0.75, 0.25),
        "persistence": scores(0.375, 0.5, 0.5),
        "extrapolation": scores(0.5, 0.625, 0.375),
    },
}
DATA_INFO = {
    "dataset": "radar",
    "events": {
        "knmi_20100826": {
            "role": "train",
            "timestep_minutes": 5.0,
            "native_timestep_minutes": 5.0,
            "resampled": False,
            "pixel_size": [4.0, 4.0],
            "cartesian_unit": "km",
            "windows": {"train": 59, "validation": 3, "test": 0},
        },
        "bom2_20180616": {
            "role": "test",
            "timestep_minutes": 5.0,
            "native_timestep_minutes": 6.0,
            "resampled": True,
            "pixel_size": [4000.0, 4000.0],
            "cartesian_unit": "m",
            "windows": {"train": 0, "validation": 0, "test": 29},
        },
    },
}


def test_card_has_the_scores_beside_the_baselines_the_data_the_horizon_and_the_limits(tmp_path):
    config = ConvLSTMConfig(**TINY)
    path = save_nowcasting_card(
        tmp_path,
        config=config,
        model_id="someone/convlstm-radar",
        results=RESULTS,
        data_info=DATA_INFO,
        training_config={"data": {"tile_size": 64}, "hub_token": "hf_secret"},
        lead_times=(1, 2),
    )
    card = ModelCard.load(path)
    assert card_metadata_problems(str(card))[1] == []  # the Hub's metadata validation accepts it
    assert {"precipitation-nowcasting", "radar"} <= set(card.data.tags)
    found = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert found["csi@0.5"] == 0.625 and found["fss@1/16"] == 0.75 and found["mae"] == 0.25
    assert {r.dataset_name for r in card.data.eval_results} == {"held-out radar events (bom2_20180616)"}
    text = card.text
    assert (
        "| **this model** | 0.625 | 0.575 | 0.525 | 0.425 | 0.750 | 0.750 | 0.750 | 0.250 | 0.500 |" in text
    )
    assert "| Lucas-Kanade extrapolation | 0.500 |" in text and "| persistence | 0.375 |" in text
    assert (
        "**+10 min**" in text and "| **this model** | 0.312 |" in text
    )  # the lead-time table (halved values)
    assert "(10 minutes ahead)" in text and "4 km pixels" in text and "5-minute" in text
    for source in ("KNMI", "FMI", "Australian Bureau of Meteorology", "pysteps-data"):
        assert source in text
    assert "| bom2_20180616 | test | 5 min (6 min) (linear interpolation in time) | 0 / 0 / 29 |" in text
    assert "## Limits" in text and "hf_secret" not in text
    assert 'AutoModel.from_pretrained("someone/convlstm-radar", trust_remote_code=True)' in text
    assert "forecast_rain_rate(observed, num_output_frames=2)" in text and "(1, 3, 64, 64)" in text
    assert (
        "the previous one moved along a motion field" in text
        and "extended by" not in text
        and "FSS)" not in text
    )
    assert "geometric mean" not in text
    # The boundary margin and an FSS loss term are described when the model has them.
    margin = ConvLSTMConfig(**TINY, boundary_padding=4, fss_loss_weight=0.5, probability_matching="mean")
    text = create_nowcasting_model_card(margin, results=RESULTS, data_info=DATA_INFO).text
    assert "extended by 4 pixels on each side" in text and "`weighted_mse` loss plus 0.5 x (1 - FSS)" in text
    assert "geometric mean rain rate" in text
    assert "motion also taught" not in text and "motion against Lucas-Kanade" not in text
    # A motion term and the motion check (nowcast_motion) are described when the model and results have them.
    scores = {
        "windows": 3,
        "wet_pixels": 900,
        "cosine": 0.8125,
        "model_speed": 0.75,
        "lucas_kanade_speed": 1.0,
    }
    scores.update(model_mean=[0.5, -0.25], lucas_kanade_mean=[0.75, -0.5])
    motion = {"overall": scores, "by_event": {"a": scores, "b": scores}, "wet_threshold": 1.0}
    told = ConvLSTMConfig(**{**TINY, "advection": True}, motion_loss_weight=0.5)
    text = create_nowcasting_model_card(told, results={**RESULTS, "motion": motion}, data_info=DATA_INFO).text
    assert "motion also taught directly: 0.5 x" in text and "the previous one moved along" in text
    origin = ConvLSTMConfig(**{**TINY, "advection_warp": "origin", "advection_padding": "persistence"})
    origin_text = create_nowcasting_model_card(origin, results=RESULTS, data_info=DATA_INFO).text
    assert "the last observed one moved along the motion summed over the steps" in origin_text
    assert "last value, as persistence does" in origin_text
    assert "as persistence does" not in text  # its padding is zeros
    assert "The model's motion against Lucas-Kanade's" in text
    assert "| all: 3 | 900 | 0.81 | 0.75 px | 1.00 px | (+0.50, -0.25) | (+0.75, -0.50) |" in text
    with pytest.raises(ValueError, match="rain_rate_transform"):
        create_nowcasting_model_card(ConvLSTMConfig(hidden_sizes=[4]))
    with pytest.raises(TypeError, match="methods"):
        create_nowcasting_model_card(config, results={"mse": 1.0})


@pytest.mark.slow
def test_pushed_rain_model_loads_through_remote_code_without_the_package_and_forecasts_mm_h(
    local_hub, tmp_path
):
    torch.manual_seed(0)
    model = ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY)).eval()
    with torch.no_grad():
        for (
            parameter
        ) in model.parameters():  # trained-looking weights: a re-initialisation on load would show
            parameter.add_(0.1 * torch.randn_like(parameter))
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)
    observed = (torch.rand(2, 3, 9, 11) * 6) ** 1.5  # mm/h, a size the patch does not divide
    observed[0, -1, :2, :3] = float("nan")  # no data in the last frame
    forecast = model.forecast_rain_rate(observed, num_output_frames=4)
    save_file({"observed": observed, "forecast": forecast}, tmp_path / "reference.safetensors")
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(RESULTS))

    push = f"""
        from bidirectional_conv_lstm import ConvLSTMForFramePrediction
        from bidirectional_conv_lstm.hub.push import push_to_hub
        model = ConvLSTMForFramePrediction.from_pretrained({str(model_dir)!r}).eval()
        commit = push_to_hub(model, "convlstm-radar", results=json.load(open({str(results_file)!r})))
        print(json.dumps({{"repo_id": commit.repo_url.repo_id}}))
        """
    repo_id = run_client(local_hub, push, tmp_path / "hf_home_push")["repo_id"]
    assert repo_id == f"{local_hub.user}/convlstm-radar"
    files = local_hub.files(repo_id)
    assert {"rain_rate.py", "forecasting_convlstm.py", "advection_convlstm.py", "losses_convlstm.py"} <= set(
        files
    )
    readme = files["README.md"].decode()
    assert (
        "| **this model** | 0.625 |" in readme
        and f'from_pretrained("{repo_id}", trust_remote_code=True)' in readme
    )

    load = f"""
        import re, sys
        import numpy as np
        from huggingface_hub import ModelCard
        from safetensors.torch import load_file
        import torch
        from transformers import AutoModel
        torch.set_num_threads(1)  # the test's: the reduction order of a convolution depends on it
        model = AutoModel.from_pretrained({repo_id!r}, trust_remote_code=True).eval()
        reference = load_file({str(tmp_path / "reference.safetensors")!r})
        forecast = model.forecast_rain_rate(reference["observed"], num_output_frames=4)
        same = bool(np.array_equal(forecast.numpy(), reference["forecast"].numpy(), equal_nan=True))
        snippet = re.findall(r"```python\\n(.*?)```", ModelCard.load({repo_id!r}).text, re.DOTALL)[0]
        namespace = {{}}
        exec(snippet, namespace)  # the card's usage example, verbatim
        print(json.dumps({{
            "module": type(model).__module__,
            "blocked": "bidirectional_conv_lstm" not in sys.modules,
            "same": same,
            "snippet_shape": list(namespace["forecast"].shape),
            "snippet_dry": float(np.nanmax(namespace["forecast"])),
        }}))
        """
    out = run_client(local_hub, load, tmp_path / "hf_home_load", block_package=True)
    assert out["module"].startswith("transformers_modules.") and out["blocked"]
    assert out["same"]  # the repo's code forecasts exactly the mm/h the package does, NaN where no data
    assert out["snippet_shape"] == [1, 2, 64, 64]
    assert np.isfinite(out["snippet_dry"]) and out["snippet_dry"] >= 0
    assert local_hub.unhandled == []
