"""The dashboard in a real browser (Debian's chromium driven by Playwright): log in, filter to
failed jobs, open one, press retry, see the new state. Screenshots land in the test's output
folder (its path is printed); docs/ keeps a copy for the README."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ADMIN_TOKEN, EMBEDDED, Stack

CHROMIUM = "/usr/bin/chromium"
# The flags a root, offline, headless Chromium needs here.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"!!! {CHROMIUM} is missing (apt-get install chromium): browser test skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


def test_log_in_filter_failed_open_retry(stack: Stack, browser: object, tmp_path: Path) -> None:
    if stack.backend != EMBEDDED:
        pytest.skip("one browser run is enough")
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    # A job that Kie refuses once (422), then succeeds when retried.
    prompt = f"A red fox crossing a snowy field [kie:422x1] #{uuid.uuid4().hex[:6]}"
    job = stack.wait(stack.create(prompt=prompt)["id"])
    assert job["status"] == "failed"
    for i in range(3):
        stack.create(prompt=f"Waves at dusk, take {i}")

    page = browser.new_page(viewport={"width": 1366, "height": 860})
    page.goto(f"{stack.local.api_url}/admin")
    page.fill("input[name=token]", "not the token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_contain_text("not right")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Jobs")

    cookie = next(c for c in page.context.cookies() if c["name"] == "soraq_admin")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"

    page.check("input[name=status][value=failed]")
    page.click("form.filters button[type=submit]")
    rows = page.locator("tbody tr")
    expect(rows.first).to_contain_text("failed")
    assert all("failed" in text for text in rows.all_inner_texts())
    page.screenshot(path=str(tmp_path / "dashboard-jobs.png"), full_page=True)

    page.click(f"a[href='/admin/view/{job['id']}']")
    expect(page.locator("h1")).to_contain_text(job["id"])
    expect(page.locator("dd.error")).to_contain_text("kie_invalid_request")
    page.click("form[action$='/retry'] button")
    expect(page.locator(".flash")).to_contain_text("Retried")
    expect(page.locator("table").first).to_contain_text("retried by an operator")

    stack.wait(job["id"])  # the retry runs as a new Kie task
    page.reload()
    expect(page.locator("h1 .badge")).to_have_text("succeeded")
    shot = tmp_path / "dashboard-job.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshots: {tmp_path / 'dashboard-jobs.png'} {shot}")
    # The finished job's data can be erased from its page; the tombstone says so.
    page.click("form[action$='/erase'] button")
    expect(page.locator(".flash")).to_contain_text("Erased")
    expect(page.locator("#job-erased")).to_contain_text("erased")
    assert stack.api.get(f"/jobs/{job['id']}").json()["deleted"] is True
    # A test-mode key's job says so on its page.
    test_job = stack.insert_job(livemode=False, input={"prompt": "Tried in test mode"})
    page.goto(f"{stack.local.api_url}/admin/view/{test_job}")
    expect(page.locator("h1")).to_contain_text("test")
    page.close()


def test_usage_page_charts_credits_per_day_by_client(
    stack: Stack, browser: object, tmp_path: Path
) -> None:
    if stack.backend != EMBEDDED:
        pytest.skip("one browser run is enough")
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    done = stack.wait(stack.create(prompt="A lighthouse in fog, for the usage page")["id"])
    assert done["usage"]["credits_charged"] == 60  # Veo 3.1 Fast, 8 s at 720p

    page = browser.new_page(viewport={"width": 1366, "height": 860})
    page.goto(f"{stack.local.api_url}/admin")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("#kie-balance")).to_contain_text("credits")
    page.click("nav.top a[href='/admin/credits']")
    expect(page.locator("h1")).to_have_text("Usage")
    chart = page.locator("svg#usage-chart")
    expect(chart).to_be_visible()
    bars = chart.locator("rect")
    assert bars.count() >= 1
    # Each bar names its day, client and credits (shown on hover); today's bar is there.
    titles = " ".join(bars.locator("title").all_text_contents())
    assert "integration" in titles
    box = chart.bounding_box()
    assert box is not None
    assert box["width"] > 600  # a real drawing, not an empty element
    expect(page.locator("ul.legend")).to_contain_text("integration")
    expect(page.locator("#usage-table")).to_contain_text("integration")
    with page.expect_download() as download:
        page.click("#usage-csv")
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[0].startswith("client,jobs,credits_estimated")
    page.goto(f"{stack.local.api_url}/admin/view/{done['id']}")
    expect(page.locator("#job-usage")).to_contain_text("charged 60")
    shot = tmp_path / "dashboard-usage.png"
    page.goto(f"{stack.local.api_url}/admin/credits")
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    page.close()


def test_a_chain_and_the_models_page(stack: Stack, browser: object, tmp_path: Path) -> None:
    if stack.backend != EMBEDDED:
        pytest.skip("one browser run is enough")
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    first = stack.create(prompt=f"a kite #{uuid.uuid4().hex[:6]}", model="kling-2.6/text-to-video")
    assert stack.wait(first["id"])["status"] == "succeeded"
    second = stack.create(
        model="topaz/video-upscale", inputs=[{"role": "video", "job": first["id"]}]
    )
    page = browser.new_page(viewport={"width": 1366, "height": 860})
    page.goto(f"{stack.local.api_url}/admin")
    page.fill("input[name=token]", ADMIN_TOKEN)
    page.click("button[type=submit]")
    page.goto(f"{stack.local.api_url}/admin/view/{second['id']}")
    link = page.locator("#job-inputs a.chain")
    expect(link).to_have_text(first["id"])
    link.click()  # one step back along the chain
    expect(page.locator("h1")).to_contain_text(first["id"])
    page.goto(f"{stack.local.api_url}/admin/models")
    expect(page.locator("#models tbody tr").first).to_be_visible()
    expect(page.locator("#models")).to_contain_text("topaz/video-upscale")
    expect(page.locator("#models")).to_contain_text("97 %")  # Kie's published rate
    page.screenshot(path=str(tmp_path / "models.png"), full_page=False)
    print(f"screenshots: {tmp_path}")
