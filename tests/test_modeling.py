"""ConvLSTMModel and ConvLSTMForFramePrediction: shapes, loss, inputs, init, checkpointing, Trainer, save/load."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity as structural_similarity_reference
from transformers import AutoModel, Trainer, TrainingArguments

from bidirectional_conv_lstm import (
    ConvGate,
    ConvLSTM,
    ConvLSTMConfig,
    ConvLSTMForFramePrediction,
    ConvLSTMModel,
    FramePredictionOutput,
)
from bidirectional_conv_lstm.models.convlstm.modeling_convlstm import structural_similarity

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**overrides) -> ConvLSTMConfig:
    options = dict(hidden_sizes=[8, 6], patch_size=2, kernel_size=3, num_input_frames=3, num_output_frames=2)
    options.update(overrides)
    return ConvLSTMConfig(**options)


def tiny_model(seed: int = 0, **overrides) -> ConvLSTMForFramePrediction:
    torch.manual_seed(seed)
    return ConvLSTMForFramePrediction(tiny_config(**overrides)).eval()


def frames(batch=2, steps=3, channels=1, size=8, seed=1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, channels, size, size, generator=generator)


def gates(model):
    return [module for module in model.modules() if isinstance(module, ConvGate)]


# --------------------------------------------------------------------------- shapes and outputs
@pytest.mark.parametrize("horizon", [1, 3, 7])
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"bidirectional": False},
        {"norm": "group", "norm_groups": 2, "peephole": True},
        {"hidden_sizes": [4]},
    ],
)
def test_prediction_shapes_at_any_horizon(horizon, overrides):
    model = tiny_model(**overrides)
    with torch.no_grad():
        out = model(frames(), num_output_frames=horizon)
    assert isinstance(out, FramePredictionOutput)
    assert out.loss is None
    assert out.predictions.shape == (2, horizon, 1, 8, 8)
    assert out.predictions.dtype == torch.float32
    assert out.predictions.min() >= 0.0 and out.predictions.max() <= 1.0


def test_default_horizon_and_labels_horizon():
    model = tiny_model(num_output_frames=4)
    with torch.no_grad():
        assert model(frames()).predictions.shape[1] == 4
        assert model(frames(), labels=frames(steps=5)).predictions.shape[1] == 5
        assert model(frames(steps=6)).predictions.shape[1] == 4  # any number of observed frames


def test_rectangular_multichannel_frames():
    model = tiny_model(num_channels=3, patch_size=4, hidden_sizes=[4])
    pixel_values = torch.rand(1, 2, 3, 8, 12)
    with torch.no_grad():
        assert model(pixel_values, num_output_frames=2).predictions.shape == (1, 2, 3, 8, 12)


@pytest.mark.parametrize(
    ("loss", "weight"),
    [
        ("mse", 1.0),
        ("l1", 1.0),
        ("mse+l1", 1.0),
        ("mse+l1", 0.1),
        ("bce", 1.0),
        ("mse+ssim", 1.0),
        ("mse+ssim", 0.3),
    ],
)
def test_loss_matches_functional(loss, weight):
    model = tiny_model(loss=loss, l1_weight=weight, ssim_weight=weight, patch_size=4)
    labels = frames(steps=2, seed=5, size=16)
    with torch.no_grad():
        out = model(frames(size=16), labels=labels)
    p, y = out.predictions.double(), labels.double()
    mse, l1 = ((p - y) ** 2).mean(), (p - y).abs().mean()
    bce = -(y * p.log() + (1 - y) * (1 - p).log()).mean()
    ssim = np.mean(
        [
            structural_similarity_reference(a[0].numpy(), b[0].numpy(), data_range=1.0)
            for a, b in zip(p.flatten(0, 1), y.flatten(0, 1))
        ]
    )
    expected = {
        "mse": mse,
        "l1": l1,
        "mse+l1": mse + weight * l1,
        "bce": bce,
        "mse+ssim": mse + weight * (1 - ssim),
    }[loss]
    torch.testing.assert_close(
        out.loss.double(), torch.as_tensor(expected, dtype=torch.float64), rtol=1e-5, atol=1e-6
    )
    assert out.loss.shape == ()


def test_output_threshold_zeroes_faint_pixels_at_inference_only():
    plain, thresholded = (
        tiny_model(prediction_prior=0.3),
        tiny_model(prediction_prior=0.3, output_threshold=0.3),
    )
    with torch.no_grad():
        for model in (plain, thresholded):
            model.forecaster.head.weight.mul_(20)  # spread the predictions on both sides of the threshold
        first = plain(frames(), num_output_frames=4).predictions
        cut = thresholded(frames(), num_output_frames=4).predictions
    assert 0.1 < (first < 0.3).float().mean() < 0.9
    # The plain model's frames with every value below 0.3 set to exactly 0 (the feedback stays raw).
    torch.testing.assert_close(cut, torch.where(first < 0.3, 0.0, first))
    assert ((cut == 0) | (cut >= 0.3)).all() and (cut == 0).any()
    # Training sees the raw predictions: the same loss and gradients as without the threshold.
    labels = frames(steps=2, seed=5)
    losses, grads = [], []
    for model in (plain, thresholded):
        model.train()
        loss = model(frames(), labels=labels).loss
        loss.backward()
        losses.append(loss.detach())
        grads.append(model.forecaster.head.bias.grad.clone())
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize(("channels", "size"), [(1, (64, 64)), (3, (12, 20)), (1, (5, 9))])
def test_structural_similarity_equals_scikit_image(channels, size):
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 3, channels, *size, generator=generator, dtype=torch.float64)
    truth[..., : size[0] // 2, :] = 0  # an empty background, where a faint haze is what SSIM punishes
    prediction = (truth + 0.05 * torch.rand(truth.shape, generator=generator, dtype=torch.float64)).clamp(
        0, 1
    )
    got = structural_similarity(prediction, truth)
    assert got.shape == (2, 3)
    window = 7 if min(size) >= 7 else 5
    expected = [
        structural_similarity_reference(a.numpy(), b.numpy(), data_range=1.0, channel_axis=0, win_size=window)
        for a, b in zip(prediction.flatten(0, 1), truth.flatten(0, 1))
    ]
    torch.testing.assert_close(
        got.flatten().double(), torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-5
    )
    assert torch.allclose(
        structural_similarity(truth, truth), torch.ones(2, 3, dtype=torch.float64), atol=1e-6
    )


def test_bce_loss_under_bf16_autocast_and_gradient_is_prediction_minus_target():
    # binary_cross_entropy is refused inside autocast; the loss must still work there, in float32.
    model = tiny_model(loss="bce")
    labels = frames(steps=2, seed=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(frames(), labels=labels)
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    # The gradient of BCE on the logit is (p - y) / N, also for a saturated pixel (computing it from the
    # probability would shrink it ten-fold at a logit of -30).
    logits = torch.tensor([-30.0, 0.0, 30.0], requires_grad=True)
    target = torch.tensor([1.0, 0.5, 0.0])
    model.compute_loss(torch.sigmoid(logits), target, logits=logits).backward()
    torch.testing.assert_close(
        logits.grad, (torch.sigmoid(logits) - target).detach() / 3, atol=1e-6, rtol=1e-4
    )
    # The model passes its logits: a pixel whose truth is bright but whose prediction is saturated dark gets the
    # full gradient on the head's bias.
    model.zero_grad()
    with torch.no_grad():
        model.forecaster.head.bias.fill_(-40.0)
        model.forecaster.head.weight.zero_()
    model(frames(), labels=torch.ones_like(labels)).loss.backward()
    torch.testing.assert_close(
        model.forecaster.head.bias.grad, torch.full_like(model.forecaster.head.bias, -1 / 4)
    )  # patch 2: 4 pixels per bias


def test_hidden_states_on_request_and_tuple_output():
    model = tiny_model()
    with torch.no_grad():
        out = model(frames(), num_output_frames=4, output_hidden_states=True)
        plain = model(frames(), num_output_frames=4)
        as_tuple = model(frames(), labels=frames(steps=4), return_dict=False)
    assert [tuple(h.shape) for h in out.hidden_states] == [(2, 4, 8, 4, 4), (2, 4, 6, 4, 4)]
    assert [tuple(h.shape) for h in out.encoder_hidden_states] == [(2, 3, 16, 4, 4), (2, 3, 12, 4, 4)]
    assert plain.hidden_states is None and plain.encoder_hidden_states is None
    assert torch.equal(out.predictions, plain.predictions)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2 and as_tuple[0].shape == ()


def test_encoder_model_outputs():
    torch.manual_seed(0)
    encoder = ConvLSTMModel(tiny_config()).eval()
    with torch.no_grad():
        out = encoder(frames(steps=5), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 5, 12, 4, 4)
    assert [tuple(h.shape) for h in out.hidden_states] == [(2, 5, 16, 4, 4), (2, 5, 12, 4, 4)]
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)
    assert [tuple(h.shape) for h in out.final_hidden_states] == [(2, 2, 8, 4, 4), (2, 2, 6, 4, 4)]
    assert [tuple(c.shape) for c in out.final_cell_states] == [(2, 2, 8, 4, 4), (2, 2, 6, 4, 4)]
    # the forward direction ends at the last frame, the backward one at the first
    assert torch.equal(out.final_hidden_states[-1][0], out.last_hidden_state[:, -1, :6])
    assert torch.equal(out.final_hidden_states[-1][1], out.last_hidden_state[:, 0, 6:])


def test_predictions_never_read_labels_without_teacher_forcing():
    model = tiny_model()
    with torch.no_grad():
        first = model(frames(), labels=frames(steps=3, seed=2)).predictions
        second = model(frames(), labels=frames(steps=3, seed=3)).predictions
    assert torch.equal(first, second)


def test_teacher_forcing_feeds_only_past_true_frames():
    model = tiny_model()
    labels = frames(steps=3, seed=2)
    changed_last, changed_first = labels.clone(), labels.clone()
    changed_last[:, -1] = 1 - changed_last[:, -1]
    changed_first[:, 0] = 1 - changed_first[:, 0]
    with torch.no_grad():
        free = model(frames(), labels=labels).predictions
        forced = model(frames(), labels=labels, teacher_forcing_ratio=1.0).predictions
        forced_last = model(frames(), labels=changed_last, teacher_forcing_ratio=1.0).predictions
        forced_first = model(frames(), labels=changed_first, teacher_forcing_ratio=1.0).predictions
    assert torch.equal(free[:, 0], forced[:, 0]) and not torch.equal(free[:, 1:], forced[:, 1:])
    assert torch.equal(forced, forced_last)  # the last true frame is never an input
    assert torch.equal(forced[:, 0], forced_first[:, 0])
    assert not torch.equal(forced[:, 1], forced_first[:, 1])


def test_scheduled_sampling_mixes_per_sample():
    model = tiny_model()
    pixel_values, labels = frames(batch=16), frames(batch=16, steps=2, seed=2)
    with torch.no_grad():
        free = model(pixel_values, labels=labels).predictions[:, 1]
        forced = model(pixel_values, labels=labels, teacher_forcing_ratio=1.0).predictions[:, 1]
        torch.manual_seed(0)
        mixed = model(pixel_values, labels=labels, teacher_forcing_ratio=0.5).predictions[:, 1]
    from_truth = [torch.equal(m, f) for m, f in zip(mixed, forced)]
    from_self = [torch.equal(m, f) for m, f in zip(mixed, free)]
    assert all(a != b for a, b in zip(from_truth, from_self))
    assert 0 < sum(from_truth) < 16


# --------------------------------------------------------------------------- input checks
@pytest.mark.parametrize(
    ("pixel_values", "message"),
    [
        (torch.rand(2, 1, 8, 8), "5 dimensions"),
        (torch.rand(2, 3, 2, 8, 8), "channels"),
        (torch.rand(2, 3, 1, 7, 8), "patch_size"),
        (torch.rand(2, 3, 1, 8, 9), "patch_size"),
        (torch.rand(2, 0, 1, 8, 8), "at least one"),
    ],
)
def test_bad_pixel_values_raise_value_error(pixel_values, message):
    with pytest.raises(ValueError, match=f"pixel_values.*{message}|{message}.*pixel_values"):
        tiny_model()(pixel_values)


def test_bad_types_and_labels_raise():
    model = tiny_model()
    with pytest.raises(TypeError, match="pixel_values"):
        model(torch.zeros(2, 3, 1, 8, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="pixel_values"):
        model(frames().numpy())
    with pytest.raises(ValueError, match="labels"):
        model(frames(), labels=frames(batch=3))
    with pytest.raises(ValueError, match="labels"):
        model(frames(), labels=torch.rand(2, 2, 1, 4, 4))
    with pytest.raises(ValueError, match="num_output_frames"):
        model(frames(), labels=frames(steps=2), num_output_frames=3)
    with pytest.raises(ValueError, match="num_output_frames"):
        model(frames(), num_output_frames=0)
    with pytest.raises(ValueError, match="teacher_forcing_ratio"):
        model(frames(), teacher_forcing_ratio=0.5)  # no labels to force with
    with pytest.raises(ValueError, match="teacher_forcing_ratio"):
        model(frames(), labels=frames(steps=2), teacher_forcing_ratio=1.5)


# --------------------------------------------------------------------------- initialisation
def _check_layer_init(model, forget_bias):
    for gate in gates(model):
        hidden = gate.hidden_channels
        bias = gate.gate_bias.detach()
        assert torch.all(bias[hidden : 2 * hidden] == forget_bias)
        assert torch.all(bias[:hidden] == 0) and torch.all(bias[2 * hidden :] == 0)
        weight = gate.input_conv.weight.detach()
        expected_std = 1 / math.sqrt(
            3 * weight[0].numel()
        )  # kaiming_uniform(a=sqrt(5)), PyTorch's Conv2d default
        assert abs(weight.std().item() - expected_std) < 0.25 * expected_std
        assert abs(weight.std().item() - 0.02) > 0.01  # not transformers' normal(0, 0.02)


@pytest.mark.parametrize("norm", [None, "layer"])
def test_init_weights_keeps_layer_init_and_forget_bias(norm):
    model = tiny_model(norm=norm, forget_bias=2.5, peephole=True, hidden_sizes=[16, 16])
    _check_layer_init(model, 2.5)
    assert all(torch.all(gate.peephole_weight == 0) for gate in gates(model))
    model.init_weights()  # a second pass changes nothing
    _check_layer_init(model, 2.5)


def test_from_pretrained_initialises_missing_weights_like_the_layer(tmp_path):
    torch.manual_seed(0)
    config = tiny_config(forget_bias=3.0, hidden_sizes=[16])
    encoder = ConvLSTMModel(config)
    encoder.save_pretrained(tmp_path)
    model = ConvLSTMForFramePrediction.from_pretrained(tmp_path)
    for key, value in encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)
    _check_layer_init(model.forecaster, 3.0)
    _check_layer_init(model.encoder, 3.0)


def test_head_bias_starts_at_the_prediction_prior(tmp_path):
    model = tiny_model(prediction_prior=0.05)
    torch.testing.assert_close(model.forecaster.head.bias, torch.full((4,), math.log(0.05 / 0.95)))
    ConvLSTMModel(model.config).save_pretrained(tmp_path)  # no head in the checkpoint: initialised on load
    loaded = ConvLSTMForFramePrediction.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.forecaster.head.bias, torch.full((4,), math.log(0.05 / 0.95)))
    with torch.no_grad():
        model.forecaster.head.weight.zero_()
        assert torch.allclose(model(frames()).predictions, torch.tensor(0.05))


def test_init_methods():
    for method in ("xavier_uniform", "kaiming_normal"):
        model = tiny_model(init_method=method, forget_bias=1.0)
        assert torch.all(model.forecaster.head.bias == 0)
        for gate in gates(model):
            assert gate.gate_bias[gate.hidden_channels : 2 * gate.hidden_channels].eq(1).all()


# --------------------------------------------------------------------------- gradient checkpointing
def _saved_bytes_and_grads(model, pixel_values, labels):
    model.zero_grad()
    saved = 0

    def pack(tensor):
        nonlocal saved
        saved += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(pixel_values, labels=labels).loss
    loss.backward()
    return saved, {name: p.grad.clone() for name, p in model.named_parameters()}


def test_gradient_checkpointing_saves_memory_and_keeps_gradients():
    model = tiny_model(hidden_sizes=[16, 16]).train()
    pixel_values, labels = frames(steps=9, size=16), frames(steps=9, size=16, seed=4)
    plain_bytes, plain_grads = _saved_bytes_and_grads(model, pixel_values, labels)

    model.activation_checkpointing_enable()
    stacks = [m for m in model.modules() if isinstance(m, ConvLSTM)] + [model.forecaster]
    assert len(stacks) == 3 and all(m.gradient_checkpointing for m in stacks)
    checkpointed_bytes, checkpointed_grads = _saved_bytes_and_grads(model, pixel_values, labels)

    assert checkpointed_bytes < 0.5 * plain_bytes, (checkpointed_bytes, plain_bytes)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)

    model.activation_checkpointing_disable()
    assert not any(m.gradient_checkpointing for m in stacks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecated alias still works
        model.gradient_checkpointing_enable()
    assert all(m.gradient_checkpointing for m in stacks)


def test_autocast_keeps_cell_state_float32():
    model = tiny_model().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(frames(), labels=frames(steps=2, seed=3))
        encoded = model.encoder(frames())
    assert all(c.dtype == torch.float32 for c in encoded.final_cell_states)
    assert out.predictions.dtype == torch.float32 and out.loss.dtype == torch.float32
    assert torch.isfinite(out.loss)
    out.loss.backward()


def test_bfloat16_weights_from_pretrained(tmp_path):
    tiny_model().save_pretrained(tmp_path)
    model = ConvLSTMForFramePrediction.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert model.forecaster.head.weight.dtype == torch.bfloat16
    with torch.no_grad():
        out = model(frames().bfloat16(), labels=frames(steps=2, seed=3).bfloat16())
    assert out.predictions.dtype == torch.bfloat16 and torch.isfinite(out.loss)


# --------------------------------------------------------------------------- Trainer
class _TinyFrames(torch.utils.data.Dataset):
    """Random observed frames; the future is a still grey frame, learnable in a few steps."""

    def __init__(self, size: int = 16):
        self.pixel_values = frames(batch=size, steps=3, seed=7)
        self.labels = torch.full((size, 2, 1, 8, 8), 0.2)

    def __len__(self):
        return len(self.pixel_values)

    def __getitem__(self, index):
        return {"pixel_values": self.pixel_values[index], "labels": self.labels[index]}


def test_trains_with_transformers_trainer(tmp_path):
    model = tiny_model().train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=8,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_TinyFrames())
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 8 and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]
    changed = [not torch.equal(before[name], p.detach()) for name, p in model.named_parameters()]
    assert all(changed)
    metrics = trainer.evaluate(_TinyFrames(size=4))
    assert math.isfinite(metrics["eval_loss"])


# --------------------------------------------------------------------------- save / load
def test_save_pretrained_from_pretrained_bit_identical(tmp_path):
    model = tiny_model(norm="group", norm_groups=2, peephole=True)
    with torch.no_grad():
        for (
            parameter
        ) in model.parameters():  # trained-looking values: any re-initialisation on load would show
            parameter.add_(0.1 * torch.randn_like(parameter))
        expected = model(frames(), num_output_frames=4).predictions
    model.save_pretrained(tmp_path)
    files = {path.name for path in tmp_path.iterdir()}
    assert {"config.json", "model.safetensors"} <= files
    assert {
        "configuration_convlstm.py",
        "modeling_convlstm.py",
        "convlstm.py",
        "convlstm_fused.py",
        "convlstm_pointwise.py",
    } <= files  # the code travels too, the layer's relative import included
    assert not any(name.endswith(".bin") for name in files)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_convlstm.ConvLSTMConfig",
        "AutoModel": "modeling_convlstm.ConvLSTMForFramePrediction",
    }
    for loader in (ConvLSTMForFramePrediction, AutoModel):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert type(loaded) is ConvLSTMForFramePrediction
        with torch.no_grad():
            assert torch.equal(loaded(frames(), num_output_frames=4).predictions, expected)
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key


def test_automodel_from_config_after_import():
    model = AutoModel.from_config(tiny_config())
    assert type(model) is ConvLSTMForFramePrediction


@pytest.mark.parametrize("damage", ["truncate_data", "truncate_header", "garbage"])
def test_damaged_weights_file_raises_clear_error(tmp_path, damage):
    tiny_model().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    damaged = {
        "truncate_data": data[: len(data) - 100],
        "truncate_header": data[:20],
        "garbage": b"not a safetensors file",
    }[damage]
    weights.write_bytes(damaged)
    with pytest.raises(ValueError, match="truncated or corrupted"):
        ConvLSTMForFramePrediction.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="truncated or corrupted"):
        AutoModel.from_pretrained(tmp_path)
