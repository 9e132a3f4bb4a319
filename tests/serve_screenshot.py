"""Make the README's picture of the look-inside page: four panels of a real model, side by side.

    python -m tests.serve_screenshot --checkpoint runs/pretrain --out docs/serve.png

Needs what the browser test needs (Debian's chromium and chromium-driver, selenium) and Pillow
(which matplotlib brings). Never run by the tests: they do not write into the repository.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from tests.serve_browser import css, generate, missing, open_chromium, open_panel, set_text, wait_for
from tests.serve_helpers import running_server

TEXT = "The list of arguments is passed to the function, and the result"


def shoot(driver, top: int, height: int):
    """The viewport from ``top`` down, ``height`` pixels."""
    from PIL import Image

    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    return image.crop((0, top, image.width, min(top + height, image.height)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="a run folder or step folder")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--text", default=TEXT)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    if missing():
        print(f"error: {missing()}", file=sys.stderr)
        return 2
    from PIL import Image

    from gpt.cli.serve import session_from_args

    session = session_from_args(SimpleNamespace(checkpoint=args.checkpoint, gpt2=None, vocab=None, hf=None))
    width, height, panel = 1000, 1200, 660
    with running_server(session) as (server, _), tempfile.TemporaryDirectory() as profile:
        driver = open_chromium(profile, width, height)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        try:
            driver.get(server.url)
            wait_for(driver, lambda d: "parameters" in css(d, "#model-summary")[0].text)
            set_text(driver, args.text)
            done = f"{len(args.text)} characters"
            wait_for(driver, lambda d: done in css(d, "#tokens-count")[0].text
                     and done in css(d, "#text-count")[0].text)
            tabs = css(driver, "#tabs")[0].rect["y"]
            header = shoot(driver, 0, int(tabs))
            tokens = shoot(driver, int(tabs), int(tabs))
            shots = []
            open_panel(driver, "next")
            driver.execute_script("const t = document.getElementById('temperature'); t.value = 0.8;"
                                  "t.dispatchEvent(new Event('input'));"
                                  "const p = document.getElementById('top-p'); p.value = 0.6;"
                                  "p.dispatchEvent(new Event('input'));")
            wait_for(driver, lambda d: css(d, "#next-chart .cut"))
            shots.append(shoot(driver, int(tabs), panel))
            generate(driver, max_new_tokens=30, seed=args.seed)
            css(driver, ".gen-tok")[4].click()
            wait_for(driver, lambda d: css(d, "#alternatives:not([hidden]) tr.alt"))
            shots.append(shoot(driver, int(tabs), panel))
            open_panel(driver, "attention")
            last = str(session.cfg.n_layers - 1)
            css(driver, f'#att-layer option[value="{last}"]')[0].click()
            wait_for(driver, lambda d: f"layer {int(last) + 1}" in css(d, "#att-info")[0].text)
            shots.append(shoot(driver, int(tabs), panel))
            open_panel(driver, "lens")
            wait_for(driver, lambda d: css(d, "#lens-table tbody tr"))
            shots.append(shoot(driver, int(tabs), panel))
        finally:
            driver.quit()
    sheet = Image.new("RGB", (2 * width, header.height + 2 * panel), "white")
    sheet.paste(header, (0, 0))
    sheet.paste(tokens, (width, 0))
    for i, shot in enumerate(shots):
        sheet.paste(shot, ((i % 2) * width, header.height + (i // 2) * panel))
    sheet = sheet.resize((sheet.width * 3 // 4, sheet.height * 3 // 4), Image.LANCZOS)
    out = Path(args.out)
    sheet.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
