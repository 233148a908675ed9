"""ConvLSTMImageProcessor: every input layout a person has, padding, RGB to grey, rain rate, and the way back."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMImageProcessor
from bidirectional_conv_lstm.models.convlstm.rain_rate import RainRateTransform

RNG = np.random.default_rng(0)
GREY = RNG.integers(0, 256, size=(5, 7, 10), dtype=np.uint8)  # (T, H, W), not a multiple of the patch


def processor(**kwargs) -> ConvLSTMImageProcessor:
    return ConvLSTMImageProcessor(**{"num_channels": 1, "patch_size": 4, **kwargs})


def test_every_grey_layout_gives_the_same_padded_pixel_values():
    expected = np.zeros((1, 5, 1, 8, 12), np.float32)
    expected[0, :, 0, :7, :10] = GREY / 255.0
    layouts = {
        "none": GREY,
        "channels_last": GREY[..., None],
        "channels_first": torch.from_numpy(GREY[:, None]),
        "pil": [Image.fromarray(frame) for frame in GREY],
        "nested lists": GREY.tolist(),
    }
    for name, video in layouts.items():
        out = processor()(video, return_tensors="pt")
        assert out["pixel_values"].dtype == torch.float32, name
        np.testing.assert_allclose(out["pixel_values"].numpy(), expected, atol=1e-7, err_msg=name)
        assert out["original_sizes"].tolist() == [[7, 10]], name
    assert processor()(GREY)["data_format"] == ["none"]
    assert processor()(GREY[..., None])["data_format"] == ["channels_last"]
    assert processor()(GREY[:, None])["data_format"] == ["channels_first"]
    floats = processor()(GREY.astype(np.float32) / 255.0, return_tensors="np")["pixel_values"]
    assert isinstance(floats, np.ndarray) and np.allclose(floats, expected)


def test_post_processing_undoes_preprocessing_exactly():
    for video in (GREY, GREY[..., None], GREY[:, None]):
        inputs = processor()(video)
        (back,) = processor().post_process_frame_prediction(
            inputs["pixel_values"], original_sizes=inputs["original_sizes"], data_format=inputs["data_format"]
        )
        assert back.dtype == np.uint8 and np.array_equal(back, video)
    (as_float,) = processor().post_process_frame_prediction(
        {"predictions": processor()(GREY)["pixel_values"]}, original_sizes=[(7, 10)], output_type="float"
    )
    assert as_float.shape == (5, 1, 7, 10) and np.allclose(as_float[:, 0], GREY / 255.0)


def test_rgb_video_for_a_grey_model_is_converted_like_pil():
    rgb = RNG.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    out = processor()(rgb)
    pil_grey = np.stack([np.asarray(Image.fromarray(frame).convert("L")) for frame in rgb])
    assert out["pixel_values"].shape == (1, 3, 1, 8, 8) and out["data_format"] == ["channels_last"]
    assert np.abs(out["pixel_values"][0, :, 0].numpy() * 255 - pil_grey).max() <= 1.0  # PIL rounds in ints
    rgba_first = np.concatenate([rgb, np.full((3, 8, 8, 1), 255, np.uint8)], axis=-1).transpose(0, 3, 1, 2)
    assert torch.equal(processor()(rgba_first)["pixel_values"], out["pixel_values"])  # alpha dropped
    with pytest.raises(ValueError, match="RGB.*do_convert_grayscale=False"):
        processor(do_convert_grayscale=False)(rgb)


def test_rgb_model_takes_channels_last_and_first():
    rgb = RNG.integers(0, 256, size=(2, 4, 6, 3), dtype=np.uint8)
    colour = processor(num_channels=3)
    last, first = colour(rgb), colour(torch.from_numpy(rgb).permute(0, 3, 1, 2))
    assert last["pixel_values"].shape == (1, 2, 3, 4, 8)
    assert torch.equal(last["pixel_values"], first["pixel_values"])
    (back,) = colour.post_process_frame_prediction(
        last["pixel_values"], original_sizes=last["original_sizes"], data_format=last["data_format"]
    )
    assert np.array_equal(back, rgb)
    with pytest.raises(ValueError, match="no channel axis.*num_channels=3"):
        colour(GREY)


def test_a_batch_of_videos_of_different_sizes_is_padded_to_the_largest():
    small = RNG.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    out = processor()([GREY, small])
    assert out["pixel_values"].shape == (2, 5, 1, 8, 12)
    assert out["original_sizes"].tolist() == [[7, 10], [3, 4]]
    frames = processor().post_process_frame_prediction(
        out["pixel_values"], original_sizes=out["original_sizes"], data_format=out["data_format"]
    )
    assert [f.shape for f in frames] == [(5, 7, 10), (5, 3, 4)] and np.array_equal(frames[1], small)
    batch = processor()(np.stack([GREY, GREY])[..., None])  # (B, T, H, W, C)
    assert batch["pixel_values"].shape == (2, 5, 1, 8, 12) and batch["data_format"] == ["channels_last"] * 2


def test_rain_rate_model_maps_mm_h_and_keeps_no_data():
    transform = RainRateTransform("dbr")
    rain = RNG.gamma(0.5, 4.0, size=(4, 6, 6)).astype(np.float32)
    rain[-1, 0, :3] = np.nan  # no data in the last frame
    rain[0, 5, 5] = np.nan  # and in an earlier one
    radar = processor(patch_size=4, rain_rate_transform=transform.to_dict())
    out = radar(rain)
    filled = np.nan_to_num(rain, nan=0.0)
    expected = np.full((4, 8, 8), transform.no_rain_value, np.float32)
    expected[:, :6, :6] = transform.forward(filled)
    np.testing.assert_allclose(out["pixel_values"][0, :, 0].numpy(), expected, rtol=1e-6, atol=1e-6)
    assert out["last_frame_valid"].shape == (1, 8, 8)
    assert not out["last_frame_valid"][0, 0, :3].any() and out["last_frame_valid"].sum() == 64 - 3

    (back,) = radar.post_process_frame_prediction(
        out["pixel_values"], original_sizes=out["original_sizes"], last_frame_valid=out["last_frame_valid"]
    )
    assert back.shape == (4, 1, 6, 6) and back.dtype == np.float32  # mm/h by default
    assert np.isnan(back[:, 0, 0, :3]).all() and not np.isnan(back[:, 0, 1:]).any()
    wet = (filled >= transform.threshold) & ~np.isnan(back[:, 0])
    np.testing.assert_allclose(back[:, 0][wet], filled[wet], rtol=1e-4)
    assert (back[:, 0][(filled < transform.threshold) & ~np.isnan(back[:, 0])] == 0).all()
    with pytest.raises(ValueError, match="rain rates must be >= 0"):
        radar(-rain)
    with pytest.raises(ValueError, match="rain_rate_transform"):
        processor().post_process_frame_prediction(out["pixel_values"], output_type="rain_rate")


@pytest.mark.parametrize(
    ("videos", "error", "match"),
    [
        (RNG.integers(0, 256, (2, 5, 64, 64), dtype=np.uint8), ValueError, r"\(B, T, 1, H, W\)"),
        (GREY.astype(np.float32), ValueError, r"\[0, 1\] after scaling.*uint8"),
        (np.full((2, 4, 4), np.nan, np.float32), ValueError, "NaN"),
        (np.zeros((2, 4, 4), bool), TypeError, "dtype bool"),
        (np.full((2, 4, 4), "a"), TypeError, "numbers"),
        (np.zeros((4, 4), np.uint8), ValueError, "one video"),
        (Image.new("L", (4, 4)), ValueError, "single PIL image"),
        ([], ValueError, "empty"),
        ({"frames": GREY}, TypeError, "numpy array"),
        ([GREY, GREY[:3]], ValueError, "same number of frames"),
        (np.zeros((3, 0, 4), np.uint8), ValueError, "no empty axis"),
    ],
)
def test_bad_videos_raise_clear_errors(videos, error, match):
    with pytest.raises(error, match=match):
        processor()(videos)


def test_bad_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="num_channels"):
        ConvLSTMImageProcessor(num_channels=0)
    with pytest.raises(ValueError, match="rain_rate_transform"):
        ConvLSTMImageProcessor(rain_rate_transform={"kind": "cubic"})
    with pytest.raises(ValueError, match="do_pad=False"):
        processor(do_pad=False)(GREY)
    with pytest.raises(ValueError, match="original_sizes"):
        processor().post_process_frame_prediction(torch.zeros(1, 2, 1, 8, 8), original_sizes=[(9, 8)])
    with pytest.raises(ValueError, match="output_type"):
        processor().post_process_frame_prediction(torch.zeros(1, 2, 1, 8, 8), output_type="png")
    with pytest.raises(ValueError, match=r"\(B, T_out, C, H, W\)"):
        processor().post_process_frame_prediction(torch.zeros(2, 1, 8, 8))


def test_save_and_load_with_auto_image_processor(tmp_path):
    config = ConvLSTMConfig(
        hidden_sizes=[4], patch_size=2, rain_rate_transform=RainRateTransform("log1p").to_dict()
    )
    saved = ConvLSTMImageProcessor.from_model_config(config, do_convert_grayscale=False)
    saved.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert written["auto_map"] == {"AutoImageProcessor": "processing_convlstm.ConvLSTMImageProcessor"}
    assert (tmp_path / "processing_convlstm.py").is_file() and (tmp_path / "rain_rate.py").is_file()
    loaded = AutoImageProcessor.from_pretrained(tmp_path)  # the installed class, no remote code
    assert type(loaded) is ConvLSTMImageProcessor
    assert (loaded.patch_size, loaded.do_convert_grayscale) == (2, False)
    assert loaded.transform == RainRateTransform("log1p")
    assert loaded.to_dict() == saved.to_dict()
