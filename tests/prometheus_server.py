"""A real Prometheus loaded with given OpenMetrics text, for live tests.

    with PrometheusServer(openmetrics_text, tmp_path) as base_url:
        requests to f"{base_url}/api/v1/query_range?..."

or as a pytest fixture factory::

    def test_x(prometheus_factory):
        url = prometheus_factory(openmetrics_text)

(add ``from tests.prometheus_server import prometheus_factory  # noqa: F401`` to the test
module, or to a conftest). Tests using it skip, with the reason, when ``prometheus`` or
``promtool`` is not installed. The data is backfilled with ``promtool tsdb
create-blocks-from openmetrics``; the server listens on 127.0.0.1 on a free port and is
stopped (terminate, then kill) on exit.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

READY_TIMEOUT_S = 30.0


def missing_binaries() -> str | None:
    """Why a live Prometheus cannot run here, or None when it can."""
    missing = [b for b in ("prometheus", "promtool") if shutil.which(b) is None]
    if missing:
        return (f"{' and '.join(missing)} not installed (apt-get install prometheus gives both); "
                "live Prometheus tests skipped")
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc: subprocess.Popen | None) -> None:
    """Terminate a server process, killing it when it does not exit within 10 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class PrometheusServer:
    """Context manager: backfill OpenMetrics text into a fresh TSDB, serve it, yield the URL."""

    def __init__(self, openmetrics: str, workdir: str | Path | None = None):
        self.openmetrics = openmetrics
        self._workdir = Path(workdir) if workdir is not None else None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def __enter__(self) -> str:
        reason = missing_binaries()
        if reason:
            pytest.skip(reason)
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="prom-")
            root = Path(self._tmp.name)
        else:
            root = self._workdir
            root.mkdir(parents=True, exist_ok=True)
        data, om, cfg, log = root / "data", root / "metrics.om", root / "prometheus.yml", root / "prometheus.log"
        om.write_text(self.openmetrics)
        cfg.write_text("global: {scrape_interval: 1m}\n")
        load = subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
            capture_output=True, text=True, timeout=120,
        )
        if load.returncode != 0:
            raise RuntimeError(f"promtool could not load {om}: {load.stderr.strip() or load.stdout.strip()}")
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={data}",
             "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready(log)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.base_url

    def _wait_ready(self, log: Path) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"prometheus not ready after {READY_TIMEOUT_S}s at {self.base_url}")

    def __exit__(self, *exc) -> None:
        stop_process(self.proc)
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def api_get(base_url: str, path: str, **params) -> dict:
    """GET a Prometheus HTTP API path; returns the ``data`` member, or raises RuntimeError
    carrying Prometheus's error message."""
    url = f"{base_url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.load(resp)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    if body.get("status") != "success":
        raise RuntimeError(f"{body.get('errorType')}: {body.get('error')}")
    return body["data"]


@pytest.fixture
def prometheus_factory(tmp_path):
    """Fixture factory: ``prometheus_factory(openmetrics_text) -> base_url``; every server
    started is stopped at the end of the test."""
    servers: list[PrometheusServer] = []

    def start(openmetrics: str) -> str:
        server = PrometheusServer(openmetrics, tmp_path / f"prom{len(servers)}")
        servers.append(server)
        return server.__enter__()

    yield start
    for server in servers:
        server.__exit__(None, None, None)
