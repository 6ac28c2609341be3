"""llama.cpp's ``llama-server`` native ``/completion``: ``cache_prompt``, one slot per editor session.

* ``cache_prompt: true`` keeps the slot's KV cache, so a keystroke only evaluates the new tokens.
* ``id_slot``: chosen once per backend (an idle slot that never served a task, from ``/slots``,
  claimed at once with an empty request; else a hash of the session id), so the editor keeps
  finding its own prompt in its slot.
* ``/tokenize`` counts tokens exactly; ``/props`` gives the slot's context size.
* The last event's ``timings`` (``cache_n``, ``prompt_n``, ``prompt_ms``, ``predicted_*``) and
  ``tokens_cached`` become the request's timings and ``sc2lsp/status``'s ``remote.server``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Iterator, Sequence

from .base import Timings
from .http import RemoteError
from .remote import Event, RemoteBackend

_READ_TIMEOUT_S = 300.0


class LlamaServerBackend(RemoteBackend):
    api = "llama-server"
    slot: int = -1

    def _probe(self) -> None:
        self.client.get_json("/health", timeout=5.0)  # 503 while loading: a RemoteError
        props = self.client.get_json("/props")
        if not isinstance(props, dict):
            raise RemoteError(f"{self.endpoint}/props is not a JSON object", "garbage")
        gen = props.get("default_generation_settings") or {}
        n_ctx = gen.get("n_ctx") or props.get("n_ctx")
        if isinstance(n_ctx, int) and n_ctx > 0:
            self.n_ctx = n_ctx
        names = {str(props.get(k)) for k in ("model_alias", "model_path") if props.get(k)}
        names |= {n.rsplit("/", 1)[-1] for n in names}
        names |= {n[: -len(".gguf")] for n in names if n.endswith(".gguf")}
        if self.cfg.model and names and self.cfg.model not in names:  # it serves one model: another name is a mistake
            self._check_served([str(props.get("model_alias") or props.get("model_path"))])
        self.slot = self._pick_slot(int(props.get("total_slots") or 1))
        self.served_model = self.cfg.model

        def count(text: str) -> int:
            got = self.client.post_json("/tokenize", {"content": text, "add_special": False, "parse_special": True})
            if not isinstance(got, dict) or not isinstance(got.get("tokens"), list):
                raise RemoteError(f"{self.endpoint}/tokenize answered without tokens", "garbage")
            return len(got["tokens"])

        self._pick_counter(lambda: (count, "llama-server /tokenize"))

    def _pick_slot(self, total: int) -> int:
        if total <= 1:
            return 0
        try:
            slots = self.client.get_json("/slots", timeout=5.0)
            fresh = [s["id"] for s in slots if isinstance(s, dict) and not s.get("is_processing") and "id_task" not in s]
            if fresh:  # claim it at once (a served task marks it used for the next editor that looks)
                self.client.post_json("/completion", {"prompt": "\n", "n_predict": 0, "id_slot": int(fresh[0]),
                                                      "cache_prompt": True}, timeout=30.0)
                return int(fresh[0])
        except (RemoteError, KeyError, TypeError, ValueError):
            pass  # /slots disabled (--no-slots): hash the session id
        digest = hashlib.sha256(self.cfg.session.encode()).digest()
        return int.from_bytes(digest[:4], "big") % total

    def _events(self, prompt: str, *, max_tokens: int, stop: Sequence[str], should_stop, prompt_s, generate_s,
                warm: bool):
        body: dict[str, Any] = {
            "prompt": prompt,
            "n_predict": 0 if warm else max(1, max_tokens),
            "temperature": 0,
            "stream": True,
            "cache_prompt": True,
            "id_slot": self.slot,
            "stop": [s for s in stop if s],
        }
        now = time.perf_counter()
        stream = self.client.stream(
            "/completion", body, should_stop=should_stop,
            prompt_deadline=None if prompt_s is None else now + prompt_s, generate_s=generate_s,
            read_timeout=_READ_TIMEOUT_S,
        )
        return _parse(stream.events(), stream.what), stream

    def _server_figures(self, server: dict, t: Timings) -> None:
        timings = server.get("timings") or {}
        cached = int(timings.get("cache_n", 0) or 0)
        evaluated = int(timings.get("prompt_n", 0) or 0)
        t.prompt_tokens = int(server.get("tokens_evaluated") or cached + evaluated)
        t.prompt_tokens_reused = cached
        self.cached_tokens = int(server.get("tokens_cached", 0) or 0)
        self.last_server = {
            "id_slot": server.get("id_slot", self.slot),
            "tokens_cached": self.cached_tokens,
            "cache_n": cached,
            "prompt_n": evaluated,
            "prompt_ms": round(float(timings.get("prompt_ms", 0.0)), 3),
            "predicted_n": int(timings.get("predicted_n", 0) or 0),
            "predicted_ms": round(float(timings.get("predicted_ms", 0.0)), 3),
            "predicted_per_second": round(float(timings.get("predicted_per_second", 0.0) or 0.0), 1),
        }

    def describe(self) -> dict[str, Any]:
        return dict(super().describe(), id_slot=self.slot)


def _parse(events: Iterator[dict], what: str) -> Iterator[Event]:
    for obj in events:
        text = obj.get("content", "")
        if not isinstance(text, str) or "stop" not in obj:
            raise RemoteError(f"{what} sent an event that is not a llama-server completion: {str(obj)[:200]!r}",
                              "garbage")
        finish = None
        if obj.get("stop"):
            finish = "length" if obj.get("stop_type") == "limit" else "stop"
        yield Event(text=text, finish=finish, server=obj if obj.get("stop") else None)
