"""Take the docs' screenshot of the nowcasting Space (docs/space_nowcasting.png): launch it, run a sample event in
headless Chromium.

    python space_nowcasting/screenshot.py --model outputs/nowcasting --output docs/space_nowcasting.png

Needs Debian's `chromium` (/usr/bin/chromium) and playwright's Python package (the `dev` extra); the browser may
only load the demo's own page. The screenshot is shrunk and reduced to a palette to stay small.
"""

import argparse
import os
import socket
import sys
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import app  # noqa: E402

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def take(url: str, output: Path, *, chromium: str, sample: str | None, horizon: int | None) -> None:
    """Open the page at `url`, pick `sample` (a sample title; default the first), forecast, save the page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route(
            "**/*",
            lambda route: (
                route.continue_() if route.request.url.startswith((url, "data:", "blob:")) else route.abort()
            ),
        )
        page.goto(url)
        if sample:
            page.locator("#sample input").click()
            page.get_by_role("option", name=sample).click()
            page.wait_for_timeout(2_000)  # the origin times of the sample arrive
        if horizon:
            page.locator("#horizon input[type=number]").fill(str(horizon))
        page.locator("#forecast").click()
        page.locator("#strip img").wait_for(timeout=120_000)
        page.locator("#download td.filename[aria-label='forecast.nc']").wait_for(timeout=30_000)
        output.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(output), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a saved rain-rate model folder or a Hub repo id")
    parser.add_argument("--output", default="docs/space_nowcasting.png")
    parser.add_argument("--sample", help="the sample event's title (default: the first)")
    parser.add_argument("--horizon", type=int, help="frames to forecast (default: the model's)")
    parser.add_argument("--width", type=int, default=960, help="width of the saved PNG in pixels")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from PIL import Image

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = app.build_demo(app.load_model(args.model))
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **app.launch_options(),
    )
    output = Path(args.output)
    try:
        take(url.rstrip("/"), output, chromium=args.chromium, sample=args.sample, horizon=args.horizon)
    finally:
        demo.close()
    with Image.open(output) as image:
        height = round(image.height * args.width / image.width)
        small = image.convert("RGB").resize((args.width, height), Image.LANCZOS)
    # 256 colours by octree keep every class of the rain-rate legend apart (a median cut merges the rare ones).
    small.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(output, optimize=True)
    print(f"{output}: {args.width}x{height}, {output.stat().st_size} bytes")


if __name__ == "__main__":
    main()
