"""OpenAI-compatible ``/v1/completions`` (vLLM, TGI's OpenAI route, llama-server, Ollama's ``/v1``,
``llama-cpp-python[server]``): our own FIM string as the raw ``prompt``, streamed (SSE), greedy.

The endpoint is the server's base URL, with or without the trailing ``/v1``.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

from .http import RemoteError
from .remote import Event, RemoteBackend

#: the OpenAI API takes at most four stop strings
_MAX_STOP = 4
#: a safety net under the time caps: no byte at all for this long means the server is stuck
_READ_TIMEOUT_S = 300.0


class OpenAIBackend(RemoteBackend):
    api = "openai"

    def _path(self, tail: str) -> str:
        return tail if self.client.ep.base_path.endswith("/v1") else "/v1" + tail

    def _probe(self) -> None:
        listing = self.client.get_json(self._path("/models"))
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            raise RemoteError(f"{self.endpoint}{self._path('/models')} is not an OpenAI model list", "garbage")
        served = [str(m.get("id")) for m in data if isinstance(m, dict) and m.get("id")]
        self._check_served(served)
        self.served_model = self.cfg.model or (served[0] if served else None)
        self._pick_counter(self._server_counter)

    def _server_counter(self) -> tuple[Any, str]:
        """A tokenize route of the server when it has one (llama-cpp-python, vLLM), else None."""
        model = self.served_model
        routes = (
            ("/extras/tokenize", lambda text: {"input": text, "model": model}, "llama-cpp-python /extras/tokenize"),
            ("/tokenize", lambda text: {"model": model, "prompt": text, "add_special_tokens": False}, "server /tokenize"),
        )
        for path, body, label in routes:
            try:
                probe = self.client.post_json(path, body("<file_sep>a"), timeout=5.0)
            except RemoteError:
                continue
            if _token_count(probe) is not None:
                return (lambda text, p=path, b=body: _counted(self.client.post_json(p, b(text), timeout=10.0))), label
        return None, ""

    def _events(self, prompt: str, *, max_tokens: int, stop: Sequence[str], should_stop, prompt_s, generate_s,
                warm: bool):
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": max(1, max_tokens),
            "temperature": 0,
            "top_p": 1,
            "stream": True,
            # llama-cpp-python's server defaults to 1.1, which changes greedy text; others ignore it
            "repeat_penalty": 1.0,
        }
        if self.served_model:
            body["model"] = self.served_model
        stops = [s for s in stop if s][:_MAX_STOP]
        if stops:
            body["stop"] = stops
        now = time.perf_counter()
        stream = self.client.stream(
            self._path("/completions"), body, should_stop=should_stop,
            prompt_deadline=None if prompt_s is None else now + prompt_s, generate_s=generate_s,
            read_timeout=_READ_TIMEOUT_S,
        )
        return _parse(stream.events(), stream.what), stream


def _parse(events: Iterator[dict], what: str) -> Iterator[Event]:
    for obj in events:
        choices = obj.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise RemoteError(f"{what} sent an event without choices: {str(obj)[:200]!r}", "garbage")
        c = choices[0]
        text = c.get("text") or ""
        if not isinstance(text, str):
            raise RemoteError(f"{what} sent a non-text completion: {str(c)[:200]!r}", "garbage")
        finish = c.get("finish_reason")
        yield Event(text=text, finish="length" if finish == "length" else ("stop" if finish else None))


def _token_count(obj: Any) -> int | None:
    if isinstance(obj, dict):
        if isinstance(obj.get("count"), int):
            return obj["count"]
        if isinstance(obj.get("tokens"), list):
            return len(obj["tokens"])
    return None


def _counted(obj: Any) -> int:
    n = _token_count(obj)
    if n is None:
        raise RemoteError("the tokenize route answered without tokens", "garbage")
    return n
