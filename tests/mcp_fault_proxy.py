"""An MCP fault proxy: a stdio program between COMPASS and a real MCP server that, after N
tool calls have been answered, breaks the way real servers break.

    python tests/mcp_fault_proxy.py --mode MODE --after N [--log FILE] -- SERVER_CMD [ARGS...]

Modes (the first N ``tools/call`` requests pass through untouched; then, for ``--count``
calls or for good):

- ``pass``: nothing happens (the reference run);
- ``die``: the server exits (status 1) when the next call arrives, saying so on stderr;
- ``hang``: the server stops answering anything and ignores its stdin closing;
- ``garbage``: each later call is answered with lines that are not JSON-RPC (an HTML error
  page, a stray log line), never with its response;
- ``error``: each later call gets a JSON-RPC error, or (every other one) a tool error result;
- ``huge``: each later call's result is replaced by a valid but huge Prometheus answer
  (``--huge-bytes``, default 4 MB).

Everything else (initialize, tools/list, notifications) passes through both ways. The real
server's stderr is the proxy's stderr. ``--log`` gets one line per tool call: its number,
tool and what the proxy did with it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import threading
import time

MODES = ("pass", "die", "hang", "garbage", "error", "huge")


@functools.lru_cache(maxsize=2)
def huge_payload(size: int) -> str:
    """A Prometheus range result of about ``size`` bytes: many series, all well formed."""
    series = []
    total = 0
    i = 0
    while total < size:
        item = {"metric": {"__name__": "padding", "pod": f"pod-{i}"}, "values": [[1700000000 + 15 * k, "1"] for k in range(40)]}
        total += len(json.dumps(item))
        series.append(item)
        i += 1
    return json.dumps({"resultType": "matrix", "result": series})


@functools.lru_cache(maxsize=2)
def huge_text(size: int) -> str:
    """The huge payload as a JSON string literal."""
    return json.dumps(huge_payload(size))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--after", type=int, default=0, help="tool calls answered normally before the fault")
    p.add_argument("--count", type=int, default=0, help="faulted calls before it behaves again (0: no end)")
    p.add_argument("--huge-bytes", type=int, default=4_000_000)
    p.add_argument("--log")
    p.add_argument("server", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.server[1:] if a.server[:1] == ["--"] else a.server
    if not cmd:
        p.error("no server command after --")

    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    out = sys.stdout.buffer
    out_lock = threading.Lock()
    state = {"calls": 0, "hung": False}
    faulted: set = set()  # ids of calls whose answers the proxy replaces (huge)
    log = open(a.log, "a", encoding="utf-8") if a.log else None  # noqa: SIM115 - lives as long as the proxy

    def note(text: str) -> None:
        if log is not None:
            log.write(f"{time.time():.3f} {text}\n")
            log.flush()

    def write(line: bytes) -> None:
        with out_lock:
            if state["hung"]:
                return
            out.write(line if line.endswith(b"\n") else line + b"\n")
            out.flush()

    def answer(msg_id, result=None, error=None) -> None:
        body = {"jsonrpc": "2.0", "id": msg_id}
        body.update({"error": error} if error is not None else {"result": result})
        write(json.dumps(body).encode())

    def from_server() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if state["hung"]:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and msg.get("id") in faulted and isinstance(msg.get("result"), dict):
                faulted.discard(msg["id"])
                # the server's own answer with its data replaced, text and structured alike, so
                # it stays valid for the tool's output schema (assembled as text: it is big)
                data = huge_payload(a.huge_bytes)
                structured = f',"structuredContent":{data}' if "structuredContent" in msg["result"] else ""
                write((f'{{"jsonrpc":"2.0","id":{json.dumps(msg["id"])},"result":{{"content":[{{"type":"text","text":'
                       f'{huge_text(a.huge_bytes)}}}]{structured},"isError":false}}}}').encode())
                continue
            write(line)

    threading.Thread(target=from_server, daemon=True).start()
    assert child.stdin is not None
    for line in sys.stdin.buffer:
        try:
            msg = json.loads(line)
        except ValueError:
            msg = None
        if isinstance(msg, dict) and msg.get("method") == "tools/call":
            state["calls"] += 1
            n = state["calls"]
            tool = (msg.get("params") or {}).get("name")
            if a.mode != "pass" and n > a.after and (not a.count or n <= a.after + a.count):
                note(f"call {n} {tool}: {a.mode}")
                if a.mode == "die":
                    child.kill()
                    child.wait()
                    print(f"fault proxy: the server exits at call {n} ({tool})", file=sys.stderr, flush=True)
                    os._exit(1)
                if a.mode == "hang":
                    state["hung"] = True
                    # a hung server answers nothing and ignores its stdin closing
                    while True:
                        time.sleep(3600)
                if a.mode == "garbage":
                    write(b"<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>")
                    write(f"level=info msg=\"handled {tool}\" call={n}".encode())
                    continue
                if a.mode == "error":
                    if n % 2:
                        answer(msg["id"], error={"code": -32603, "message": "upstream Prometheus unavailable: connection refused"})
                    else:
                        answer(msg["id"], {"content": [{"type": "text", "text": "Error: Prometheus returned 503 Service Unavailable"}],
                                           "isError": True})
                    continue
                if a.mode == "huge":
                    faulted.add(msg["id"])
            else:
                note(f"call {n} {tool}: passed")
        try:
            child.stdin.write(line)
            child.stdin.flush()
        except BrokenPipeError:
            break
    # the client closed our stdin: close the server's and let it exit
    try:
        child.stdin.close()
    except OSError:
        pass
    try:
        return child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        return 0


if __name__ == "__main__":
    sys.exit(main())
