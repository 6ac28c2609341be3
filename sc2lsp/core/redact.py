"""Secret and PII redaction (bigcode-dataset PII recipe, rule-based): for training data and outgoing prompts.

Pure and stdlib-only: imported by ``finetune`` (prepare) and by the server (remote backends).

Replacements:

* e-mail addresses -> ``<EMAIL>``;
* API keys and tokens (private key blocks, AWS, GitHub, GitLab, Slack, Stripe, Google, OpenAI-
  and Hugging Face-style keys, JWTs, and long high-entropy strings assigned to a name that says
  key/token/secret) -> ``<KEY>``;
* passwords (string values assigned to a name that says password/passwd/pwd, and the password
  in ``scheme://user:password@host``) -> ``<PASSWORD>``;
* public IPv4/IPv6 addresses -> a stand-in from the documentation ranges (192.0.2.0/24,
  2001:db8::/32), chosen by a hash of the address so one address maps to one stand-in.
  Private, loopback and unspecified addresses (127.0.0.1, 10.x, 192.168.x, 0.0.0.0) and
  version-like dotted numbers stay.

``redact(text)`` returns the new text and per-kind counts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections import Counter

from sc2lsp.core.tokens import SPECIAL_TOKENS

EMAIL, KEY, PASSWORD = SPECIAL_TOKENS[35], SPECIAL_TOKENS[36], SPECIAL_TOKENS[37]
assert (EMAIL, KEY, PASSWORD) == ("<EMAIL>", "<KEY>", "<PASSWORD>")

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    re.S,
)
_TOKEN_PATTERNS = [
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{30,}\b",  # GitHub
    r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
    r"\bglpat-[A-Za-z0-9_\-]{20,}\b",  # GitLab
    r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b",  # Slack
    r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe
    r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API key
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}\b",  # OpenAI / Anthropic style
    r"\bhf_[A-Za-z0-9]{30,}\b",  # Hugging Face
    r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\b",  # JWT
]
_TOKENS = re.compile("|".join(f"(?:{p})" for p in _TOKEN_PATTERNS))
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ASSIGN = r"""\s*(?:=|:|:=|=>)\s*[bruBRU]?(?P<q>["'])(?P<val>[^"'\n]*)(?P=q)"""
_ASSIGNMENT = re.compile(rf"""(?<![\w"'])(?P<name>["']?{_NAME}["']?){_ASSIGN}""")
_PASSWORD_NAME = re.compile(r"passw(?:or)?d|pwd|(?:^|_)pass$", re.I)
_SECRET_NAME = re.compile(r"key|token|secret|auth", re.I)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s:/@'\"]+:)(?P<val>[^\s@/'\"]+)(?=@)", re.I)
_FILE_TLDS = "png|jpe?g|gif|svg|webp|ico|txt|md|rst|py|js|ts|json|ya?ml|toml|css|html?|csv|zip|gz|bin|pdf|lock|log"
_EMAIL_RE = re.compile(
    rf"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z][A-Za-z0-9-]*(?:\.[A-Za-z0-9-]+)*\.(?!(?:{_FILE_TLDS})\b)[A-Za-z]{{2,}}\b"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?![\w:])|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,6}:[0-9A-Fa-f]{1,4}(?![\w:])")
_VERSION_CONTEXT = re.compile(r"\b(?:version|ver|v)\s*[=:]?\s*['\"]?$", re.I)


def entropy(s: str) -> float:
    """Shannon entropy in bits per character."""
    if not s:
        return 0.0
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def looks_secret(value: str) -> bool:
    """A long, mixed, high-entropy string without spaces (not a sentence, path or placeholder)."""
    if len(value) < 16 or " " in value or "/" in value.strip("/")[:1]:
        return False
    if value.startswith(("<", "{", "$", "%")) or re.fullmatch(r"[a-z_.\-]+|[A-Z_.\-]+|x+|\*+", value):
        return False
    if re.fullmatch(r"[A-Za-z]+(?:[-_.][A-Za-z]+)*", value):
        return False  # words joined by separators: a header or setting name, not a secret
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    return classes >= 2 and entropy(value) >= 3.0


def _stand_in_v4(addr: str) -> str:
    return f"192.0.2.{int(hashlib.sha256(addr.encode()).hexdigest(), 16) % 254 + 1}"


def _stand_in_v6(addr: str) -> str:
    return f"2001:db8::{int(hashlib.sha256(addr.encode()).hexdigest(), 16) % 0xFFFF:x}"


def _keep_ip(ip: ipaddress._BaseAddress) -> bool:
    return ip.is_private or ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip.is_multicast or (
        ip.version == 4 and str(ip).startswith("192.0.2.")) or (ip.version == 6 and str(ip).startswith("2001:db8:"))


def redact(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with secrets and PII replaced, and how many of each kind were replaced."""
    counts: Counter[str] = Counter()

    def sub(pattern: re.Pattern, repl, kind: str, s: str) -> str:
        def f(m: re.Match) -> str:
            r = repl(m)
            if r != m.group(0):
                counts[kind] += 1
            return r

        return pattern.sub(f, s)

    text = sub(_PRIVATE_KEY, lambda m: KEY, "key", text)
    text = sub(_TOKENS, lambda m: KEY, "key", text)
    text = sub(_URL_PASSWORD, lambda m: m.group("head") + PASSWORD, "password", text)

    def assigned(m: re.Match) -> str:
        name, val = m.group("name").strip("\"'"), m.group("val")
        if _PASSWORD_NAME.search(name):
            token, ok, kind = PASSWORD, _is_password(val), "password"
        elif _SECRET_NAME.search(name):
            token, ok, kind = KEY, looks_secret(val), "key"
        else:
            return m.group(0)
        if not ok:
            return m.group(0)
        counts[kind] += 1
        a, b = m.start("val") - m.start(), m.end("val") - m.start()
        return m.group(0)[:a] + token + m.group(0)[b:]

    text = _by_line(text, ("pass", "pwd", "key", "token", "secret", "auth"), lambda ln: _ASSIGNMENT.sub(assigned, ln))
    text = sub(_EMAIL_RE, lambda m: EMAIL, "email", text)

    def ip_repl(m: re.Match) -> str:
        s = m.group(0)
        try:
            ip = ipaddress.ip_address(s)
        except ValueError:
            return s
        if _keep_ip(ip):
            return s
        if ip.version == 4 and _VERSION_CONTEXT.search(text[max(0, m.start() - 12) : m.start()]):
            return s
        return _stand_in_v4(s) if ip.version == 4 else _stand_in_v6(s)

    text = sub(_IPV4, ip_repl, "ip", text)
    text = sub(_IPV6, ip_repl, "ip", text)
    return text, dict(counts)


def _by_line(text: str, keywords: tuple[str, ...], fn) -> str:
    """Apply ``fn`` only to the lines that mention one of ``keywords`` (the assignment patterns are slow)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        low = line.lower()
        if any(k in low for k in keywords):
            lines[i] = fn(line)
    return "".join(lines)


def _is_password(value: str) -> bool:
    """A real-looking password literal: not empty, not a placeholder or an environment lookup."""
    v = value.strip()
    if len(v) < 4 or v.startswith(("<", "{", "$", "%")) or v.lower() in {"password", "changeme", "xxxx", "****"}:
        return False
    return not re.fullmatch(r"[*x.]+", v)
