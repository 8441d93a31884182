"""scrub_secrets: secret-shaped strings and the values of secret-named variables are redacted,
and the result is bounded."""

from __future__ import annotations

import pytest

from paxis_router.governance.secrets import REDACTED, scrub_secrets

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HecDz\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("key sk-proj-AbCdEf0123456789xyzXYZ rejected", f"key {REDACTED} rejected"),
        ("anthropic sk-ant-api03-abcdefABCDEF0123456789", f"anthropic {REDACTED}"),
        ("Authorization: Bearer eyAbc.def-ghi_123456", f"Authorization: Bearer {REDACTED}"),
        ("id AKIAIOSFODNN7EXAMPLE here", f"id {REDACTED} here"),
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            f"aws_secret_access_key={REDACTED}",
        ),
        ("token ghp_0123456789abcdefghijABCDEFGHIJ012345", f"token {REDACTED}"),
        ("slack xoxb-1234567890-abcdefghij", f"slack {REDACTED}"),
        ("sha " + "0123456789abcdef" * 2 + " end", f"sha {REDACTED} end"),
        ("blob dGhpcyBpcyBhIHNlY3JldCB2YWx1ZSBvZiBzb21lIGxlbmd0aA== x", f"blob {REDACTED} x"),
        (f"before\n{PEM}\nafter", f"before\n{REDACTED}\nafter"),
        ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq", REDACTED),
        ('{"password": "correct horse battery"}', f'{{"password": "{REDACTED}"}}'),
        ("api_key: abc123", f"api_key: {REDACTED}"),
    ],
)
def test_secret_shapes_are_redacted(text: str, expected: str) -> None:
    assert scrub_secrets(text, max_chars=1000, environ={}) == expected


@pytest.mark.parametrize(
    "text",
    [
        "missing required keys: total",
        "not JSON: Expecting value at line 1 column 1",
        "version 1.2.3, order 123456, date 2026-11-28",
        "the-task-skeleton-is-a-kebab-case-word-list",
        "sk-short",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert scrub_secrets(text, max_chars=1000, environ={}) == text


def test_values_of_secret_named_environment_variables_are_redacted() -> None:
    environ = {
        "MY_SERVICE_TOKEN": "plain-words-value",
        "DB_PASSWORD": "hunter2hunter2",
        "PAXIS_SIGNING_KEY": "kkkkkkkk",
        "CLIENT_SECRET": "short",  # under 8 characters: too likely to occur by chance
        "HOME": "/root/plain-words-value-not-secret-named",
    }
    text = "got plain-words-value and hunter2hunter2, kkkkkkkk, short, /root"
    assert scrub_secrets(text, max_chars=1000, environ=environ) == (
        f"got {REDACTED} and {REDACTED}, {REDACTED}, short, /root"
    )


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAXIS_TEST_API_KEY", "value-from-the-environment")
    assert scrub_secrets("x value-from-the-environment y", max_chars=100) == f"x {REDACTED} y"


def test_the_result_is_bounded_after_redacting() -> None:
    text = "a" * 50 + " sk-proj-AbCdEf0123456789xyzXYZ " + "b" * 500
    out = scrub_secrets(text, max_chars=80, environ={})
    assert len(out) == 80
    assert out.endswith("…[truncated]")
    assert out.startswith("a" * 50 + f" {REDACTED} ")
    assert scrub_secrets("short", max_chars=80, environ={}) == "short"
    # A secret cut by the bound is still redacted, never half shown.
    assert "AbCdEf" not in scrub_secrets("sk-proj-AbCdEf0123456789xyzXYZ", max_chars=14)


def test_a_negative_bound_is_an_error() -> None:
    with pytest.raises(ValueError, match="max_chars must be at least 0"):
        scrub_secrets("x", max_chars=-1)
