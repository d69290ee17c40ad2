"""In the app: `e` writes the post-mortem beside the JSON report; a correction to a cause
outside the catalog offers a draft runbook, and `D` saves it to the personal folder."""

from __future__ import annotations

import pytest
from test_tui_app import notices, screen_text, settle
from test_tui_support import parse, scripted, write_bundle

from compass_tui.runbooks import load_file
from compass_tui.tui.app import build_app
from compass_tui.tui.screens.verdict import ActualScreen


@pytest.fixture(autouse=True)
def _own_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


async def test_export_writes_the_postmortem(tmp_path):
    bundle = write_bundle(tmp_path / "bundle")
    app = build_app(parse("--bundle", str(bundle), "--store", str(tmp_path / "m.duckdb")), investigate=scripted())
    app.options.export_dir = tmp_path
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("c", "e")
        await pilot.pause()
        md = tmp_path / "compass-inv-2025-09-08T18-13-27Z-checkout-test.postmortem.md"
        assert str(md) in notices(app)
    text = md.read_text()
    assert "# Post-incident review" in text and "## Timeline (UTC)" in text and "## Action items to review" in text
    assert "**Engineer confirmed** `db_connection_pool_exhaustion@payments`" in text
    assert "hikaricp_connections_active" in text
    assert "hypothesis raised: `db_connection_pool_exhaustion@payments`" in text  # the app kept its timeline


async def test_correction_outside_the_catalog_offers_a_draft_runbook(tmp_path):
    bundle = write_bundle(tmp_path / "bundle")
    app = build_app(parse("--bundle", str(bundle), "--store", str(tmp_path / "m.duckdb")), investigate=scripted())
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ActualScreen)
        await pilot.press(*"other:pool-leak@payments", "enter")
        await pilot.pause()
        await pilot.press("enter")  # no note
        await pilot.pause()
        assert "press D to save" in screen_text(app) or app.investigation.correction == ("other:pool-leak", "payments")
        await pilot.press("D")
        await pilot.pause()
        assert "Draft runbook written to" in notices(app)
    drafts = list((tmp_path / "config" / "compass" / "runbooks").glob("*.toml"))
    assert len(drafts) == 1
    rb = load_file(drafts[0])
    assert rb.draft and rb.fault == "other:pool-leak" and rb.service == "payments"
    assert any("hikaricp_connections_active" in q.text for q in rb.queries)
