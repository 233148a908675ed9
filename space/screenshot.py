"""Take the README's screenshot of the demo (docs/space.png): launch it, run the first example in headless Chromium.

    python space/screenshot.py --model outputs/moving_mnist_cpu --output docs/space.png

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True, help="a saved folder or a Hub repo id")
    parser.add_argument("--output", default="docs/space.png")
    parser.add_argument("--horizon", type=int, help="frames to predict (default: the model's)")
    parser.add_argument("--width", type=int, default=960, help="width of the saved PNG in pixels")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    demo = app.build_demo(app.load_predictor(args.model))
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        **app.launch_options(),
    )
    url = url.rstrip("/")
    output = Path(args.output)
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 820})
            page.route(
                "**/*",
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith((url, "data:", "blob:"))
                    else route.abort()
                ),
            )
            page.goto(url)
            page.get_by_text("moving_mnist_0.gif").first.click()
            page.locator("#frames td.filename[aria-label='moving_mnist_0.gif']").wait_for(timeout=30_000)
            if args.horizon:
                page.locator("#horizon input[type=number]").fill(str(args.horizon))
            page.locator("#predict").click()
            page.locator("#predicted img").wait_for(timeout=120_000)
            page.locator("#change img, #change canvas, #change svg").first.wait_for(timeout=30_000)
            output.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(output), full_page=True)
            browser.close()
    finally:
        demo.close()
    with Image.open(output) as image:
        height = round(image.height * args.width / image.width)
        small = image.convert("RGB").resize((args.width, height), Image.LANCZOS)
    small.quantize(colors=128).save(output, optimize=True)
    print(f"{output}: {args.width}x{height}, {output.stat().st_size} bytes")


if __name__ == "__main__":
    main()
