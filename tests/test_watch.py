"""`compass watch` as an on-call team runs it: a real Alertmanager routes an alert to it, it
investigates against a real MCP server, and the answer waits in the memory; repeats start
nothing new, feedback from another shell lands while it runs, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from compass_tui.engine.request import parse_time

try:
    from tests.alertmanager_server import AlertmanagerServer, free_port
except ImportError:  # pragma: no cover - run from inside tests/
    from alertmanager_server import AlertmanagerServer, free_port  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]


def compass(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compass_tui.cli", *argv], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


class Stack:
    """A replay MCP server over a simulated incident, and `compass watch` configured to use it."""

    def __init__(self, bundle: Path, tmp: Path, extra: str = ""):
        self.bundle, self.tmp = bundle, tmp
        self.incident = json.loads((bundle / "incident.json").read_text())
        manifest = json.loads((bundle / "bundle.json").read_text())
        alert = self.incident["alerts"][0]
        baseline = parse_time(alert["startsAt"]) - parse_time(manifest["window"]["start"])
        self.mcp_port, self.port = free_port(), free_port()
        self.store = str(tmp / "compass.duckdb")
        self.config = tmp / "config.toml"
        self.config.write_text(
            f"baseline_s = {baseline}\n[mcp_servers.replay]\nurl = \"http://127.0.0.1:{self.mcp_port}/mcp\"\n{extra}"
        )
        self.log_path = tmp / "watch.log"

    def __enter__(self) -> "Stack":
        self.replay = subprocess.Popen([sys.executable, "-m", "compass_tui.cli", "replay", str(self.bundle),
                                        "--http", str(self.mcp_port)], stderr=subprocess.DEVNULL, cwd=ROOT)
        wait_port(self.mcp_port, self.replay)
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in __exit__
        self.watch = subprocess.Popen(
            [sys.executable, "-m", "compass_tui.cli", "--config", str(self.config), "--store", self.store,
             "watch", "--listen", f"127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        self.wait_log("event=listening", 60)
        return self

    def lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()

    def wait_log(self, needle: str, timeout: float, count: int = 1) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [line for line in self.lines() if needle in line]
            if len(hits) >= count:
                return hits
            if self.watch.poll() is not None:
                raise AssertionError(f"watch exited {self.watch.returncode}:\n" + "\n".join(self.lines()))
            time.sleep(0.2)
        raise AssertionError(f"no {needle!r} x{count} in the watch log after {timeout}s:\n" + "\n".join(self.lines()))

    def history(self) -> list[dict]:
        done = compass("--store", self.store, "history", "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def post(self, payload: dict | bytes, path: str = "/alertmanager") -> tuple[int, dict]:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def __exit__(self, *exc) -> None:
        for proc in (self.watch, self.replay):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.log.close()


def truth_of(bundle: Path) -> str:
    t = json.loads((bundle / "truth.json").read_text())["culprit"]
    return f"{t['fault']}@{t['service']}"


def test_a_real_alertmanager_alert_is_investigated_once_and_waits_in_the_memory(sim_bundle_factory, tmp_path):
    bundle = Path(sim_bundle_factory("db_connection_pool_exhaustion", 1))
    with Stack(bundle, tmp_path) as stack:
        with AlertmanagerServer(f"http://127.0.0.1:{stack.port}/alertmanager", tmp_path / "am") as am:
            alert = stack.incident["alerts"][0]
            sent = time.time()
            am.post_alert(alert["labels"], alert["annotations"], alert["startsAt"])
            deadline = time.monotonic() + 120
            items = []
            while time.monotonic() < deadline and not items:
                items = stack.history()
                time.sleep(0.5)
            latency = time.time() - sent
            assert items, "\n".join(stack.lines())
            print(f"alert -> history: {latency:.1f} s")
            [item] = items
            assert item["source"] == "watch" and item["alert"] == alert["labels"]["alertname"]
            assert item["top"] == truth_of(bundle)
            # Alertmanager repeats the notification (repeat_interval 4 s): nothing new starts.
            stack.wait_log("event=repeat", 60, count=2)
            assert len(stack.history()) == 1
            # From another shell, while watch runs: the engineer confirms.
            done = compass("--store", stack.store, "feedback", item["investigation_id"], "--confirm", item["top"])
            assert done.returncode == 0, done.stderr
            # What watch recorded carries its own timeline, for the post-mortem.
            done = compass("--store", stack.store, "report", item["investigation_id"], "--postmortem")
            assert done.returncode == 0, done.stderr
            assert "hypothesis raised:" in done.stdout and f"**Engineer confirmed** `{item['top']}`" in done.stdout
            # The alert resolves: recorded.
            am.post_alert(alert["labels"], alert["annotations"], alert["startsAt"],
                          ends_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1)))
            stack.wait_log("event=resolved", 60)
            [item] = stack.history()
            assert item["verdict"] == "confirmed" and item["alert_status"] == "resolved"
        stack.watch.send_signal(signal.SIGTERM)
        assert stack.watch.wait(timeout=60) == 0
        assert stack.lines()[-1].endswith("event=stopped")
        assert not any("Traceback" in line for line in stack.lines())


def test_webhooks_repeats_in_flight_and_bad_payloads(sim_bundle_factory, tmp_path):
    bundle = Path(sim_bundle_factory("bad_deploy", 1))
    got: list[dict] = []
    import http.server
    import threading

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    hook = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    extra = f"[watch]\nnotify_url = \"http://127.0.0.1:{hook.server_address[1]}/hook\"\n"
    try:
        with Stack(bundle, tmp_path, extra) as stack:
            payload = stack.incident
            assert stack.post(b"{not json")[0] == 400
            assert stack.post({"hello": 1})[0] == 400
            first = stack.post(payload)
            second = stack.post(payload)  # Alertmanager's repeat while the first still runs
            grafana = dict(payload, groupKey=payload["groupKey"])  # Grafana's webhook: same group
            third = stack.post(grafana, "/grafana")
            assert first[0] == 202 and first[1]["action"] == "investigating"
            assert second[1]["action"] == "none" and third[1]["action"] == "none"
            stack.wait_log("event=investigated", 120)
            assert stack.post(payload)[1]["why"] == "already investigated"
            stack.wait_log("event=notified", 30)
            [item] = stack.history()
            assert item["top"] == truth_of(bundle)
            [note] = got
            assert note["investigation_id"] == item["investigation_id"] and note["top_hypothesis"] == item["top"]
            assert item["top"] in note["text"] and 0 < note["confidence"] <= 1
            # A new group (another service) is a new investigation.
            other = json.loads(json.dumps(payload))
            other["groupKey"] = payload["groupKey"] + "-other"
            assert stack.post(other)[0] == 202
            stack.wait_log("event=investigated", 120, count=2)
            assert len(stack.history()) == 2
            stack.watch.send_signal(signal.SIGTERM)
            assert stack.watch.wait(timeout=60) == 0
    finally:
        hook.shutdown()


def test_sigterm_mid_investigation_records_what_it_has(sim_bundle_factory, tmp_path):
    bundle = Path(sim_bundle_factory("cache_failure", 1))
    with Stack(bundle, tmp_path) as stack:
        assert stack.post(stack.incident)[0] == 202
        stack.wait_log("event=started", 30)
        stack.watch.send_signal(signal.SIGTERM)
        assert stack.watch.wait(timeout=60) == 0
        lines = stack.lines()
        assert lines[-1].endswith("event=stopped")
        investigated = [line for line in lines if "event=investigated" in line]
        abandoned = [line for line in lines if "event=abandoned" in line]
        assert len(investigated) + len(abandoned) == 1  # finished (cut short) and recorded, or said so
        assert len(stack.history()) == len(investigated)


def test_watch_without_a_live_source_is_one_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    done = compass("--config", str(cfg), "--store", str(tmp_path / "s.duckdb"), "watch")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no live source configured" in done.stderr


@pytest.mark.skipif(os.environ.get("CI_NO_NETWORK_BIND") == "1", reason="cannot bind here")
def test_watch_on_a_port_in_use_is_one_line(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    cfg = tmp_path / "c.toml"
    cfg.write_text('[mcp_servers.x]\nurl = "http://127.0.0.1:9/mcp"\n')
    try:
        done = compass("--config", str(cfg), "--store", str(tmp_path / "s.duckdb"), "watch", "--listen",
                       f"127.0.0.1:{s.getsockname()[1]}")
    finally:
        s.close()
    assert done.returncode == 2
    assert "cannot listen on" in done.stderr and "Traceback" not in done.stderr
