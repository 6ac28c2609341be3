"""Secret redaction (sc2lsp.core.redact), table-driven: each form found, and the near misses kept.

The same function scrubs training data (finetune prepare) and prompts sent to a remote backend.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from sc2lsp.core.redact import redact

_AZ = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
_PEM_BODY = "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgwMbRvI0MBZhpF\nuPj8Yw4vq3SyKnDWLD5Bbk5r9wJRBWx"

# (source, expected output, counts)
FOUND = [
    # unquoted values in YAML / INI / TOML / .env / properties files
    ("password: Pr0dPassw0rd!2024", "password: <PASSWORD>", {"password": 1}),
    ("  db_password: s3cr3t-Pr0d", "  db_password: <PASSWORD>", {"password": 1}),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "aws_secret_access_key = <KEY>", {"key": 1}),
    ("DB_PASSWORD=hunter2hunter", "DB_PASSWORD=<PASSWORD>", {"password": 1}),
    ("export API_TOKEN=a8Fk29dLq0Zx7Pm3Rt5Vb1Nc  # prod", "export API_TOKEN=<KEY>  # prod", {"key": 1}),
    ("spring.datasource.password=Zx9!kLm2qq", "spring.datasource.password=<PASSWORD>", {"password": 1}),
    ("client_secret: 9fJ2kLq8Xz0Pm4Rt7Vb1Nc3H", "client_secret: <KEY>", {"key": 1}),
    # URL credentials, the password holding '/'
    ("url = 'postgres://admin:pa/ss:w0rd@db.example.com:5432/app'",
     "url = 'postgres://admin:<PASSWORD>@db.example.com:5432/app'", {"password": 1}),
    ("amqp://guest:s3/cr/et@rabbit/vhost", "amqp://guest:<PASSWORD>@rabbit/vhost", {"password": 1}),
    # bearer credentials written out
    ('headers = {"Authorization": "Bearer 9f8e7d6c5b4a39281706abcdefABCDEF"}',
     'headers = {"Authorization": "Bearer <KEY>"}', {"key": 1}),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNzd29yZDEyMzQ='", "curl -H 'Authorization: Basic <KEY>'", {"key": 1}),
    # vendor tokens
    ("//registry.npmjs.org/:_authToken=npm_abcdefghijklmnopqrstuvwxyz0123456789",
     "//registry.npmjs.org/:_authToken=<KEY>", {"key": 1}),
    ("password = pypi-AgEIcHlwaS5vcmcCJGE4ZjNjZWQ2LTBhNzAtNDZkYi1hYWVmLTFhNTQ3OTZjMDVhZQ",
     "password = <KEY>", {"key": 1}),
    (f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={_AZ};EndpointSuffix=core.windows.net",
     "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=<KEY>;EndpointSuffix=core.windows.net", {"key": 1}),
    ("SENDGRID = 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",
     "SENDGRID = <KEY>", {"key": 1}),
    ("notify('https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/XXXXXXXXXXXXXXXXXXXXXXXX')",
     "notify('<KEY>')", {"key": 1}),
    ("creds = ('ASIAIOSFODNN7EXAMPLE', x)", "creds = ('<KEY>', x)", {"key": 1}),
    # a private key pasted without its END line
    (f"-----BEGIN RSA PRIVATE KEY-----\n{_PEM_BODY}\n", "<KEY>\n", {"key": 1}),
    (f"KEY = '-----BEGIN PRIVATE KEY-----\\\\n{_PEM_BODY.splitlines()[0]}'\nnext_line = 1",
     "KEY = '<KEY>'\nnext_line = 1", {"key": 1}),
]

# near misses: code and config that must come out unchanged
KEPT = [
    "password_field = form.password",
    "password = get_password()",
    "password: ${DB_PASSWORD}",
    "password = os.environ['DB_PASSWORD']",
    "password: str",
    "password = None",
    "password_min_length: 12",
    "api_key = settings.API_KEY",
    "secret_key = config_value_for_tests",
    "token = DEFAULT_TOKEN",
    "token: myVeryLongVariableName",
    "auth_backend = django.contrib.auth.backends.ModelBackend",
    "key_path = /etc/ssl/private/server.key",
    'headers["Authorization"] = "Bearer " + token',
    'headers = {"Authorization": f"Bearer {token}"}',
    "# Bearer authentication is described in RFC 6750",
    "url = 'https://example.com:8443/users/@me'",
    "see https://medium.com/@someone/post",
    "AKIA_PREFIX = 'AKIA'",
    "-----BEGIN PUBLIC KEY-----",
    "use SG.send() to deliver mail",
    "keyboard: us",
]


@pytest.mark.parametrize("src, expected, counts", FOUND, ids=[f[0][:40] for f in FOUND])
def test_redact_finds(src, expected, counts):
    assert redact(src) == (expected, counts)


@pytest.mark.parametrize("src", KEPT)
def test_redact_keeps_near_misses(src):
    assert redact(src) == (src, {})


def test_redact_is_importable_without_heavy_modules():
    """The server imports it for outgoing prompts: stdlib only, no finetune, numpy or torch."""
    code = ("import sys, sc2lsp.core.redact as r; "
            "bad = [m for m in ('finetune', 'numpy', 'torch', 'pygls') if m in sys.modules]; "
            "assert not bad, bad; print(r.redact('password: Pr0dPassw0rd!')[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "password: <PASSWORD>"


def test_redact_is_linear_on_large_input():
    """A 1 MB config-like text is redacted quickly (no catastrophic backtracking on long lines)."""
    line = "key_" + "a" * 5000 + " = " + "b" * 5000 + "\n"
    text = line * 50 + ("password: " + "x/" * 20000 + "\n") + "-----BEGIN PRIVATE KEY-----" + "A" * 200000
    t = time.perf_counter()
    redact(text)
    assert time.perf_counter() - t < 10
