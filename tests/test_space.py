"""Tests of the demo Space (space/app.py): a local launch driven through `gradio_client` and through a real
browser (headless Chromium, Debian's `chromium` package, driven with playwright).

The demo runs in this process on 127.0.0.1 with a tiny model saved with `save_pretrained`; every name lookup of the
test is limited to loopback addresses (Gradio must not phone home), and the browser may only load the demo's own
URL. The browser test keeps a screenshot in test-artifacts/space.png.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bidirectional_conv_lstm import ConvLSTMConfig, ConvLSTMForFramePrediction  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TINY = {"hidden_sizes": [4], "patch_size": 2, "kernel_size": 3, "num_input_frames": 3, "num_output_frames": 2}


def _load_app():
    spec = importlib.util.spec_from_file_location("space_app", ROOT / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def lookups():
    """Every host name looked up while the demo runs; anything but loopback is refused.

    The test's own client, `gradio_client`, builds its headers with huggingface_hub, which would fetch a registry
    and send telemetry to the Hub: huggingface_hub is put offline for it (the demo server does not use it).
    """
    from huggingface_hub import constants

    seen, original = [], socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        seen.append(host)
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"the demo test blocked a lookup of {host!r}: nothing may reach the network")
        return original(host, *args, **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(constants, "HF_HUB_OFFLINE", True)
    patch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    patch.setattr(socket, "getaddrinfo", loopback_only)
    yield seen
    patch.undo()


@pytest.fixture(scope="module")
def demo(tmp_path_factory, lookups):
    """The demo app launched on a free loopback port: ``{"app": module, "url": ..., "model": folder}``."""
    app = _load_app()
    folder = tmp_path_factory.mktemp("space") / "tiny"
    torch.manual_seed(0)
    ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY)).save_pretrained(folder)
    blocks = app.build_demo(app.load_predictor(str(folder)))
    _, url, _ = blocks.launch(
        server_name="127.0.0.1",
        server_port=_free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **app.launch_options(),
    )
    yield {"app": app, "url": url, "model": folder}
    blocks.close()
    assert [host for host in lookups if host not in ("127.0.0.1", "localhost", "::1")] == []


def test_change_per_frame_and_bad_input(demo, tmp_path):
    app = demo["app"]
    frames = np.zeros((3, 1, 2, 2), dtype=np.float32)
    frames[1], frames[2] = 0.5, 0.25
    np.testing.assert_allclose(app.mean_absolute_change(frames), [0.5, 0.25])
    predictor = app.load_predictor(str(demo["model"]))
    with pytest.raises(ValueError, match="horizon must be a whole number of frames from 1 to 30"):
        app.predict(predictor, [str(app.EXAMPLES_DIR / "moving_mnist_0.gif")], 0)
    with pytest.raises(ValueError, match="no frames"):
        app.predict(predictor, None, 2)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"not frames; upload \.gif, \.png, \.npy, \.npz"):
        app.predict(predictor, [str(tmp_path / "notes.txt")], 2)
    with pytest.raises(FileNotFoundError, match="no such folder, and not a Hub repo id"):
        app.load_predictor(str(tmp_path / "missing"))


def test_gradio_client_gets_a_prediction_of_the_right_shape(demo, tmp_path):
    from gradio_client import Client, handle_file

    # PNG frames of a size that is not a multiple of the patch size: the pipeline pads and crops back.
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for index in range(4):
        path = tmp_path / f"frame_{index:02d}.png"
        Image.fromarray(rng.integers(0, 256, (13, 17), dtype=np.uint8)).save(path)
        paths.append(handle_file(str(path)))
    client = Client(demo["url"], verbose=False, download_files=str(tmp_path / "downloads"))
    observed, predicted, change, predictions = client.predict(paths, 5, api_name="/predict")
    assert np.load(predictions).shape == (5, 13, 17) and np.load(predictions).dtype == np.uint8
    from PIL import Image

    with Image.open(predicted) as gif:
        assert gif.n_frames == 5 and gif.size == (17 * 4, 13 * 4)
    with Image.open(observed) as gif:
        assert gif.n_frames == TINY["num_input_frames"]  # the frames the model reads
    assert change["type"] == "matplotlib" and change["plot"].startswith("data:image/")


def test_browser_runs_an_example_and_shows_the_prediction(demo):
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    url, external = demo["url"].rstrip("/"), []

    def local_only(route):
        target = route.request.url
        if target.startswith((url, "data:", "blob:")):
            route.continue_()
        else:
            external.append(target)
            route.abort()

    ARTIFACTS.mkdir(exist_ok=True)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.route("**/*", local_only)
            page.goto(url)
            page.get_by_text("moving_mnist_0.gif").first.click()  # the first bundled example
            page.locator("#frames td.filename[aria-label='moving_mnist_0.gif']").wait_for(timeout=30_000)
            page.locator("#predict").click()
            image = page.locator("#predicted img")
            image.wait_for(timeout=60_000)
            assert image.evaluate("img => img.complete && img.naturalWidth") == 64 * 4  # the animation loaded
            page.locator("#change img, #change canvas, #change svg").first.wait_for(timeout=30_000)
            assert page.locator("#download td.filename[aria-label='predictions.npy']").count() == 1
            page.screenshot(path=str(ARTIFACTS / "space.png"), full_page=True)
        finally:
            browser.close()
    assert external == []
    assert (ARTIFACTS / "space.png").stat().st_size > 10_000


@pytest.mark.slow
def test_app_runs_the_models_own_code_where_the_package_is_not_installed(tmp_path):
    """As on a Space: no bidirectional_conv_lstm, the pipeline and processor come from the saved model folder."""
    import json
    import subprocess
    import sys
    import textwrap

    from bidirectional_conv_lstm import save_frame_prediction_model
    from test_hub import BLOCK_PACKAGE, NETWORK_GUARD

    torch.manual_seed(0)
    save_frame_prediction_model(ConvLSTMForFramePrediction(ConvLSTMConfig(**TINY)), tmp_path / "model")
    script = (
        NETWORK_GUARD
        + BLOCK_PACKAGE
        + textwrap.dedent(
            f"""
        import json, sys
        import numpy as np
        sys.path.insert(0, {str(ROOT / "space")!r})
        import app
        predictor = app.load_predictor({str(tmp_path / "model")!r})
        out = app.predict(predictor, [str(app.EXAMPLES_DIR / "moving_mnist_1.gif")], 4, output_dir={str(tmp_path)!r})
        print(json.dumps({{"module": type(predictor).__module__, "shape": list(np.load(out[3]).shape),
                          "package": "bidirectional_conv_lstm" in sys.modules}}))
        """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), GRADIO_ANALYTICS_ENABLED="False")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-4000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["module"].startswith("transformers_modules.") and out["module"].endswith(".pipeline_convlstm")
    assert out["shape"] == [4, 64, 64] and out["package"] is False
