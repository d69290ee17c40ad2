"""A bundle parsed in a child process while the command starts gives exactly what parsing it
in the command gives, and any trouble in the child only means the command parses it itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compass_tui.telemetry import preload
from compass_tui.telemetry.bundle import open_bundle
from compass_tui.telemetry.bundle_reader import BundleError
from tests.test_bundle_backend import T0, make_bundle

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the preload forks")


def _content(b) -> tuple:
    m = b._metrics  # noqa: SLF001
    return ([dict(x) for x in m.labels], m._t.tolist(), m._v.tolist(), b._streams,  # noqa: SLF001
            [(s.trace_id, s.span_id, s.attributes) for s in b._spans], sorted(b.degraded))  # noqa: SLF001


async def test_preloaded_bundle_is_the_same_as_parsed_in_process(tmp_path):
    root = make_bundle(tmp_path / "inc")
    plain = open_bundle(root)
    pre = preload.start(root, force=True)
    assert pre is not None and preload.claim(root) is pre
    assert set(pre.result()) == {"metrics.om", "logs.json", "traces.json"}
    loaded = open_bundle(root, preparsed=pre)
    try:
        assert _content(loaded) == _content(plain)
        r = await loaded.query_range('http_requests_total{code="500"}', T0, T0 + 600, 15)
        assert r.status == "ok" and r.series[0].v[-1] == 200.0
    finally:
        await plain.aclose()
        await loaded.aclose()


async def test_a_bundle_changed_after_the_child_read_it_is_parsed_again(tmp_path):
    root = make_bundle(tmp_path / "inc")
    pre = preload.start(root, force=True)
    assert pre is not None
    preload.claim(root)
    os.waitpid(pre.pid, 0)  # the child has parsed the bundle as it was and written it all
    text = (root / "metrics.om").read_text().replace("# EOF", f'up{{service="db"}} 1 {T0}\n# EOF')
    (root / "metrics.om").write_text(text)
    b = open_bundle(root, preparsed=pre)
    try:
        assert {"__name__": "up", "service": "db"} in b._metrics.labels  # noqa: SLF001
    finally:
        await b.aclose()


async def test_a_malformed_file_gives_the_same_error_as_without_the_child(tmp_path):
    root = make_bundle(tmp_path / "inc", metrics_om='ok 1 1\nbad{x="1" 2 3\n# EOF\n')
    with pytest.raises(BundleError) as plain:
        open_bundle(root)
    pre = preload.start(root, force=True)
    assert pre is not None and "metrics.om" not in pre.result()
    preload.claim(root)
    with pytest.raises(BundleError) as loaded:
        open_bundle(root, preparsed=pre)
    assert str(loaded.value) == str(plain.value)
    assert "metrics.om:2" in str(plain.value)


async def test_a_child_that_died_leaves_the_parsing_to_the_command(tmp_path):
    root = make_bundle(tmp_path / "inc")
    pre = preload.start(root, force=True)
    assert pre is not None
    preload.claim(root)
    os.kill(pre.pid, 9)
    b = open_bundle(root, preparsed=pre)
    try:
        assert b._metrics is not None and len(b._metrics.labels) == 4  # noqa: SLF001
    finally:
        await b.aclose()


def test_investigate_reports_the_same_with_and_without_the_preload(tmp_path):
    """As a user runs it: a fresh process, where the child really is forked first."""
    bundle = tmp_path / "b"
    subprocess.run([sys.executable, "-m", "compass_tui.sim", "--fault", "cpu_saturation", "--seed", "3",
                    "--services", "8", "--realism", "off", "--out", str(bundle)], check=True, capture_output=True)

    def run(env_value: str) -> dict:
        env = dict(os.environ, COMPASS_PRELOAD=env_value)
        out = subprocess.run([sys.executable, "-m", "compass_tui.cli", "investigate", "--bundle", str(bundle),
                              "--json", "--no-store"], capture_output=True, text=True, env=env, check=True)
        return json.loads(out.stdout)

    with_child, without = run("1"), run("0")
    ranked = lambda r: [(h["fault"], h["service"], h["confidence"]) for h in r["hypotheses"]]  # noqa: E731
    assert ranked(with_child) == ranked(without)
    assert ranked(with_child)[0][:2] == ("cpu_saturation", json.loads((bundle / "truth.json").read_text())["culprit"]["service"])
    assert with_child["suspects"] == without["suspects"]
