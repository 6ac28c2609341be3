"""Secret and PII redaction (bigcode-dataset PII recipe, rule-based): for training data and outgoing prompts.

Pure and stdlib-only: imported by ``finetune`` (prepare) and by the server (remote backends).

Replacements:

* e-mail addresses -> ``<EMAIL>``;
* API keys and tokens (private key blocks, also without their END line; AWS ``AKIA``/``ASIA``...,
  GitHub, GitLab, Slack tokens and webhooks, Stripe, Google, npm, PyPI, SendGrid, OpenAI- and
  Hugging Face-style keys, JWTs, ``Bearer``/``Basic`` credentials written out, Azure
  ``AccountKey=``, and long high-entropy values assigned to a name that says key/token/secret,
  quoted or not) -> ``<KEY>``;
* passwords (values assigned to a name that says password/passwd/pwd, quoted or as an unquoted
  YAML/INI/TOML/.env value, and the password in ``scheme://user:password@host``, ``/`` included)
  -> ``<PASSWORD>``;
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
# A BEGIN line whose END is missing (a truncated paste): the block runs while lines look like base64
# or PEM headers (``Proc-Type: ...``); ``\\n`` escapes inside one string literal count as line breaks.
_PRIVATE_KEY_OPEN = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\\]*"
    r"(?:\r?\n[ \t]*(?:[A-Za-z0-9+/=]{8,}|[A-Za-z][A-Za-z-]*:[^\n]*)[ \t]*)*"
)
_TOKEN_PATTERNS = [
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[0-9A-Z]{16}\b",  # AWS key ids (ASIA: temporary)
    r"\bnpm_[A-Za-z0-9]{36}\b",  # npm
    r"\bpypi-[A-Za-z0-9_\-]{50,}",  # PyPI upload token
    r"\bSG\.[A-Za-z0-9_\-]{16,32}\.[A-Za-z0-9_\-]{30,64}",  # SendGrid
    r"\bhttps://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_\-]{20,}",  # Slack webhook
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
# The password may hold ``/`` (it runs to the last ``@`` before the host); a port (``host:8080/x@y``) is no password.
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^\s:/@'\"]+:)(?!\d+(?:/|$))(?P<val>[^\s@'\"]+)(?=@[^\s@/'\"]+)", re.I)
# ``Authorization: Bearer <token>`` and friends, the token written out (not ``"Bearer " + token``).
_BEARER = re.compile(r"\b(?P<head>(?:Bearer|Basic|Token)[ \t]+)(?P<val>[A-Za-z0-9\-._~+/]{16,}=*)(?![\w{])")
# Azure storage / service-bus connection strings.
_CONN_KEY = re.compile(r"(?P<head>\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)=)(?P<val>[A-Za-z0-9+/%=&:\-]{20,})", re.I)
# An unquoted value on a line of its own (YAML, INI, TOML, .env, properties):
# ``password: Pr0d...``, ``export AWS_SECRET_ACCESS_KEY=...``, ``aws_secret_access_key = wJalr...``.
_BARE_ASSIGNMENT = re.compile(
    r"^(?P<lead>[ \t]*(?:export[ \t]+|-[ \t]+)?(?P<name>[A-Za-z_][\w.\-]*)[ \t]*(?:=|:)[ \t]*)"
    r"(?P<val>[^\s\"'#;,()\[\]{}<>`|&]+)(?P<tail>[ \t]*(?:[#;].*)?)$",
    re.M,
)
# Code, not a value: a (dotted) name, snake_case words, a null/boolean, a type.
_CODE_LIKE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+|[A-Za-z][a-z0-9]*(?:_[A-Za-z0-9][a-z0-9]*)+|[A-Za-z_]+")
_BARE_KEEP = {"none", "null", "nil", "true", "false", "str", "string", "bytes", "int", "secret", "password", "changeme"}
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


def _named_secret(name: str, val: str, password_ok, secret_ok) -> tuple[str, str] | None:
    """(stand-in, kind) when ``name = val`` assigns a password or a secret, else None."""
    if _PASSWORD_NAME.search(name):
        return (PASSWORD, "password") if password_ok(val) else None
    if _SECRET_NAME.search(name):
        return (KEY, "key") if secret_ok(val) else None
    return None


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
    text = sub(_PRIVATE_KEY_OPEN, lambda m: KEY, "key", text)
    text = sub(_TOKENS, lambda m: KEY, "key", text)
    text = sub(_URL_PASSWORD, lambda m: m.group("head") + PASSWORD, "password", text)
    text = sub(_CONN_KEY, lambda m: m.group("head") + KEY, "key", text)
    text = sub(_BEARER, lambda m: m.group("head") + KEY if _bearer_token(m.group("val")) else m.group(0), "key", text)

    def assigned(m: re.Match) -> str:
        found = _named_secret(m.group("name").strip("\"'"), m.group("val"), _is_password, looks_secret)
        if found is None:
            return m.group(0)
        counts[found[1]] += 1
        a, b = m.start("val") - m.start(), m.end("val") - m.start()
        return m.group(0)[:a] + found[0] + m.group(0)[b:]

    def bare(m: re.Match) -> str:
        found = _named_secret(m.group("name"), m.group("val"), _is_bare_password, _is_bare_secret)
        if found is None:
            return m.group(0)
        counts[found[1]] += 1
        return m.group("lead") + found[0] + m.group("tail")

    def line(ln: str) -> str:
        ln = _ASSIGNMENT.sub(assigned, ln)
        return _BARE_ASSIGNMENT.sub(bare, ln)

    text = _by_line(text, ("pass", "pwd", "key", "token", "secret", "auth"), line)
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


def _bearer_token(value: str) -> bool:
    """A written-out token after ``Bearer``: letters and digits mixed, not a word or a placeholder."""
    return bool(re.search(r"[0-9]", value) and re.search(r"[A-Za-z]", value)) and not _CODE_LIKE.fullmatch(value)


def _is_bare_password(value: str) -> bool:
    """An unquoted password: not code (``form.password``, ``get_pw``), a reference or a placeholder."""
    v = value.strip()
    if len(v) < 6 or v.lower() in _BARE_KEEP or v.startswith(("$", "%", "!", "*", "@", ":", "=", "/", "~", ".")):
        return False
    if re.fullmatch(r"[*x.]+|\d+(?:\.\d+)*", v):
        return False  # a mask or a number (``password_min_length: 12``)
    if _CODE_LIKE.fullmatch(v) and not re.search(r"\d", v.split(".")[-1]):
        return False
    if re.fullmatch(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", v):
        return False  # attribute access
    return True


def _is_bare_secret(value: str) -> bool:
    """An unquoted key or token: long and high-entropy, and not a (dotted) name or snake_case words."""
    if _CODE_LIKE.fullmatch(value) or value.startswith((".", "/", "~")):
        return False
    return looks_secret(value)


def _is_password(value: str) -> bool:
    """A real-looking password literal: not empty, not a placeholder or an environment lookup."""
    v = value.strip()
    if len(v) < 4 or v.startswith(("<", "{", "$", "%")) or v.lower() in {"password", "changeme", "xxxx", "****"}:
        return False
    return not re.fullmatch(r"[*x.]+", v)
