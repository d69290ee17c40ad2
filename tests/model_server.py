"""A scripted model server on 127.0.0.1 that speaks the OpenAI chat-completions API (plain
and SSE streaming with usage in the final chunk, tool calls) and Ollama's ``/api/chat``
(plain and NDJSON streaming), for tests and benchmarks that reach it through litellm over
real HTTP. It also misbehaves on request: hangs, 429, HTTP 500, invalid JSON.

Replies come from a script: a callable ``(request_json, path) -> Scripted`` (or a list used
in order). Every request body is kept, so tests can check what was sent.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Scripted:
    """One reply: text and/or tool calls with the usage to report, or a misbehaviour."""

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """Each ``{"name": ..., "arguments": {...}}``."""
    prompt_tokens: int = 100
    completion_tokens: int = 20
    report_usage: bool = True
    status: int = 200
    hang_s: float = 0.0
    garbage: bool = False


Script = Callable[[dict[str, Any], str], Scripted]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that gave up on a hang: nothing to report
        pass


class ModelServer:
    """Start with ``with ModelServer(script) as srv:``; ``srv.base`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, script: Script | list[Scripted]):
        if isinstance(script, list):
            replies = list(script)

            def nxt(_req, _path, replies=replies):
                return replies.pop(0) if len(replies) > 1 else replies[0]

            self.script: Script = nxt
        else:
            self.script = script
        self.requests: list[dict[str, Any]] = []
        self.raw: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.httpd = _QuietServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if "messages" in r]

    def _handler(self):
        server = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):  # quiet
                pass

            def _json(self, code: int, obj: Any) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/api/tags"):
                    return self._json(200, {"models": [{"name": "llama3.1:latest", "model": "llama3.1:latest"}]})
                if self.path.rstrip("/").endswith("/models"):
                    return self._json(200, {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model"}]})
                self._json(404, {"error": "not found"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                try:
                    req = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    req = {}
                if self.path.startswith("/api/show"):
                    return self._json(200, {"modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
                                            "details": {"family": "llama"}, "model_info": {},
                                            "capabilities": ["completion", "tools"]})
                with server._lock:
                    server.requests.append(req)
                    server.raw.append(raw)
                    server.headers.append(dict(self.headers))
                reply = server.script(req, self.path)
                if reply.hang_s:
                    time.sleep(reply.hang_s)
                if reply.status != 200:
                    return self._json(reply.status, {"error": {"message": f"scripted HTTP {reply.status}",
                                                               "type": "server_error", "code": reply.status}})
                if reply.garbage:
                    body = b"<html>this is not json {"
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if self.path.startswith("/api/chat"):
                    return self._ollama(req, reply)
                return self._openai(req, reply)

            # ------------------------------------------------ OpenAI chat completions
            def _openai(self, req, reply: Scripted):
                model = req.get("model", "gpt-4o-mini")
                usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                         "total_tokens": reply.prompt_tokens + reply.completion_tokens}
                tcs = [{"id": f"call_{i}", "type": "function",
                        "function": {"name": t["name"], "arguments": json.dumps(t.get("arguments", {}))}}
                       for i, t in enumerate(reply.tool_calls)]
                if not req.get("stream"):
                    msg: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
                    if tcs:
                        msg["tool_calls"] = tcs
                    body = {"id": "chatcmpl-scripted", "object": "chat.completion", "created": int(time.time()),
                            "model": model, "choices": [{"index": 0, "message": msg,
                                                         "finish_reason": "tool_calls" if tcs else "stop"}]}
                    if reply.report_usage:
                        body["usage"] = usage
                    return self._json(200, body)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

                def send(obj):
                    self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
                    self.wfile.flush()

                send({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
                text = reply.content
                for i in range(0, len(text), 12):
                    send({**base, "choices": [{"index": 0, "delta": {"content": text[i:i + 12]}, "finish_reason": None}]})
                for i, tc in enumerate(tcs):
                    send({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                          "function": {"name": tc["function"]["name"], "arguments": ""}}]}, "finish_reason": None}]})
                    args = tc["function"]["arguments"]
                    for j in range(0, len(args), 16):
                        send({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": args[j:j + 16]}}]},
                              "finish_reason": None}]})
                send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tcs else "stop"}]})
                if reply.report_usage and (req.get("stream_options") or {}).get("include_usage"):
                    send({**base, "choices": [], "usage": usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            # ------------------------------------------------ Ollama /api/chat
            def _ollama(self, req, reply: Scripted):
                model = req.get("model", "llama3.1")
                now = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
                msg: dict[str, Any] = {"role": "assistant", "content": reply.content}
                if reply.tool_calls:
                    msg["tool_calls"] = [{"function": {"name": t["name"], "arguments": t.get("arguments", {})}}
                                         for t in reply.tool_calls]
                final = {"model": model, "created_at": now, "done": True, "done_reason": "stop",
                         "total_duration": 1_000_000, "load_duration": 1000, "eval_duration": 500_000,
                         "prompt_eval_duration": 100_000}
                if reply.report_usage:
                    final.update({"prompt_eval_count": reply.prompt_tokens, "eval_count": reply.completion_tokens})
                if req.get("stream") is False:
                    return self._json(200, {**final, "message": msg})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Connection", "close")
                self.end_headers()
                text = reply.content
                for i in range(0, len(text), 12):
                    line = {"model": model, "created_at": now, "message": {"role": "assistant", "content": text[i:i + 12]}, "done": False}
                    self.wfile.write(json.dumps(line).encode() + b"\n")
                    self.wfile.flush()
                if reply.tool_calls:
                    line = {"model": model, "created_at": now, "message": {"role": "assistant", "content": "",
                            "tool_calls": msg["tool_calls"]}, "done": False}
                    self.wfile.write(json.dumps(line).encode() + b"\n")
                self.wfile.write(json.dumps({**final, "message": {"role": "assistant", "content": ""}}).encode() + b"\n")
                self.wfile.flush()
                self.close_connection = True

        return H
