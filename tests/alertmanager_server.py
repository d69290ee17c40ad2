"""A real Alertmanager (Debian's ``prometheus-alertmanager``) on 127.0.0.1, routing every alert
to one webhook, for the tests of ``compass watch``.

    with AlertmanagerServer(webhook_url, tmp_path, repeat_interval="4s") as am:
        am.post_alert(labels, annotations, starts_at)

Skips, with the reason, when Alertmanager is not installed (``scripts/ensure-alertmanager``
installs it as root).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

try:
    from tests.prometheus_server import free_port, stop_process
except ImportError:  # pragma: no cover - run from inside tests/
    from prometheus_server import free_port, stop_process  # type: ignore[no-redef]

READY_TIMEOUT_S = 30.0


def binary() -> str | None:
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


class AlertmanagerServer:
    """Context manager: write a config routing to ``webhook_url``, start Alertmanager, yield it."""

    def __init__(self, webhook_url: str, workdir: Path, *, group_wait: str = "1s", group_interval: str = "2s",
                 repeat_interval: str = "4s", group_by: tuple[str, ...] = ("alertname", "service")):
        self.webhook_url = webhook_url
        self.workdir = Path(workdir)
        self.route = dict(group_wait=group_wait, group_interval=group_interval, repeat_interval=repeat_interval,
                          group_by=list(group_by))
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def __enter__(self) -> "AlertmanagerServer":
        exe = binary()
        if exe is None:
            pytest.skip("prometheus-alertmanager not installed (scripts/ensure-alertmanager installs it as root); "
                        "watch tests with a real Alertmanager skipped")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "alertmanager.yml"
        cfg.write_text(json.dumps({  # JSON is YAML
            "route": {"receiver": "compass", **self.route},
            "receivers": [{"name": "compass", "webhook_configs": [
                {"url": self.webhook_url, "send_resolved": True, "max_alerts": 0}]}],
        }))
        port, cluster = free_port(), free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(self.workdir / "alertmanager.log", "wb")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [exe, f"--config.file={cfg}", f"--storage.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", f"--cluster.listen-address=127.0.0.1:{cluster}",
             "--cluster.advertise-address=127.0.0.1:%d" % cluster],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"alertmanager not ready after {READY_TIMEOUT_S}s")

    def log(self) -> str:
        return (self.workdir / "alertmanager.log").read_text(errors="replace")

    def post_alert(self, labels: dict[str, str], annotations: dict[str, str], starts_at: str,
                   ends_at: str | None = None) -> None:
        """Fire (or, with ``ends_at`` in the past, resolve) an alert through Alertmanager's API v2."""
        alert = {"labels": labels, "annotations": annotations, "startsAt": starts_at,
                 "generatorURL": "http://prometheus.test/graph"}
        if ends_at:
            alert["endsAt"] = ends_at
        req = urllib.request.Request(f"{self.url}/api/v2/alerts", data=json.dumps([alert]).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200

    def __exit__(self, *exc) -> None:
        stop_process(self.proc)
        self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
