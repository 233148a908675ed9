"""Remote code: a saved model loads with AutoModel + trust_remote_code where this package cannot be imported."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from transformers.dynamic_module_utils import get_imports, get_relative_import_files

import bidirectional_conv_lstm
from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction

pytestmark = pytest.mark.usefixtures("one_thread")


PACKAGE_DIR = Path(bidirectional_conv_lstm.__file__).parent / "models" / "convlstm"
CODE_FILES = (
    "configuration_convlstm.py",
    "modeling_convlstm.py",
    "convlstm.py",
    "convlstm_fused.py",
    "convlstm_pointwise.py",
    "losses_convlstm.py",
    "forecasting_convlstm.py",
    "advection_convlstm.py",
    "rain_rate.py",
    "argument_checks.py",
    "georeferencing_convlstm.py",
    "loading_convlstm.py",
    "ensemble_convlstm.py",
)

# Runs in a Python that cannot import bidirectional_conv_lstm: a meta-path finder refuses it (the editable install
# would otherwise find it through its .pth path entry).
CHILD = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class BlockPackage(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "bidirectional_conv_lstm":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, BlockPackage())
    try:
        import bidirectional_conv_lstm  # noqa: F401
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("bidirectional_conv_lstm is still importable")

    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    model_dir, tensors_file, resaved_dir, threads = sys.argv[1:5]
    torch.set_num_threads(int(threads))  # the parent's: the reduction order of a convolution depends on it
    try:
        AutoModel.from_pretrained(model_dir, trust_remote_code=False)
    except ValueError as err:
        assert "trust_remote_code" in str(err), err
    else:
        raise SystemExit("loaded custom code without trust_remote_code=True")

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    assert type(config).__name__ == "ConvLSTMConfig" and config.hidden_sizes == [8, 6], config
    model = AutoModel.from_pretrained(model_dir, trust_remote_code=True).eval()
    assert type(model).__name__ == "ConvLSTMForFramePrediction", type(model)
    assert type(model).__module__.startswith("transformers_modules."), type(model).__module__
    assert not any(name.startswith("bidirectional_conv_lstm") for name in sys.modules)

    tensors = load_file(tensors_file)
    with torch.no_grad():
        out = model(tensors["pixel_values"], labels=tensors["labels"])
    assert torch.equal(out.predictions, tensors["predictions"]), "predictions differ"
    assert torch.equal(out.loss, tensors["loss"]), "loss differs"

    model.train()
    model(tensors["pixel_values"], labels=tensors["labels"], teacher_forcing_ratio=0.5).loss.backward()
    assert all(p.grad is not None for p in model.parameters())

    model.save_pretrained(resaved_dir)  # remote code saves its code again
    again = AutoModel.from_pretrained(resaved_dir, trust_remote_code=True).eval()
    with torch.no_grad():
        assert torch.equal(again(tensors["pixel_values"], labels=tensors["labels"]).predictions, out.predictions)
    print("REMOTE CODE OK")
    """
)


def test_code_files_import_only_torch_numpy_transformers_and_each_other():
    # huggingface_hub and safetensors come with transformers
    allowed = set(sys.stdlib_module_names) | {
        "torch",
        "numpy",
        "transformers",
        "safetensors",
        "huggingface_hub",
    }
    for name in CODE_FILES:
        imports = set(get_imports(PACKAGE_DIR / name))
        assert imports <= allowed, f"{name} imports {sorted(imports - allowed)}"
    needed = {Path(path).name for path in get_relative_import_files(PACKAGE_DIR / "modeling_convlstm.py")}
    assert needed == set(CODE_FILES) - {"modeling_convlstm.py"}


def test_save_pretrained_copies_the_code_files(tmp_path):
    ConvLSTMForFramePrediction(ConvLSTMConfig(hidden_sizes=[4], patch_size=2)).save_pretrained(tmp_path)
    for name in CODE_FILES:
        assert (tmp_path / name).read_bytes() == (PACKAGE_DIR / name).read_bytes(), name


def test_automodel_trust_remote_code_without_the_package(tmp_path):
    torch.manual_seed(0)
    config = ConvLSTMConfig(hidden_sizes=[8, 6], patch_size=2, peephole=True, num_output_frames=3)
    model = ConvLSTMForFramePrediction(config).eval()
    with torch.no_grad():
        for (
            parameter
        ) in model.parameters():  # trained-looking values: any re-initialisation on load would show
            parameter.add_(0.1 * torch.randn_like(parameter))
    model_dir = tmp_path / "model"
    model.save_pretrained(model_dir)

    pixel_values, labels = torch.rand(2, 4, 1, 8, 8), torch.rand(2, 3, 1, 8, 8)
    with torch.no_grad():
        out = model(pixel_values, labels=labels)
    tensors_file = tmp_path / "tensors.safetensors"
    save_file(
        {"pixel_values": pixel_values, "labels": labels, "predictions": out.predictions, "loss": out.loss},
        tensors_file,
    )

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "TRANSFORMERS_", "PYTHON"))
    }
    env.update(
        HF_HOME=str(tmp_path / "hf_home"),  # the dynamic-module cache goes to tmp
        HF_HUB_OFFLINE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(model_dir),
            str(tensors_file),
            str(tmp_path / "resaved"),
            str(torch.get_num_threads()),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REMOTE CODE OK" in result.stdout
    modules = tmp_path / "hf_home" / "modules" / "transformers_modules"
    assert any(modules.rglob("modeling_convlstm.py")) and any(modules.rglob("convlstm.py"))
    assert {path.name for path in (tmp_path / "resaved").iterdir()} >= {"model.safetensors", *CODE_FILES}
