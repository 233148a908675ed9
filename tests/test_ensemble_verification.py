"""Ensemble verification against pysteps (CRPS, rank histogram, reliability diagram, Brier, ROC, spread / skill) on
random fields with no-data fed in batches and on a real radar composite, against plain float64 formulas, and
against itself (streaming, merging, gathering over two processes)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bidirectional_conv_lstm.nowcasting.ensemble_verification import (
    EnsembleVerifier,
    exceedance_probability,
)

pytestmark = pytest.mark.usefixtures("one_thread")

RADAR_ROOT = Path(
    os.environ.get("BCL_RADAR_DATA") or Path(__file__).resolve().parents[2] / "shared" / "radar"
)
THRESHOLDS = (0.5, 1.0, 2.0, 5.0)
# With M members a tie spans at most M + 1 ranks: 60 evenly spaced draws split every tie of M <= 4 exactly.
TIE_DRAWS = 60


def _rain(rng, shape):
    """Rain-like rates: log-normal with dry (exactly 0) areas, events at every default threshold."""
    return (rng.lognormal(0.0, 1.5, shape) * (rng.random(shape) < 0.6)).astype(np.float32)


def _ensemble(shape=(5, 4, 3, 18, 15), seed=0):
    """Members (B, M, T, H, W), observations (B, T, H, W) and a valid mask, with NaN in the observation and in
    single members, members equal to 0 where the observation is 0 (ties) and members equal to the observation."""
    rng = np.random.default_rng(seed)
    batch, m, steps, height, width = shape
    observed = _rain(rng, (batch, steps, height, width))
    members = observed[:, None] * np.exp(rng.normal(0.0, 0.8, shape)).astype(np.float32)
    members = np.where(rng.random(shape) < 0.3, 0.0, members + 0.5 * _rain(rng, shape)).astype(np.float32)
    members[:, 0, :, ::5] = observed[:, :, ::5]  # ties with the observation
    observed[rng.random(observed.shape) < 0.03] = np.nan
    members[rng.random(shape) < 0.01] = np.inf
    valid = rng.random((batch, steps, height, width)) < 0.9
    return members, observed, valid


def _pysteps_fields(members, observed, valid, step=None):
    """pysteps' inputs: members (M, rows, W), observation (rows, W), no-data as NaN in every field; the frames
    of lead time ``step`` (or of every lead time) stacked along the rows."""
    invalid = ~valid | ~np.isfinite(observed) | ~np.isfinite(members).all(1)
    members = np.where(invalid[:, None], np.nan, members).astype(np.float64)
    observed = np.where(invalid, np.nan, observed).astype(np.float64)
    if step is not None:
        members, observed = members[:, :, step : step + 1], observed[:, step : step + 1]
    m, width = members.shape[1], members.shape[-1]
    return members.transpose(1, 0, 2, 3, 4).reshape(m, -1, width), observed.reshape(-1, width)


def _pysteps_rank_histogram(monkeypatch, x_f, x_o, x_min):
    """pysteps' rank histogram with its random choice among tied ranks averaged over every draw: the same
    evenly spaced draw for each tie, ``TIE_DRAWS`` times (pysteps takes ``int(u * (E + 1))`` of a uniform ``u``)."""
    from pysteps.verification import ensscores

    total = 0.0
    for draw in range(TIE_DRAWS):
        u = (draw + 0.5) / TIE_DRAWS
        monkeypatch.setattr(np.random, "uniform", lambda low, high, size, u=u: np.full(size, u))
        total = total + ensscores.rankhist(x_f, x_o, X_min=x_min, normalize=False)
    monkeypatch.undo()
    return total / total.sum()


def _brier_from_pysteps_reldiag(probability, x_o, threshold):
    """The Brier score from pysteps' reliability bins (min_count 1), by Murphy's decomposition: exact when each
    bin holds one probability value (an ensemble of 4 members: 0, 1/4, ..., 1)."""
    from pysteps.verification import probscores

    diagram = probscores.reldiag_init(threshold, n_bins=10, min_count=1)
    probscores.reldiag_accum(diagram, probability, x_o)
    with np.errstate(invalid="ignore", divide="ignore"):
        forecast, observed = probscores.reldiag_compute(diagram)
    size = diagram["sample_size"].astype(float)
    used = size > 0
    total = size.sum()
    base_rate = (observed[used] * size[used]).sum() / total
    reliability = (size[used] * (forecast[used] - observed[used]) ** 2).sum() / total
    resolution = (size[used] * (observed[used] - base_rate) ** 2).sum() / total
    return reliability - resolution + base_rate * (1 - base_rate), base_rate


def _check_against_pysteps(monkeypatch, scores, curves, x_f, x_o, rank_min=0.1):
    """Every score of one pool (a lead time or all of them) against pysteps on the same pixels."""
    from pysteps.postprocessing.ensemblestats import excprob
    from pysteps.verification import ensscores, probscores

    # pysteps' CRPS drops an interval where the observation equals a member; 1e-9 mm/h more moves it off.
    expected_crps = probscores.CRPS(x_f, x_o + 1e-9)
    assert scores["crps"] == pytest.approx(expected_crps, rel=1e-6, abs=1e-8)
    expected = _pysteps_rank_histogram(monkeypatch, x_f, x_o, rank_min)
    np.testing.assert_allclose(curves["rank_histogram"], expected, rtol=1e-9, atol=1e-12)
    for threshold in THRESHOLDS:
        label = f"{threshold:g}"
        with np.errstate(invalid="ignore", divide="ignore"):
            probability = excprob(x_f, threshold)
            forecast, observed = probscores.reldiag(probability, x_o, threshold)
            pofd, pod, area = probscores.ROC_curve(probability, x_o, threshold, compute_area=True)
        np.testing.assert_allclose(
            curves[f"reliability_forecast@{label}"], forecast, rtol=1e-6, equal_nan=True
        )
        np.testing.assert_allclose(
            curves[f"reliability_observed@{label}"], observed, rtol=1e-6, equal_nan=True
        )
        np.testing.assert_allclose(curves[f"roc_pod@{label}"], pod, rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(curves[f"roc_pofd@{label}"], pofd, rtol=1e-6, equal_nan=True)
        assert scores[f"roc_auc@{label}"] == pytest.approx(area, rel=1e-6, nan_ok=True)
        known = np.isfinite(probability) & np.isfinite(x_o)
        event = (x_o[known] >= threshold).astype(float)
        assert scores[f"brier@{label}"] == pytest.approx(np.mean((probability[known] - event) ** 2), rel=1e-9)
        if x_f.shape[0] == 4:
            brier, base_rate = _brier_from_pysteps_reldiag(probability, x_o, threshold)
            assert scores[f"brier@{label}"] == pytest.approx(brier, rel=1e-6)
            skill = 1 - brier / (base_rate * (1 - base_rate))
            assert scores[f"bss@{label}"] == pytest.approx(skill, rel=1e-6, abs=1e-9)
    assert scores["spread"] == pytest.approx(ensscores.ensemble_spread(x_f, "RMSE"), rel=1e-6)
    assert scores["skill"] == pytest.approx(ensscores.ensemble_skill(x_f, x_o, "RMSE"), rel=1e-6)
    assert scores["spread_skill"] == pytest.approx(scores["spread"] / scores["skill"], rel=1e-12)


def _verify_in_batches(members, observed, valid, sizes, **options) -> dict:
    verifier = EnsembleVerifier(THRESHOLDS, **options)
    start = 0
    for size in sizes:
        part = slice(start, start + size)
        verifier.update(members[part], observed[part], valid[part])
        start += size
    return verifier.compute()


def test_every_score_matches_pysteps_on_random_fields_in_batches(monkeypatch):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    members, observed, valid = _ensemble()
    result = _verify_in_batches(members, observed, valid, (2, 1, 2))
    assert result["num_samples"] == 5 and result["num_members"] == 4
    for step in range(3):
        scores = {name: values[step] for name, values in result["per_lead_time"].items()}
        curves = {name: values[step] for name, values in result["curves"]["per_lead_time"].items()}
        _check_against_pysteps(monkeypatch, scores, curves, *_pysteps_fields(members, observed, valid, step))
    _check_against_pysteps(
        monkeypatch,
        result["overall"],
        result["curves"]["overall"],
        *_pysteps_fields(members, observed, valid),
    )
    # Bins with fewer pixels than reldiag_min_count are NaN, as pysteps leaves them; the counts stay.
    from pysteps.postprocessing.ensemblestats import excprob
    from pysteps.verification.probscores import reldiag

    strict = _verify_in_batches(members, observed, valid, (3, 2), reldiag_min_count=150)
    x_f, x_o = _pysteps_fields(members, observed, valid)
    with np.errstate(invalid="ignore", divide="ignore"):
        forecast, observed_frequency = reldiag(excprob(x_f, 2.0), x_o, 2.0, min_count=150)
    curves = strict["curves"]["overall"]
    assert np.isnan(forecast).sum() > np.isnan(result["curves"]["overall"]["reliability_forecast@2"]).sum()
    np.testing.assert_allclose(curves["reliability_forecast@2"], forecast, rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(
        curves["reliability_observed@2"], observed_frequency, rtol=1e-6, equal_nan=True
    )
    assert curves["reliability_count@2"] == result["curves"]["overall"]["reliability_count@2"]
    # Without rank_min every valid pixel counts in the rank histogram, dry ties included.
    everything = _verify_in_batches(members, observed, valid, (5,), rank_min=None)
    expected = _pysteps_rank_histogram(monkeypatch, x_f, x_o, None)
    np.testing.assert_allclose(everything["curves"]["overall"]["rank_histogram"], expected, rtol=1e-9)


def _crps_reference(members: np.ndarray, observed: np.ndarray) -> float:
    """The ensemble CRPS written out in float64, pixel by pixel: E|X - y| - E|X - X'| / 2 over the members."""
    values = []
    for x, y in zip(members.reshape(members.shape[0], -1).T.astype(np.float64), observed.ravel()):
        values.append(np.mean(np.abs(x - y)) - 0.5 * np.mean(np.abs(x[:, None] - x[None, :])))
    return float(np.mean(values))


def test_crps_is_the_ensemble_crps_where_pysteps_meets_ties():
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    from pysteps.verification.probscores import CRPS

    members = np.array([0.0, 1.0]).reshape(1, 2, 1, 1, 1)
    verifier = EnsembleVerifier((1.0,))
    verifier.update(members, np.zeros((1, 1, 1, 1)))
    assert verifier.compute()["overall"]["crps"] == pytest.approx(0.25, rel=1e-12)
    assert CRPS(members[0, :, 0, 0], np.zeros(1)) == 0.0  # pysteps 1.21 drops the interval [0, 1]
    rng = np.random.default_rng(3)
    members = np.round(rng.lognormal(0, 1, (2, 5, 2, 6, 7)) * (rng.random((2, 5, 2, 6, 7)) < 0.5), 1)
    observed = np.round(rng.lognormal(0, 1, (2, 2, 6, 7)) * (rng.random((2, 2, 6, 7)) < 0.5), 1)
    verifier = EnsembleVerifier((1.0,))
    verifier.update(members, observed)
    result = verifier.compute()
    assert result["overall"]["crps"] == pytest.approx(
        _crps_reference(members.transpose(1, 0, 2, 3, 4), observed), rel=1e-12
    )
    for step in range(2):
        expected = _crps_reference(members[:, :, step].transpose(1, 0, 2, 3), observed[:, step])
        assert result["per_lead_time"]["crps"][step] == pytest.approx(expected, rel=1e-12)


def _composite_ensemble():
    """FMI 2017-05-09 12:00-12:25 at 4 km (every 4th pixel): 2 origins, observed frames 3-4 and 4-5, and a fake
    4-member ensemble: the last observed frame moved by a few pixels and scaled, kept dry where it was dry."""
    from bidirectional_conv_lstm.data.radar.archive import read_radar_archive
    from bidirectional_conv_lstm.data.radar.examples import example_radar_sources

    source = example_radar_sources(RADAR_ROOT)["fmi_20170509"]
    source = dataclasses.replace(source, start="2017-05-09T12:00", end="2017-05-09T12:25")
    rain = read_radar_archive(source).rain_rate[:, ::4, ::4]
    shifts, factors = ((0, 0), (1, 0), (0, -2), (-1, 1)), (1.0, 0.7, 1.3, 1.0)
    rng = np.random.default_rng(0)
    members, observed = [], []
    for origin in (2, 3):
        last = rain[origin]
        members.append(
            [
                [np.roll(last, shift, axis=(0, 1)) * factor * (1 + 0.2 * step) for step in range(2)]
                for shift, factor in zip(shifts, factors)
            ]
        )
        observed.append(rain[origin + 1 : origin + 3])
    members = np.asarray(members, dtype=np.float32)
    members *= np.exp(rng.normal(0, 0.1, members.shape)).astype(np.float32)
    return members, np.asarray(observed, dtype=np.float32)


@pytest.mark.skipif(not RADAR_ROOT.is_dir(), reason="the shared radar events are not here ($BCL_RADAR_DATA)")
def test_every_score_matches_pysteps_on_a_real_composite(monkeypatch):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    members, observed = _composite_ensemble()
    valid = np.isfinite(observed)
    assert 0.3 < valid.mean() < 1.0 and np.nanmax(observed) > 5.0  # no-data outside the radars, heavy rain
    assert (members == 0).mean() > 0.2 and (observed == 0).mean() > 0.2  # dry pixels: ties
    result = _verify_in_batches(members, observed, np.ones_like(valid), (1, 1))  # NaN is no-data by itself
    for step in range(2):
        scores = {name: values[step] for name, values in result["per_lead_time"].items()}
        curves = {name: values[step] for name, values in result["curves"]["per_lead_time"].items()}
        _check_against_pysteps(monkeypatch, scores, curves, *_pysteps_fields(members, observed, valid, step))
    _check_against_pysteps(
        monkeypatch,
        result["overall"],
        result["curves"]["overall"],
        *_pysteps_fields(members, observed, valid),
    )
    assert 0 < result["overall"]["crps"] < result["overall"]["skill"]  # the ensemble beats its members' RMSE


def test_streaming_merging_and_pooling_agree():
    members, observed, valid = _ensemble(seed=5)
    one_shot = _verify_in_batches(members, observed, valid, (5,))
    streamed = _verify_in_batches(members, observed, valid, (1, 3, 0, 1))
    first, second = EnsembleVerifier(THRESHOLDS), EnsembleVerifier(THRESHOLDS)
    first.update(members[:2], observed[:2], valid[:2])
    second.update(torch.from_numpy(members[2:]), torch.from_numpy(observed[2:]), torch.from_numpy(valid[2:]))
    merged = first.merge(second).compute()
    for other in (streamed, merged):
        assert other["num_samples"] == 5
        for part in ("overall", "per_lead_time"):
            for name, value in one_shot[part].items():
                np.testing.assert_allclose(other[part][name], value, rtol=1e-9, equal_nan=True, err_msg=name)
        for name, value in one_shot["curves"]["overall"].items():
            np.testing.assert_allclose(other["curves"]["overall"][name], value, rtol=1e-9, equal_nan=True)
    # The overall scores pool the lead times' pixels, as one lead time holding every frame would.
    pooled = _verify_in_batches(
        members.transpose(0, 2, 1, 3, 4).reshape(15, 1, 4, 18, 15)[:, 0, :, None],
        observed.reshape(15, 1, 18, 15),
        valid.reshape(15, 1, 18, 15),
        (15,),
    )
    for name, value in pooled["overall"].items():
        assert one_shot["overall"][name] == pytest.approx(value, rel=1e-9, nan_ok=True), name


def test_exceedance_probability_is_a_monotone_probability():
    members, _, _ = _ensemble(seed=7)
    thresholds = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0)
    probability = exceedance_probability(members, thresholds)
    assert probability.shape == (5, 6, 3, 18, 15) and probability.dtype == torch.float32
    finite = np.isfinite(members).all(1)
    assert torch.isnan(probability).numpy().any(1).tolist() == (~finite).tolist()
    known = probability[torch.from_numpy(finite)[:, None].expand_as(probability)]
    assert known.min() >= 0 and known.max() <= 1 and known.min() == 0 and known.max() == 1
    steps = probability[:, :-1] - probability[:, 1:]
    assert (steps[~torch.isnan(steps)] >= 0).all()  # never increases with the threshold
    one = exceedance_probability(torch.from_numpy(members[0]).double(), 1.0)  # (M, T, H, W): no batch
    expected = (members[0] >= 1.0).mean(0)
    np.testing.assert_array_equal(one[0].numpy()[finite[0]], expected[finite[0]])
    with pytest.raises(ValueError, match="thresholds"):
        exceedance_probability(members, (0.0,))
    with pytest.raises(ValueError, match="members"):
        exceedance_probability(members[0, 0, 0], 1.0)


def test_bad_input_raises_clear_errors():
    members, observed, valid = _ensemble(shape=(2, 3, 2, 6, 6))
    with pytest.raises(ValueError, match="thresholds"):
        EnsembleVerifier((-1.0,))
    with pytest.raises(ValueError, match="rank_min"):
        EnsembleVerifier(rank_min="0.1")
    with pytest.raises(ValueError, match="reldiag_bins"):
        EnsembleVerifier(reldiag_bins=0)
    verifier = EnsembleVerifier()
    with pytest.raises(ValueError, match="update"):
        verifier.compute()
    with pytest.raises(ValueError, match=r"members must be \(B, M, T, H, W\)"):
        verifier.update(members[0], observed)
    with pytest.raises(ValueError, match="share B, T, H, W"):
        verifier.update(members, observed[:, :1])
    with pytest.raises(ValueError, match="broadcast"):
        verifier.update(members, observed, np.ones((3, 3), dtype=bool))
    with pytest.raises(TypeError, match="bool"):
        verifier.update(members, observed, valid.astype(np.float32))
    with pytest.raises(TypeError, match="members"):
        verifier.update(members > 1, observed)
    verifier.update(members, observed, valid)
    with pytest.raises(ValueError, match="M = 2 after M = 3"):
        verifier.update(members[:, :2], observed, valid)
    with pytest.raises(ValueError, match="lead times"):
        verifier.update(members[:, :, :1], observed[:, :1], valid[:, :1])
    with pytest.raises(ValueError, match="different settings"):
        verifier.merge(EnsembleVerifier(rank_min=None))
    assert "num_members=3" in repr(verifier)


def test_one_member_scores_crps_as_mae_and_leaves_spread_undefined():
    members, observed, valid = _ensemble(shape=(2, 1, 2, 8, 8), seed=9)
    verifier = EnsembleVerifier()
    verifier.update(members, observed, valid)
    overall = verifier.compute()["overall"]
    known = valid & np.isfinite(observed) & np.isfinite(members[:, 0])
    assert overall["crps"] == pytest.approx(np.abs(members[:, 0] - observed)[known].mean(), rel=1e-6)
    assert math.isnan(overall["spread"]) and math.isnan(overall["spread_skill"])


def _score_shard(members, observed, valid, path):
    """One process of two: score every other pair of samples, gathered through accelerate; the first writes."""
    from accelerate import Accelerator

    accelerator = Accelerator(cpu=True)
    verifier = EnsembleVerifier(THRESHOLDS, gather=accelerator)
    rank = accelerator.process_index
    for start in range(0, members.shape[0], 4):  # batches of 2 samples per process
        part = slice(start + 2 * rank, start + 2 * rank + 2)
        verifier.update(members[part], observed[part], valid[part])
    result = verifier.compute()
    if accelerator.is_main_process:
        Path(path).write_text(json.dumps(result))
    accelerator.wait_for_everyone()


def launch_two_processes(data_path: str, path: str) -> None:
    """Run :func:`_score_shard` in 2 processes with ``accelerate.debug_launcher``. It forks: called in a fresh
    interpreter, as a forked child of a process whose OpenMP threads have run can hang."""
    from accelerate import debug_launcher

    with np.load(data_path) as data:
        arrays = (data["members"], data["observed"], data["valid"])
    debug_launcher(_score_shard, args=(*arrays, path), num_processes=2)


def test_gathering_over_two_processes_equals_one_process(tmp_path):
    pytest.importorskip("accelerate")
    members, observed, valid = _ensemble(shape=(8, 3, 2, 10, 9), seed=11)
    np.savez(tmp_path / "data.npz", members=members, observed=observed, valid=valid)
    path = tmp_path / "scores.json"
    script = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import {Path(__file__).stem} as test; "
        f"test.launch_two_processes({str(tmp_path / 'data.npz')!r}, {str(path)!r})"
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, env=environment)
    gathered = json.loads(path.read_text())
    expected = _verify_in_batches(members, observed, valid, (8,))
    assert gathered["num_samples"] == 8
    for part in ("overall", "per_lead_time"):
        for name, value in expected[part].items():
            np.testing.assert_allclose(gathered[part][name], value, rtol=1e-9, equal_nan=True, err_msg=name)
    np.testing.assert_allclose(
        gathered["curves"]["overall"]["rank_histogram"], expected["curves"]["overall"]["rank_histogram"]
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    members, observed, valid = _ensemble(seed=13)
    on_cpu = _verify_in_batches(members, observed, valid, (5,))
    on_gpu = EnsembleVerifier(THRESHOLDS)
    on_gpu.update(*(torch.from_numpy(array).cuda() for array in (members, observed, valid)))
    result = on_gpu.compute()
    for name, value in on_cpu["overall"].items():
        assert result["overall"][name] == pytest.approx(value, rel=1e-9, nan_ok=True), name
    for name, value in on_cpu["curves"]["overall"].items():
        np.testing.assert_allclose(result["curves"]["overall"][name], value, rtol=1e-9, equal_nan=True)
