"""A person compares cells in the explorer: scatter, overlay, saved view, CSV export."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def matrix(project, user, django_capture_on_commit_callbacks):
    from lims import demo

    with django_capture_on_commit_callbacks(execute=False):
        demo.process_chain(project=project, user=user)
        demo.explorer_matrix(project=project, user=user)


def test_scatter_overlay_saved_view_and_csv(matrix, signed_in, tmp_path):
    from playwright.sync_api import expect

    page = signed_in("/cells/explorer/?x=subcycle_ratio_value&y=retention_c100_pct&color=recipe")
    expect(page.locator("#main-plot .main-svg").first).to_be_visible(timeout=20_000)
    # three recipes (1:1, 1:4, 1:8), one trace each; the two cells without cycling are left out
    assert page.locator("#main-plot .scatterlayer .trace").count() == 3
    page.screenshot(path=str(tmp_path / "scatter.png"))

    page.locator('input.pick[value="EXP-R4N20T400"]').check()
    page.wait_for_load_state()
    page.locator('input.pick[value="EXP-R1N20T400"]').check()
    page.wait_for_load_state()
    expect(page.locator("#capacity-overlay .main-svg").first).to_be_visible(timeout=20_000)
    assert page.locator("#capacity-overlay .scatterlayer .trace").count() == 2
    expect(page.locator("#voltage-overlay .main-svg").first).to_be_visible()

    page.fill("#view-name", "ratio vs retention")
    page.click("#save-view button[type=submit]")
    expect(page.locator("h1")).to_contain_text("ratio vs retention")
    saved_url = page.url
    assert "cell=EXP-R4N20T400" in saved_url and "cell=EXP-R1N20T400" in saved_url

    page.goto("about:blank")
    page = signed_in("/cells/explorer/")
    page.click("#save-view a:has-text('ratio vs retention')")
    expect(page.locator("h1")).to_contain_text("ratio vs retention")
    assert page.locator("#capacity-overlay .scatterlayer .trace").count() == 2

    with page.expect_download() as info:
        page.click("#export-csv")
    text = (info.value.path()).read_text()
    lines = text.strip().splitlines()
    assert lines[0].startswith("Cell,")
    assert len(lines) == 1 + 20  # header + the 18 matrix cells + the 2 demo cells
