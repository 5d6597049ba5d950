"""A local OpenAI-compatible chat completions endpoint, so that ``ChatOpenAI`` makes real HTTP
calls and LangChain parses real response shapes (usage, streaming usage chunks, tool calls,
OpenRouter's ``usage.cost``)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    content: str = "Hello from the stub."
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = field(
        default_factory=lambda: {"prompt_tokens": 21, "completion_tokens": 7, "total_tokens": 28}
    )
    model: str = "gpt-4o-mini-2024-07-18"
    finish_reason: str | None = None
    status: int = 200


class OpenAIServer:
    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def start(self) -> OpenAIServer:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                stub.requests.append(body)
                reply = stub.replies.popleft() if stub.replies else Reply()
                if reply.status != 200:
                    payload = json.dumps({"error": {"message": "stub failure", "type": "server_error"}}).encode()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._complete(reply)

            def _complete(self, reply: Reply) -> None:
                message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
                if reply.tool_calls:
                    message["tool_calls"] = [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
                        }
                        for c in reply.tool_calls
                    ]
                finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
                data: dict[str, Any] = {
                    "id": "chatcmpl-stub123",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": reply.model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                }
                if reply.usage is not None:
                    data["usage"] = reply.usage
                payload = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _stream(self, body: dict[str, Any], reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                base = {
                    "id": "chatcmpl-stream123",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": reply.model,
                }

                def send(chunk: dict[str, Any]) -> None:
                    self.wfile.write(f"data: {json.dumps({**base, **chunk})}\n\n".encode())
                    self.wfile.flush()

                send({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
                for i, call in enumerate(reply.tool_calls):
                    send(
                        {
                            "choices": [
                                {
                                    "index": 0,
                                    "finish_reason": None,
                                    "delta": {
                                        "tool_calls": [
                                            {
                                                "index": i,
                                                "id": call["id"],
                                                "type": "function",
                                                "function": {
                                                    "name": call["name"],
                                                    "arguments": json.dumps(call["args"]),
                                                },
                                            }
                                        ]
                                    },
                                }
                            ]
                        }
                    )
                for word in reply.content.split(" ") if reply.content else []:
                    time.sleep(0.002)  # a streaming model takes time between chunks (time to first chunk > 0)
                    send({"choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]})
                finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
                send({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
                if (body.get("stream_options") or {}).get("include_usage") and reply.usage is not None:
                    send({"choices": [], "usage": reply.usage})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
