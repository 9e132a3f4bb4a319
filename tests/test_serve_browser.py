"""The look-inside page in a real browser (headless Chromium, Debian's chromium + chromium-driver,
driven by Selenium): type a prompt, generate, branch, look at attention and the logit lens, compare
two checkpoints; every number checked against the API; no console errors. Skipped without the
browser (.ci/run installs it)."""
import json

import numpy as np
import pytest

from tests.serve_browser import console_errors, css, generate, missing, open_chromium, open_panel, set_text, wait_for
from tests.serve_helpers import PROMPT, api, api_lines, make_run, running_server

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

SPACE = "\u2423"      # how the page shows a space inside a token's label


def shown(piece: str) -> str:
    return piece.replace(" ", SPACE)


@pytest.fixture
def page(tmp_path):
    from types import SimpleNamespace

    from gpt.cli.serve import session_from_args

    run = make_run(tmp_path / "run")
    session = session_from_args(SimpleNamespace(checkpoint=str(run), gpt2=None, vocab=None, hf=None))
    with running_server(session) as (server, log):
        driver = open_chromium(tmp_path / "profile")
        try:
            driver.get(server.url)
            wait_for(driver, lambda d: "GPTModel" in css(d, "#model-summary")[0].text)
            yield driver, server, log
        finally:
            driver.quit()


def test_the_page_shows_what_the_api_says(page, tmp_path):
    driver, server, log = page
    set_text(driver, PROMPT)
    _, tokens = api(server, "/api/tokenize", {"text": PROMPT})
    ids = [t["id"] for t in tokens["tokens"]]

    # Tokens: one coloured piece per token, with its id
    wait_for(driver, lambda d: [int(s.get_attribute("data-id")) for s in css(d, "#tokens-view .tok")] == ids)
    assert f"{len(ids)} tokens, {len(PROMPT)} characters" in css(driver, "#tokens-count")[0].text
    # hovering a piece shows its bytes and merge rank
    from selenium.webdriver.common.action_chains import ActionChains

    first = tokens["tokens"][0]
    ActionChains(driver).move_to_element(css(driver, "#tokens-view .tok")[0]).perform()
    tip = wait_for(driver, lambda d: [t.text for t in css(d, "#tooltip:not([hidden])")])[0]
    assert " ".join(f"{b:02x}" for b in first["bytes"]) in tip
    assert (f"merge rank {first['rank']}" if first["rank"] is not None else "single byte") in tip

    # Next token: the bars' numbers are the API's
    open_panel(driver, "next")
    wait_for(driver, lambda d: len(css(d, "#next-chart .p-value")) == 20)
    _, nxt = api(server, "/api/next", {"text": PROMPT, "temperature": 1.0})
    first = wait_for(driver, lambda d: [(int(e.get_attribute("data-id")), e.text)
                                        for e in css(d, "#next-chart .p-value")][0])
    assert first[0] == nxt["tokens"][0]["id"] and first[1].startswith(f"{nxt['tokens'][0]['p_sample']:.3f}")

    # Generate: the streamed tokens are what the API generates with the same settings
    got = generate(driver, max_new_tokens=8, seed=5)
    _, lines = api_lines(server, "/api/generate", {"text": PROMPT, "max_new_tokens": 8, "seed": 5, "temperature": 1.0})
    assert got == [line["token"]["id"] for line in lines if "token" in line]
    # click the third token, then its second alternative: the continuation branches from there
    css(driver, ".gen-tok")[2].click()
    wait_for(driver, lambda d: css(d, "#alternatives:not([hidden]) tr.alt"))
    alternative = css(driver, "#alternatives tr.alt")[1]
    chosen = int(alternative.get_attribute("data-id"))
    driver.execute_script("delete document.getElementById('generate-output').dataset.done")
    alternative.click()
    wait_for(driver, lambda d: css(d, '#generate-output[data-done="true"]'))
    branched = wait_for(driver, lambda d: [int(t.get_attribute("data-id")) for t in css(d, ".gen-tok")])
    assert branched[:3] == got[:2] + [chosen] and len(branched) == 3 + 8
    _, lines = api_lines(server, "/api/generate", {"ids": ids + branched[:3], "max_new_tokens": 8, "seed": 5,
                                                   "temperature": 1.0})
    assert branched[3:] == [line["token"]["id"] for line in lines if "token" in line]

    # Attention: layer 2, the mean over heads; the highlighted (last) row's strongest weight is the API's
    open_panel(driver, "attention")
    css(driver, '#att-layer option[value="1"]')[0].click()
    wait_for(driver, lambda d: "layer 2" in css(d, "#att-info")[0].text)
    _, att = api(server, "/api/attention", {"text": PROMPT, "layer": 1})
    row, top = wait_for(driver, lambda d: [(e.get_attribute("data-row"), e.get_attribute("data-top"))
                                           for e in css(d, "#att-info")][0])
    assert row == str(len(ids) - 1) and top == f"{max(att['mean'][-1]):.4f}"
    css(driver, '#att-head option[value="0"]')[0].click()
    wait_for(driver, lambda d: css(d, "#att-info")[0].get_attribute("data-top") == f"{max(att['heads'][0][-1]):.4f}")
    # hovering the first row highlights it: token 1 can only attend to itself
    canvas = css(driver, "#att-canvas")[0]
    size = canvas.size
    cell = max(4, min(28, 560 // len(ids)))
    scale = size["height"] / (110 + len(ids) * cell + 10)
    middle_of_first_cell = (110 + cell / 2) * scale               # the offset is from the canvas's centre
    ActionChains(driver).move_to_element_with_offset(
        canvas, int(middle_of_first_cell - size["width"] / 2), int(middle_of_first_cell - size["height"] / 2)).perform()
    wait_for(driver, lambda d: css(d, "#att-info")[0].get_attribute("data-row") == "0")
    assert css(driver, "#att-info")[0].get_attribute("data-top") == "1.0000"

    # Logit lens: one row per layer (and the embedding), the most likely tokens as the API says
    open_panel(driver, "lens")
    wait_for(driver, lambda d: len(css(d, "#lens-table tbody tr")) == 3)
    _, lens = api(server, "/api/lens", {"text": PROMPT})
    for layer in range(3):
        cells = wait_for(driver, lambda d: [(c.text, float(c.get_attribute("data-p")))
                                            for c in css(d, f'#lens-table tr[data-layer="{layer}"] td[data-id]')])
        assert [text for text, _ in cells] == [shown(p) for p in lens["top_pieces"][layer]]
        np.testing.assert_allclose([p for _, p in cells], lens["top_probs"][layer])

    # Training: the loss curves, and two checkpoints compared on the text
    open_panel(driver, "training")
    wait_for(driver, lambda d: len(css(d, "#loss-chart polyline")) == 2)
    css(driver, "#compare-button")[0].click()
    wait_for(driver, lambda d: "mean loss" in css(d, "#compare-summary")[0].text)
    _, cmp = api(server, "/api/compare", {"text": PROMPT, "a": "step-000001", "b": "step-000002"})
    summary = css(driver, "#compare-summary")[0].text
    assert f"step-000001 {cmp['a']['mean']:.3f}" in summary and f"step-000002 {cmp['b']['mean']:.3f}" in summary
    assert not css(driver, '#tabs [data-panel="chat"]')[0].is_displayed()      # not an instruction-tuned model

    assert console_errors(driver) == []
    assert css(driver, "#status")[0].text == ""
    shot = tmp_path / "serve.png"
    driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "error" not in log.getvalue()


def test_errors_show_on_the_page_not_in_a_traceback(page):
    driver, server, _ = page
    set_text(driver, "Below " * 40)          # longer than the tiny model's context (32 tokens)
    open_panel(driver, "lens")
    wait_for(driver, lambda d: "tokens" in css(d, "#status")[0].text)
    assert "at most 32" in css(driver, "#status")[0].text
    assert json.dumps(api(server, "/api/info")[1])            # still serving


def test_chat_panel_for_an_instruction_tuned_checkpoint(tmp_path):
    from types import SimpleNamespace

    from gpt.cli.serve import session_from_args

    run = make_run(tmp_path / "run", instruct=True)
    session = session_from_args(SimpleNamespace(checkpoint=str(run), gpt2=None, vocab=None, hf=None))
    with running_server(session) as (server, _):
        driver = open_chromium(tmp_path / "profile")
        try:
            driver.get(server.url)
            wait_for(driver, lambda d: css(d, '#tabs [data-panel="chat"]')[0].is_displayed())
            open_panel(driver, "chat")
            css(driver, "#chat-input")[0].send_keys("Reverse the word.")
            css(driver, "#chat-send")[0].click()
            answer = wait_for(driver, lambda d: [m.get_attribute("textContent")
                                                 for m in css(d, '.msg.assistant[data-done="true"]')])
            _, lines = api_lines(server, "/api/chat", {"messages": [{"role": "user", "content": "Reverse the word."}],
                                                       "temperature": 0, "max_new_tokens": 40, "seed": 123})
            assert answer == [lines[-1]["response"]]
            assert [m.text for m in css(driver, ".msg.user")] == ["Reverse the word."]
            assert console_errors(driver) == []
        finally:
            driver.quit()


def test_an_encoder_shows_attention_both_ways_and_fills_masks(tmp_path):
    from types import SimpleNamespace

    from selenium.webdriver.common.action_chains import ActionChains

    from gpt.cli.serve import session_from_args
    from tests.serve_helpers import make_encoder_run

    run = make_encoder_run(tmp_path / "run")
    session = session_from_args(SimpleNamespace(checkpoint=str(run), gpt2=None, vocab=None, hf=None))
    text = "the cat [MASK] on the mat"
    with running_server(session) as (server, log):
        driver = open_chromium(tmp_path / "profile")
        try:
            driver.get(server.url)
            wait_for(driver, lambda d: "BertForMaskedLM" in css(d, "#model-summary")[0].text)
            # the causal panels are hidden; fill-mask is there
            for name in ("next", "generate", "lens", "chat"):
                assert not css(driver, f'#tabs [data-panel="{name}"]')[0].is_displayed(), name
            set_text(driver, text)
            _, tokens = api(server, "/api/tokenize", {"text": text})
            n = tokens["n_tokens"]
            ids = [t["id"] for t in tokens["tokens"]]          # [CLS] ... [SEP], as the encoder reads it
            wait_for(driver, lambda d: [int(s.get_attribute("data-id")) for s in css(d, "#tokens-view .tok")] == ids)

            # Attention: a full T x T heatmap; the first query's strongest key may come after it
            open_panel(driver, "attention")
            _, att = api(server, "/api/attention", {"text": text, "layer": 0})
            wait_for(driver, lambda d: css(d, "#att-info")[0].get_attribute("data-top") == f"{max(att['mean'][-1]):.4f}")
            cell = max(4, min(28, 560 // n))
            # the top-right cell (query 1, key n: above the diagonal) is painted: not the white background
            pixel = driver.execute_script(
                "return Array.from(document.getElementById('att-canvas').getContext('2d')"
                ".getImageData(arguments[0], arguments[1], 1, 1).data)", 110 + (n - 1) * cell + cell // 2, 110 + cell // 2)
            assert pixel[:3] != [255, 255, 255] and att["mean"][0][n - 1] > 0
            canvas = css(driver, "#att-canvas")[0]
            size = canvas.size
            scale = size["height"] / (110 + n * cell + 10)
            middle_of_first_cell = (110 + cell / 2) * scale              # the offset is from the canvas's centre
            ActionChains(driver).move_to_element_with_offset(
                canvas, int(middle_of_first_cell - size["width"] / 2),
                int(middle_of_first_cell - size["height"] / 2)).perform()
            wait_for(driver, lambda d: css(d, "#att-info")[0].get_attribute("data-row") == "0")
            assert css(driver, "#att-info")[0].get_attribute("data-top") == f"{max(att['mean'][0]):.4f}"
            assert len(css(driver, "#att-info")[0].text.splitlines()) == 1 + min(5, n)   # keys on both sides

            # Fill mask: the candidates the API gives, in its order
            open_panel(driver, "fill")
            _, fill = api(server, "/api/fill_mask", {"text": text})
            got = wait_for(driver, lambda d: [int(r.get_attribute("data-id")) for r in css(d, "#fill-view tr.fill-candidate")])
            assert got == [c["id"] for c in fill["masks"][0]["candidates"]]

            # Training: the curves, without the next-token compare
            open_panel(driver, "training")
            wait_for(driver, lambda d: len(css(d, "#loss-chart polyline")) == 2)
            assert not css(driver, "#compare-button")[0].is_displayed()

            assert console_errors(driver) == []
            assert css(driver, "#status")[0].text == ""
            assert "error" not in log.getvalue()
        finally:
            driver.quit()
