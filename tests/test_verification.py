"""Nowcast verification against hand-computed tables, pysteps' scores, a brute-force masked FSS, and itself
(streaming, merging, gathering, per lead time vs overall)."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from bidirectional_conv_lstm.benchmarks.verification import benchmark_verification
from bidirectional_conv_lstm.nowcasting.verification import (
    CATEGORICAL_SCORES,
    NowcastVerifier,
    det_cat_accum,
    det_cat_compute,
    det_cat_init,
    det_cat_merge,
    det_cont_accum,
    det_cont_compute,
    det_cont_init,
    fss_accum,
    fss_compute,
    fss_init,
    fss_merge,
)

RADAR_ROOT = Path(
    os.environ.get("BCL_RADAR_DATA") or Path(__file__).resolve().parents[2] / "shared" / "radar"
)
FMI_EVENT = RADAR_ROOT / "fmi" / "pgm" / "20160928"
PYSTEPS_NAMES = {"csi": "CSI", "pod": "POD", "far": "FAR", "bias": "BIAS", "hss": "HSS", "ets": "GSS"}


def _rain(shape, seed, dtype=np.float32):
    """Rain-like fields: log-normal rates with dry areas, both kinds of events at every default threshold."""
    rng = np.random.default_rng(seed)
    rain = rng.lognormal(0.0, 1.5, shape) * (rng.random(shape) < 0.6)
    return rain.astype(dtype)


def _pair(shape=(3, 4, 24, 21), seed=0, dtype=np.float32):
    observed = _rain(shape, seed, dtype)
    forecast = (observed * np.exp(np.random.default_rng(seed + 1).normal(0, 0.5, shape))).astype(dtype)
    forecast[..., ::7, :] = 0.0  # some misses
    return forecast, observed


def _assert_scores_equal(first: dict, second: dict, rel=1e-12):
    assert first.keys() == second.keys()
    for part in ("overall", "per_lead_time"):
        assert first[part].keys() == second[part].keys()
        for name in first[part]:
            a, b = np.asarray(first[part][name], float), np.asarray(second[part][name], float)
            np.testing.assert_allclose(a, b, rtol=rel, atol=1e-12, equal_nan=True, err_msg=f"{part} {name}")


def test_hand_computed_contingency_table_and_scores():
    # At 1 mm/h (value >= 1 is an event; 1.0 itself is one): H = 2, F = 1, M = 1, R = 2.
    forecast = np.array([[0.0, 2.0, 3.0], [1.0, 0.0, 0.4]], dtype=np.float32)[None, None]
    observed = np.array([[1.0, 0.0, 3.0], [2.0, 0.2, 0.0]], dtype=np.float32)[None, None]
    table = det_cat_init(thresholds=(1.0, 2.5))
    det_cat_accum(table, forecast, observed)
    np.testing.assert_array_equal(table["counts"][0].numpy(), [[2, 1, 1, 2], [1, 0, 0, 5]])
    scores = det_cat_compute(table)["overall"]
    assert scores["csi@1"] == pytest.approx(2 / 4)
    assert scores["pod@1"] == pytest.approx(2 / 3)
    assert scores["far@1"] == pytest.approx(1 / 3)
    assert scores["bias@1"] == pytest.approx(1.0)
    assert scores["hss@1"] == pytest.approx(2 * (2 * 2 - 1 * 1) / (3 * 3 + 3 * 3))
    random_hits = 3 * 3 / 6
    assert scores["ets@1"] == pytest.approx((2 - random_hits) / (4 - random_hits))
    assert scores["csi@2.5"] == 1.0 and scores["far@2.5"] == 0.0 and scores["bias@2.5"] == 1.0
    assert scores["csi_m"] == pytest.approx((0.5 + 1.0) / 2)


def test_zero_denominators_are_nan():
    dry = np.zeros((1, 2, 8, 8), dtype=np.float32)
    wet = dry.copy()
    wet[0, :, 2:4, 2:4] = 3.0
    verifier = NowcastVerifier(thresholds=(1.0, 5.0), fss_windows=(1, 4))
    verifier.update(wet, dry)  # events forecast, none observed
    overall = verifier.compute()["overall"]
    assert overall["csi@1"] == 0.0 and overall["far@1"] == 1.0
    for name in ("pod@1", "bias@1", "ets@1", "csi@5", "pod@5", "far@5", "fss@5/4"):
        assert math.isnan(overall[name]), name
    assert overall["fss@1/4"] == 0.0
    assert overall["csi_m"] == 0.0  # the mean over thresholds with a defined CSI


def _pysteps_det_cat(forecast, observed, threshold):
    """pysteps' table with its ``>`` aligned to our ``>=``: the largest value below the threshold in the dtype."""
    from pysteps.verification.detcatscores import det_cat_fct_accum, det_cat_fct_compute, det_cat_fct_init

    dtype = observed.dtype.type
    table = det_cat_fct_init(np.nextafter(dtype(threshold), dtype(-np.inf)), axis=(0, 2, 3))
    det_cat_fct_accum(table, forecast, observed)
    return table, det_cat_fct_compute(table, scores="")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_categorical_scores_match_pysteps(dtype):
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    forecast, observed = _pair(dtype=dtype)
    forecast[0, 0, 0, :4] = observed[0, 0, 0, :4] = 2.0  # values exactly at a threshold
    thresholds = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0)
    table = det_cat_init(thresholds)
    det_cat_accum(table, torch.from_numpy(forecast), torch.from_numpy(observed))
    result = det_cat_compute(table)
    for k, threshold in enumerate(thresholds):
        reference, scores = _pysteps_det_cat(forecast, observed, threshold)
        counts = table["counts"][:, k].numpy()
        for index, name in enumerate(("hits", "false_alarms", "misses", "correct_negatives")):
            np.testing.assert_array_equal(counts[:, index], reference[name], err_msg=name)
        for name, pysteps_name in PYSTEPS_NAMES.items():
            np.testing.assert_allclose(
                result["per_lead_time"][f"{name}@{threshold:g}"], scores[pysteps_name], rtol=1e-6, atol=1e-9
            )


def _pysteps_fss(forecast, observed, threshold, window):
    """pysteps' FSS over a list of 2-D frames, sums pooled as its fss_accum pools them."""
    from pysteps.verification.spatialscores import fss_accum as accum
    from pysteps.verification.spatialscores import fss_compute as compute
    from pysteps.verification.spatialscores import fss_init as init

    state = init(threshold, window)
    for f, o in zip(forecast, observed):
        accum(state, f, o)
    return compute(state)


def test_fss_matches_pysteps():
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    from pysteps.verification.spatialscores import fss

    forecast, observed = _pair(shape=(2, 3, 26, 23), seed=3)
    thresholds, windows = (0.5, 1.0, 5.0), (1, 2, 3, 4, 7, 16)
    state = fss_init(thresholds, windows)
    fss_accum(state, forecast, observed)
    result = fss_compute(state)
    for threshold in thresholds:
        for window in windows:
            name = f"fss@{threshold:g}/{window}"
            for step in range(3):
                expected = _pysteps_fss(forecast[:, step], observed[:, step], threshold, window)
                assert result["per_lead_time"][name][step] == pytest.approx(expected, rel=1e-6, abs=1e-12)
            expected = _pysteps_fss(
                forecast.reshape(-1, 26, 23), observed.reshape(-1, 26, 23), threshold, window
            )
            assert result["overall"][name] == pytest.approx(expected, rel=1e-6, abs=1e-12)
    one = fss_init(1.0, 4)
    fss_accum(one, forecast[:1, :1], observed[:1, :1])
    assert fss_compute(one)["overall"]["fss@1/4"] == pytest.approx(
        fss(forecast[0, 0], observed[0, 0], 1.0, 4)
    )


@pytest.mark.skipif(not FMI_EVENT.is_dir(), reason="the shared radar events are not here ($BCL_RADAR_DATA)")
def test_scores_match_pysteps_on_a_real_radar_field():
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    import pysteps.io
    import pysteps.utils
    from pysteps.verification.spatialscores import fss

    frames = []
    for path in sorted(FMI_EVENT.glob("*.pgm.gz"))[:2]:
        field, _, metadata = pysteps.io.import_fmi_pgm(path, gzipped=True)
        frames.append(pysteps.utils.to_rainrate(field, metadata)[0])
    forecast, observed = frames  # persistence: the first frame forecasts the second
    valid = np.isfinite(forecast) & np.isfinite(observed)
    assert 0.5 < valid.mean() < 1.0  # the composite has no-data outside the radars' range
    thresholds, windows = (0.5, 1.0, 2.0, 5.0, 10.0), (1, 4, 16)
    verifier = NowcastVerifier(thresholds, windows)
    verifier.update(forecast[None, None], observed[None, None])  # NaN = no-data, as a mask
    result = verifier.compute()["overall"]
    filled = NowcastVerifier(
        thresholds, windows
    )  # pysteps' fss counts NaN as no event: compare filled fields
    filled.update(np.nan_to_num(forecast)[None, None], np.nan_to_num(observed)[None, None])
    filled_result = filled.compute()["overall"]
    for threshold in thresholds:
        _, scores = _pysteps_det_cat(
            forecast[valid][:, None, None, None], observed[valid][:, None, None, None], threshold
        )
        for name, pysteps_name in PYSTEPS_NAMES.items():
            assert result[f"{name}@{threshold:g}"] == pytest.approx(scores[pysteps_name], rel=1e-6)
        for window in windows:
            expected = fss(np.nan_to_num(forecast), np.nan_to_num(observed), threshold, window)
            assert filled_result[f"fss@{threshold:g}/{window}"] == pytest.approx(expected, rel=1e-6)
    error = (forecast - observed)[valid]
    assert result["mse"] == pytest.approx(np.mean(error**2), rel=1e-6)
    assert result["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-6)


def _brute_force_masked_fss_sums(forecast, observed, valid, threshold, window):
    """The documented masked FSS, window by window: fractions over valid pixels and the outside of the field
    (no event there), windows centred on valid pixels only."""
    height, width = observed.shape
    low = window // 2
    counted = np.pad(valid, window, constant_values=True)
    events = [np.pad((field >= threshold) & valid, window) for field in (forecast, observed)]
    sums = np.zeros(3)
    for i in range(height):
        for j in range(width):
            if not valid[i, j]:
                continue
            rows = slice(i - low + window, i - low + 2 * window)
            cols = slice(j - low + window, j - low + 2 * window)
            known = counted[rows, cols].sum()
            s_f, s_o = (e[rows, cols].sum() / known for e in events)
            sums += (s_f * s_f, s_f * s_o, s_o * s_o)
    return sums


def test_mask_excludes_pixels():
    forecast, observed = _pair(shape=(2, 2, 15, 13), seed=5, dtype=np.float64)
    rng = np.random.default_rng(6)
    valid = rng.random(observed.shape) < 0.8
    valid[..., :4, :5] = False  # a block of no-data, as outside a radar's range
    verifier = NowcastVerifier((0.5, 2.0), (1, 3, 4))
    verifier.update(forecast, observed, valid=valid)
    result = verifier.compute()
    # Whatever lies under the mask changes nothing; NaN is no-data too.
    scrambled = np.where(valid, forecast, 50.0), np.where(valid, observed, np.nan)
    other = NowcastVerifier((0.5, 2.0), (1, 3, 4))
    other.update(*scrambled, valid=valid)
    _assert_scores_equal(result, other.compute())
    nan_masked = NowcastVerifier((0.5, 2.0), (1, 3, 4))
    nan_masked.update(np.where(valid, forecast, np.nan), observed)
    _assert_scores_equal(result, nan_masked.compute())
    # The FSS sums are those of the documented definition, computed window by window.
    state = fss_init((0.5, 2.0), (1, 3, 4))
    fss_accum(state, forecast, observed, valid=valid)
    for k, threshold in enumerate((0.5, 2.0)):
        for w, window in enumerate((1, 3, 4)):
            expected = sum(
                _brute_force_masked_fss_sums(forecast[b, 0], observed[b, 0], valid[b, 0], threshold, window)
                for b in range(2)
            )
            np.testing.assert_allclose(state["counts"][0, k, w].numpy(), expected, rtol=1e-12)
    # MSE / MAE over valid pixels only.
    error = (forecast - observed)[valid]
    assert result["overall"]["mse"] == pytest.approx(np.mean(error**2), rel=1e-12)
    assert result["overall"]["mae"] == pytest.approx(np.mean(np.abs(error)), rel=1e-12)
    # A mask with every pixel valid, (H, W) broadcast: the same as no mask.
    plain, broadcast = NowcastVerifier(), NowcastVerifier()
    plain.update(forecast, observed)
    broadcast.update(forecast, observed, valid=np.ones(observed.shape[-2:], dtype=bool))
    _assert_scores_equal(plain.compute(), broadcast.compute())


def test_masked_contingency_matches_pysteps_on_valid_pixels():
    pytest.importorskip("pysteps", reason="needs the nowcasting extra (pysteps)")
    forecast, observed = _pair(shape=(4, 1, 16, 16), seed=7)
    valid = np.random.default_rng(8).random(observed.shape) < 0.7
    table = det_cat_init((1.0,))
    det_cat_accum(table, forecast, observed, valid=torch.from_numpy(valid))
    reference, _ = _pysteps_det_cat(
        forecast[valid][:, None, None, None], observed[valid][:, None, None, None], 1.0
    )
    np.testing.assert_array_equal(
        table["counts"][0, 0].numpy(),
        [reference[name][0] for name in ("hits", "false_alarms", "misses", "correct_negatives")],
    )


def test_streaming_and_merging_equal_one_shot():
    forecast, observed = _pair(shape=(6, 3, 20, 20), seed=9)
    one_shot = NowcastVerifier()
    one_shot.update(forecast, observed)
    streamed = NowcastVerifier()
    for start in range(0, 6, 2):
        streamed.update(forecast[start : start + 2], observed[start : start + 2])
    first, second = NowcastVerifier(), NowcastVerifier()
    first.update(forecast[:1], observed[:1])
    second.update(forecast[1:], observed[1:])
    assert first.merge(second) is first
    streamed.update(forecast[:0], observed[:0])  # an empty batch adds nothing
    expected = one_shot.compute()
    assert expected["num_samples"] == 6
    _assert_scores_equal(expected, streamed.compute())
    _assert_scores_equal(expected, first.compute())
    # The pysteps-style functions: accumulate in pieces, merge, compare with the verifier.
    tables = [det_cat_init(), det_cat_init()]
    sums = [fss_init(), fss_init()]
    for index, part in enumerate((slice(0, 4), slice(4, 6))):
        det_cat_accum(tables[index], forecast[part], observed[part])
        fss_accum(sums[index], forecast[part], observed[part])
    errors = det_cont_init()
    det_cont_accum(errors, torch.from_numpy(forecast)[:, :, None], torch.from_numpy(observed)[:, :, None])
    merged = {
        **det_cat_compute(det_cat_merge(*tables))["overall"],
        **fss_compute(fss_merge(*sums))["overall"],
        **det_cont_compute(errors)["overall"],
    }
    assert merged.keys() == expected["overall"].keys()
    for name, value in expected["overall"].items():
        assert merged[name] == pytest.approx(value, rel=1e-12, nan_ok=True), name


def test_per_lead_time_and_overall():
    forecast, observed = _pair(shape=(3, 4, 18, 18), seed=11)
    verifier = NowcastVerifier()
    verifier.update(forecast, observed)
    result = verifier.compute()
    assert all(len(values) == 4 for values in result["per_lead_time"].values())
    for step in range(4):  # lead time t alone
        alone = NowcastVerifier()
        alone.update(forecast[:, step : step + 1], observed[:, step : step + 1])
        for name, value in alone.compute()["overall"].items():
            assert result["per_lead_time"][name][step] == pytest.approx(value, rel=1e-12, nan_ok=True)
    pooled = NowcastVerifier()  # the overall scores pool the lead times' counts, as one lead time would
    pooled.update(forecast.reshape(12, 1, 18, 18), observed.reshape(12, 1, 18, 18))
    for name, value in pooled.compute()["overall"].items():
        assert result["overall"][name] == pytest.approx(value, rel=1e-12, nan_ok=True)
    names = {f"{score}@{threshold:g}" for score in CATEGORICAL_SCORES for threshold in (0.5, 1, 2, 5, 10)}
    names |= {f"fss@{threshold:g}/{window}" for threshold in (0.5, 1, 2, 5, 10) for window in (1, 4, 16)}
    assert set(result["overall"]) == names | {"csi_m", "mse", "mae"}
    # Pooled counts are not averaged per-frame scores: the overall CSI lies between the lead times'.
    assert (
        min(result["per_lead_time"]["csi@1"])
        <= result["overall"]["csi@1"]
        <= max(result["per_lead_time"]["csi@1"])
    )


def test_gather_concatenates_per_sample_counts():
    forecast, observed = _pair(shape=(2, 3, 12, 12), seed=13)
    seen = []

    def gather(tensor):  # two processes that saw the same batch
        seen.append((tuple(tensor.shape), tensor.dtype))
        return torch.cat([tensor, tensor])

    gathered, single = NowcastVerifier(gather=gather), NowcastVerifier()
    gathered.update(forecast, observed)
    single.update(forecast, observed)
    assert seen[0][0][:2] == (2, 3) and seen[0][1] == torch.float64
    assert gathered.num_samples == 4
    result, expected = gathered.compute(), single.compute()
    expected["num_samples"] = 4
    _assert_scores_equal(result, expected)
    with pytest.raises(TypeError, match="gather"):
        NowcastVerifier(gather="all")


def test_bad_input_raises_clear_errors():
    forecast, observed = _pair(shape=(1, 2, 8, 8))
    for thresholds in ((0.0, 1.0), (-1,), (float("nan"),), ("1",), (1.0, 1.0), None):
        with pytest.raises(ValueError, match="thresholds"):
            NowcastVerifier(thresholds=thresholds)
    for windows in ((0,), (4, -1), (2.5,), (True,), (4, 4)):
        with pytest.raises(ValueError, match="fss_windows"):
            NowcastVerifier(fss_windows=windows)
    with pytest.raises(ValueError, match="windows"):
        fss_init(1.0, ())
    verifier = NowcastVerifier()
    with pytest.raises(ValueError, match="update"):
        verifier.compute()
    with pytest.raises(ValueError, match="one shape"):
        verifier.update(forecast, observed[:, :1])
    with pytest.raises(ValueError, match=r"\(B, T, H, W\)"):
        verifier.update(forecast[0], observed[0])
    with pytest.raises(ValueError, match="broadcast"):
        verifier.update(forecast, observed, valid=np.ones((3, 3), dtype=bool))
    with pytest.raises(TypeError, match="bool"):
        verifier.update(forecast, observed, valid=np.ones(observed.shape))
    with pytest.raises(TypeError, match="forecast"):
        verifier.update(forecast > 1, observed)
    verifier.update(forecast, observed)
    with pytest.raises(ValueError, match="lead times"):
        verifier.update(forecast[:, :1], observed[:, :1])
    with pytest.raises(ValueError, match="different thresholds"):
        verifier.merge(NowcastVerifier(thresholds=(1.0,)))
    with pytest.raises(ValueError, match="thresholds differ"):
        det_cat_merge(det_cat_init((1.0,)), det_cat_init((2.0,)))


def test_numpy_torch_and_dtypes_agree():
    forecast, observed = _pair(shape=(2, 2, 16, 16), seed=15, dtype=np.float64)
    results = []
    for pair in (
        (forecast, observed),
        (torch.from_numpy(forecast), torch.from_numpy(observed)),
        (torch.from_numpy(forecast).float()[:, :, None], torch.from_numpy(observed).float()[:, :, None]),
    ):
        verifier = NowcastVerifier()
        verifier.update(*pair)
        results.append(verifier.compute())
    _assert_scores_equal(results[0], results[1])
    _assert_scores_equal(results[0], results[2], rel=1e-5)  # float32: thresholds and errors rounded
    assert "NowcastVerifier(thresholds=(0.5, 1.0, 2.0, 5.0, 10.0)" in repr(NowcastVerifier())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    forecast, observed = _pair(shape=(3, 2, 32, 32), seed=17)
    valid = np.random.default_rng(18).random(observed.shape) < 0.9
    on_cpu, on_gpu = NowcastVerifier(), NowcastVerifier()
    on_cpu.update(forecast, observed, valid)
    on_gpu.update(*(torch.from_numpy(a).cuda() for a in (forecast, observed, valid)))
    _assert_scores_equal(on_cpu.compute(), on_gpu.compute(), rel=1e-9)


def test_benchmark_script_scores_a_tiny_setting():
    """The measurement of scripts/benchmark_verification.py (bidirectional_conv_lstm.benchmarks.verification)."""
    for masked in (False, True):
        report = benchmark_verification(
            num_forecasts=5, lead_times=2, size=20, batch_size=2, pool=3, masked=masked
        )
        assert report["num_forecasts"] == 5 and report["masked"] == masked
        assert report["wall_s"] > 0 and 0 < report["csi@1"] < 1
    with pytest.raises(ValueError, match="batch_size"):
        benchmark_verification(batch_size=0)
