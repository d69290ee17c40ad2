"""``compass watch``: receive Alertmanager (and Grafana alerting) webhooks and investigate each
new firing alert group at once, so the answer is waiting when the engineer opens COMPASS.

A small ASGI app served by uvicorn takes ``POST /alertmanager`` (and ``/grafana``); each
notification is one alert group. A group seen for the first time, or firing again after it
resolved, is queued; a bounded pool of workers investigates queued groups through the
application service, against the configured live sources, and records the result in the
memory. Repeat notifications and groups already being investigated start nothing new;
``resolved`` is recorded. One log line per event. SIGTERM stops taking webhooks, tells the
investigations in flight to rank what they have, records them, and exits.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable

from compass_tui import service
from compass_tui.models import InvestigationRequest

DEFAULT_LISTEN = "127.0.0.1:9095"
MAX_BODY_BYTES = 4 * 1024 * 1024
"""A webhook body larger than this is refused (Alertmanager's are a few KB)."""
NOTIFY_TIMEOUT_S = 5.0
STOP_GRACE_S = 20.0
"""After SIGTERM, how long investigations in flight may take to rank what they have."""

log = logging.getLogger("compass.watch")


class WatchError(Exception):
    """watch cannot start; the message is one line."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, or ``PORT``) -> (host, port)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        n = int(port)
    except ValueError:
        raise WatchError(f"--listen: expected HOST:PORT, got {text!r}") from None
    if not 0 <= n <= 65535:
        raise WatchError(f"--listen: port {n} is out of range")
    return host, n


def group_key(payload: dict[str, Any]) -> str:
    """Alertmanager's ``groupKey``; without one, the receiver and the group's labels."""
    key = payload.get("groupKey")
    if isinstance(key, str) and key:
        return key
    labels = payload.get("groupLabels") or payload.get("commonLabels") or {}
    if not labels:
        alerts = [a for a in payload.get("alerts") or [] if isinstance(a, dict)]
        labels = {"fingerprints": ",".join(sorted(str(a.get("fingerprint", "")) for a in alerts))}
    return f"{payload.get('receiver', '')}:{json.dumps(labels, sort_keys=True)}"


def group_status(payload: dict[str, Any]) -> str:
    """``firing`` when any alert of the group fires, else ``resolved``."""
    alerts = [a for a in payload.get("alerts") or [] if isinstance(a, dict)]
    if any(a.get("status", "firing") == "firing" for a in alerts):
        return "firing"
    if alerts or payload.get("status") == "resolved":
        return "resolved"
    return str(payload.get("status") or "firing")


@dataclass
class Job:
    """A queued alert group."""

    key: str
    payload: dict[str, Any]
    received: float
    """``time.time()`` when the notification arrived."""
    request: InvestigationRequest
    budget: Any = None


@dataclass
class Watcher:
    """The queue, the workers and the bookkeeping of ``compass watch``."""

    config: Any
    store_path: str | None = None
    concurrency: int = 2
    queue_size: int = 100
    notify_url: str | None = None
    investigate: service.Investigate | None = None
    """The engine entry point (None: the real one)."""
    emit: Callable[[str], None] = field(default=lambda line: log.info(line))
    active: set[str] = field(default_factory=set)
    """Groups queued or being investigated."""
    running: dict[str, Job] = field(default_factory=dict)
    stopping: bool = False

    def __post_init__(self) -> None:
        from compass_tui.store import Store

        self.queue: asyncio.Queue[Job] = asyncio.Queue(maxsize=self.queue_size)
        self.store = Store.open(self.store_path)
        self.workers: list[asyncio.Task] = []

    def start(self) -> None:
        """Start the workers (inside the running event loop)."""
        self.workers = [asyncio.create_task(self._worker(n)) for n in range(self.concurrency)]

    # ------------------------------------------------------------------ webhooks

    async def notified(self, payload: Any, kind: str = "alertmanager") -> tuple[int, dict[str, Any]]:
        """Handle one webhook: (HTTP status, JSON answer)."""
        from compass_tui.engine.request import RequestError, request_from_alert

        if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
            self.emit(f"event=rejected source={kind} reason=\"not a webhook payload (no alerts[])\"")
            return 400, {"error": "expected an Alertmanager or Grafana webhook payload with alerts[]"}
        if self.stopping:
            return 503, {"error": "compass watch is stopping"}
        key = group_key(payload)
        status = group_status(payload)
        labels = {**(payload.get("commonLabels") or {}), **(payload.get("groupLabels") or {})}
        alertname = labels.get("alertname")
        from compass_tui.engine.request import alert_service

        svc = alert_service(labels)
        short = _short(key)
        if status == "firing" and key in self.active:
            await asyncio.to_thread(self.store.alert_group_seen, key, status, alertname=alertname, service=svc)
            self.emit(f"event=repeat group={short} alert={alertname} state=in-flight action=none")
            return 200, {"group": key, "action": "none", "why": "already being investigated"}
        if status == "firing":
            self.active.add(key)  # claimed before any await, so a concurrent repeat sees it
        try:
            row = await asyncio.to_thread(self.store.alert_group_seen, key, status, alertname=alertname, service=svc)
        except Exception as e:
            self.active.discard(key)
            self.emit(f"event=error group={short} alert={alertname} reason=\"memory: {_one_line(e)}\"")
            return 503, {"error": f"memory: {_one_line(e)}"}
        if status == "resolved":
            self.emit(f"event=resolved group={short} alert={alertname} investigation={row['investigation_id'] or '-'}")
            return 200, {"group": key, "action": "recorded resolved"}
        # A firing group whose episode has no investigation and none running (say, watch was
        # killed mid-way, or the sources were down) is investigated on its next notification.
        if not row["new"] and row["investigation_id"] is not None:
            self.active.discard(key)
            self.emit(f"event=repeat group={short} alert={alertname} investigation={row['investigation_id']} action=none")
            return 200, {"group": key, "action": "none", "why": "already investigated", "investigation_id": row["investigation_id"]}
        try:
            request = request_from_alert(payload, baseline_s=self.config.baseline_s, now=time.time())
        except RequestError as e:
            self.active.discard(key)
            self.emit(f"event=rejected group={short} alert={alertname} reason=\"{e}\"")
            return 400, {"error": str(e)}
        job = Job(key=key, payload=payload, received=time.time(), request=request)
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.active.discard(key)
            self.emit(f"event=queue-full group={short} alert={alertname} queued={self.queue.qsize()} action=retry-later")
            return 503, {"error": "queue full; Alertmanager will retry"}
        self.emit(f"event=queued group={short} alert={alertname} service={request.service or '-'} "
                  f"queued={self.queue.qsize()} running={len(self.running)}")
        return 202, {"group": key, "action": "investigating"}

    # ------------------------------------------------------------------ workers

    async def _worker(self, n: int) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self._investigate(job)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # one bad investigation must not stop the worker
                self.emit(f"event=error group={_short(job.key)} reason=\"{_one_line(e)}\"")
            finally:
                self.running.pop(job.key, None)
                self.active.discard(job.key)
                self.queue.task_done()

    async def _investigate(self, job: Job) -> None:
        from compass_tui.engine.deps import Budget

        options = service.options_for_config(self.config, store_path=self.store_path)
        options.investigate = self.investigate
        options.source = service.Source("request", None, f"alert {job.request.alertname or ''}".strip(),
                                        request=job.request)
        job.budget = Budget(**vars(options.budget)) if options.budget is not None else Budget()
        if self.stopping:
            job.budget.deadline_s = 0.0
        self.running[job.key] = job
        short = _short(job.key)
        self.emit(f"event=started group={short} alert={job.request.alertname} service={job.request.service or '-'} "
                  f"waited={time.time() - job.received:.1f}s")
        opened = await service.open_source(options)
        try:
            if opened.backend is None:
                self.emit(f"event=failed group={short} alert={job.request.alertname} "
                          f"reason=\"{opened.notes[0] if opened.notes else 'no source to query'}\"")
                return
            report, memory_error = await service.run_investigation(options, opened, self.store, budget=job.budget)
        finally:
            await service.close_backend(opened.backend)
        if report is None:
            self.emit(f"event=failed group={short} alert={job.request.alertname} reason=\"no report\"")
            return
        if memory_error:
            self.emit(f"event=error group={short} investigation={report.investigation_id} reason=\"{memory_error}\"")
        else:
            await asyncio.to_thread(self.store.alert_group_investigated, job.key, report.investigation_id)
        top = next((h for h in report.hypotheses if h.status != "disproven"), None)
        # done before it is said: a repeat that follows the line is "already investigated"
        self.running.pop(job.key, None)
        self.active.discard(job.key)
        self.emit(
            f"event=investigated group={short} alert={job.request.alertname} investigation={report.investigation_id} "
            f"top={top.fault + '@' + top.service if top else '-'} confidence={top.confidence if top else 0:.2f} "
            f"took={time.time() - job.received:.1f}s queries={sum(c.queries for c in report.cost.by_agent.values())}"
            + (" cut-short=stopping" if self.stopping else "")
        )
        if self.notify_url:
            await self._notify(job, report, top)

    async def _notify(self, job: Job, report: Any, top: Any) -> None:
        """POST a short JSON (Slack-compatible ``text``) to the configured webhook."""
        alert = job.request.alertname or job.request.title
        cause = f"{top.fault}@{top.service}" if top else None
        body = {
            "alert": alert,
            "service": job.request.service,
            "top_hypothesis": cause,
            "confidence": round(top.confidence, 3) if top else None,
            "investigation_id": report.investigation_id,
            "text": (f"COMPASS: {alert}: most likely {cause} ({top.confidence:.0%})" if top
                     else f"COMPASS: {alert}: no hypothesis survived disproof")
                    + f" · `compass` to open {report.investigation_id}",
        }
        data = json.dumps(body).encode()

        def post() -> int:
            req = urllib.request.Request(self.notify_url, data=data, headers={"Content-Type": "application/json"},
                                         method="POST")
            with urllib.request.urlopen(req, timeout=NOTIFY_TIMEOUT_S) as resp:
                return resp.status

        try:
            code = await asyncio.to_thread(post)
            self.emit(f"event=notified investigation={report.investigation_id} status={code}")
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            self.emit(f"event=notify-failed investigation={report.investigation_id} reason=\"{_one_line(e)}\"")

    # ------------------------------------------------------------------ stopping

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop: investigations in flight rank what they have now and are recorded; queued
        groups not yet started are left for their next notification."""
        self.stopping = True
        for job in list(self.running.values()):
            if job.budget is not None:
                job.budget.deadline_s = 0.0  # the engine stops checking and ranks what it has
        dropped = []
        while not self.queue.empty():
            job = self.queue.get_nowait()
            self.queue.task_done()
            self.active.discard(job.key)
            dropped.append(job)
        for job in dropped:
            self.emit(f"event=not-started group={_short(job.key)} alert={job.request.alertname} "
                      "reason=stopping (investigated on its next notification)")
        in_flight = [w for w in self.workers]
        if self.running:
            self.emit(f"event=stopping running={len(self.running)} grace={grace_s:g}s")
            deadline = time.monotonic() + grace_s
            while self.running and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        for w in in_flight:
            w.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)
        for job in list(self.running.values()):
            self.emit(f"event=abandoned group={_short(job.key)} alert={job.request.alertname} "
                      "reason=\"did not finish within the grace period\"")
        self.store.close()


def _short(key: str) -> str:
    """A group key short enough for a log line, still telling groups apart."""
    import hashlib

    return hashlib.sha1(key.encode()).hexdigest()[:10]


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


# ---------------------------------------------------------------------- HTTP


def asgi_app(watcher: Watcher):
    """The webhook receiver: POST /alertmanager, POST /grafana, GET /healthz."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/") or "/", scope["method"]
        if method == "GET" and path in ("/healthz", "/"):
            return await _answer(send, 200, {"ok": True, "queued": watcher.queue.qsize(),
                                             "running": len(watcher.running)})
        if path not in ("/alertmanager", "/grafana", "/api/v1/alerts"):
            return await _answer(send, 404, {"error": "POST webhooks to /alertmanager or /grafana"})
        if method != "POST":
            return await _answer(send, 405, {"error": "POST only"})
        body = bytearray()
        while True:
            msg = await receive()
            body.extend(msg.get("body", b""))
            if len(body) > MAX_BODY_BYTES:
                return await _answer(send, 413, {"error": "payload too large"})
            if not msg.get("more_body"):
                break
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            watcher.emit(f"event=rejected source={path.strip('/')} reason=\"body is not JSON\"")
            return await _answer(send, 400, {"error": "body is not JSON"})
        code, answer = await watcher.notified(payload, "grafana" if path == "/grafana" else "alertmanager")
        return await _answer(send, code, answer)

    return app


async def _answer(send, code: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": code,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def serve(watcher: Watcher, host: str, port: int, *, ready: Callable[[str], None] | None = None) -> None:
    """Serve webhooks until SIGTERM or SIGINT, then stop the watcher cleanly."""
    import uvicorn

    class _Server(uvicorn.Server):
        def install_signal_handlers(self) -> None:  # older uvicorn
            pass

        def capture_signals(self):  # newer uvicorn: our own handlers below decide
            import contextlib

            return contextlib.nullcontext()

    config = uvicorn.Config(asgi_app(watcher), host=host, port=port, log_level="warning", lifespan="off",
                            access_log=False)
    server = _Server(config)
    loop = asyncio.get_running_loop()
    got: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        got.append(sig.name)
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    import socket

    # Bind here rather than in uvicorn, so a port in use is one line, not a traceback.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        await watcher.stop(0)
        raise WatchError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    watcher.start()
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    if serving.done():
        await watcher.stop(0)
        raise WatchError(f"cannot serve on {host}:{port}")
    bound = sock.getsockname()
    watcher.emit(f"event=listening address=http://{bound[0]}:{bound[1]} endpoints=/alertmanager,/grafana "
                 f"concurrency={watcher.concurrency} store={watcher.store.path}")
    if ready is not None:
        ready(f"{bound[0]}:{bound[1]}")
    await serving
    watcher.emit(f"event=signal name={got[0] if got else 'stop'} action=stopping")
    await watcher.stop()
    watcher.emit("event=stopped")


def setup_logging(log_file: str | None = None) -> None:
    """One line per event on stderr (journald adds its own timestamp under systemd)."""
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s compass-watch %(message)s", "%Y-%m-%dT%H:%M:%S%z"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False
    logging.getLogger("uvicorn.error").handlers[:] = [handler]
