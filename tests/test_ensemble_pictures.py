"""Reliability diagrams, rank histograms, exceedance maps and member strips of ensemble nowcasts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bidirectional_conv_lstm.nowcasting.ensemble_pictures import (
    plot_rank_histograms,
    plot_reliability_diagram,
    save_exceedance_maps,
    save_members_strip,
)
from bidirectional_conv_lstm.nowcasting.ensemble_verification import EnsembleVerifier, exceedance_probability
from test_nowcasting_baselines import translated_rain

THRESHOLDS = (0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def fields() -> dict:
    """A moving rain field and a 5-member ensemble of noisy copies of its future, (T=3, 32, 32)."""
    rain = translated_rain(6, 32, seed=3)
    rng = np.random.default_rng(0)
    members = rain[None, 3:] * rng.lognormal(0.0, 0.4, size=(5, 3, 32, 32)).astype(np.float32)
    return {"observed": rain[:3], "truth": rain[3:], "members": members}


@pytest.fixture(scope="module")
def results_by_method(fields) -> dict:
    methods = {}
    for name, scale in (("noisy", 1.0), ("dry", 0.3)):
        verifier = EnsembleVerifier(thresholds=THRESHOLDS, reldiag_min_count=1)
        verifier.update(fields["members"][None] * scale, fields["truth"][None])
        methods[name] = {"probabilistic": verifier.compute(), "num_members": 5}
    methods["persistence"] = {"overall": {"mae": 1.0}}  # no ensemble: left out of the pictures
    return methods


def test_reliability_diagram_is_drawn_for_scored_thresholds_only(results_by_method, tmp_path):
    path = plot_reliability_diagram(results_by_method, 1, tmp_path / "reliability.png")
    assert path.stat().st_size > 10_000
    assert Image.open(path).size == (500, 600)
    plot_reliability_diagram({"methods": results_by_method}, 2.0, tmp_path / "whole_results.png")
    with pytest.raises(
        ValueError, match=r"threshold=5 mm/h was not scored for 'noisy'; scored: \['0.5', '1', '2'\]"
    ):
        plot_reliability_diagram(results_by_method, 5.0, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="threshold"):
        plot_reliability_diagram(results_by_method, -1.0, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="no ensemble method"):
        plot_reliability_diagram({"persistence": results_by_method["persistence"]}, 1.0, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_rank_histograms_one_panel_per_ensemble(results_by_method, tmp_path):
    path = plot_rank_histograms(results_by_method, tmp_path / "ranks.png")
    assert path.stat().st_size > 10_000
    assert Image.open(path).size == (760, 320)  # two ensembles, 3.8 x 3.2 inches each at 100 dpi


def test_exceedance_maps_beside_the_observed_rain(fields, tmp_path):
    probabilities = exceedance_probability(fields["members"], THRESHOLDS).numpy()  # (K, T, H, W)
    assert probabilities.shape == (3, 3, 32, 32)
    arguments = (fields["observed"][-1], fields["truth"], probabilities, THRESHOLDS)
    path = save_exceedance_maps(*arguments, [0, 2], tmp_path / "maps.png", timestep_minutes=5)
    width, height = Image.open(path).size
    assert path.stat().st_size > 10_000 and width > 500 and height > 700  # 4 rows, 3 columns
    without_truth = save_exceedance_maps(
        fields["observed"][-1], None, probabilities, THRESHOLDS, None, tmp_path / "b.png"
    )
    assert without_truth.stat().st_size > 10_000
    bad = {
        "probabilities": (fields["observed"][-1], None, probabilities[:2], THRESHOLDS, [0]),
        r"\[0, 1\]": (fields["observed"][-1], None, probabilities * 2, THRESHOLDS, [0]),
        "thresholds": (fields["observed"][-1], None, probabilities, (0.0, 1.0, 2.0), [0]),
        "lead_indices": (fields["observed"][-1], None, probabilities, THRESHOLDS, [3]),
        "truth": (fields["observed"][-1], fields["truth"][:2], probabilities, THRESHOLDS, [0]),
        "observed_last_frame": (fields["observed"], None, probabilities, THRESHOLDS, [0]),
    }
    for match, arguments in bad.items():
        with pytest.raises(ValueError, match=match):
            save_exceedance_maps(*arguments, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_members_strip_shows_the_mean_and_the_chosen_members(fields, tmp_path):
    arguments = (fields["observed"], fields["truth"], fields["members"])
    two = Image.open(
        save_members_strip(*arguments, tmp_path / "two.png", num_members_shown=2, lead_indices=[0, 2])
    )
    four = Image.open(save_members_strip(*arguments, tmp_path / "four.png", lead_indices=[0, 2]))
    assert four.size[0] == two.size[0] and four.size[1] > two.size[1]  # two more rows of members
    for bad in (0, 6, 2.0):
        with pytest.raises(ValueError, match="num_members_shown"):
            save_members_strip(*arguments, tmp_path / "bad.png", num_members_shown=bad)
    with pytest.raises(ValueError, match="members"):
        save_members_strip(fields["observed"], fields["truth"], fields["members"][0], tmp_path / "bad.png")
    with pytest.raises(ValueError, match="lead_indices"):
        save_members_strip(*arguments, tmp_path / "bad.png", lead_indices=[-1])
