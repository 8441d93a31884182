"""scrub_secrets: credentials in free text are redacted and the text is bounded."""

from __future__ import annotations

import doctest

import pytest

from paxis_router.governance import secrets
from paxis_router.governance.secrets import REDACTED, scrub_secrets

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1x2y3z\nq9w8e7r6t5y4u3i2o1p0\n"
    "-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Incorrect API key provided: sk-proj-AbCdEf0123456789xyzXYZ.", "sk-proj-AbCdEf0123456789"),
        ("anthropic said sk-ant-api03-abcDEF123456789_-xyz", "sk-ant-api03-abcDEF123456789"),
        ("paxis key pxs-Zq3vT0m9sL2kP8wX1yB4nC7dE5fG6hJ", "pxs-Zq3vT0m9sL2kP8wX1yB4nC7dE5fG6hJ"),
        ("header was 'Authorization: Bearer abc.DEF_123-456~789'", "abc.DEF_123-456~789"),
        ("creds AKIAIOSFODNN7EXAMPLE in the log", "AKIAIOSFODNN7EXAMPLE"),
        (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
        (f"key material:\n{PEM}\nend", "MIIEpAIBAAKCAQEA1x2y3z"),
        ('{"api_key": "hunter2hunter2"}', "hunter2hunter2"),
        ("OPENAI_API_KEY=abcdefgh", "abcdefgh"),
        ("password: correct-horse", "correct-horse"),
        ("github ghp_0123456789abcdefghijABCDEFGHIJ0123456789", "ghp_0123456789abcdefghij"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXNpZw", "eyJhbGciOiJIUzI1NiJ9"),
        (
            "opaque token Zx81kQ0pLm2Nb7Vc4Xz9Aa3Ss6Dd5Ff1Gg0Hh",
            "Zx81kQ0pLm2Nb7Vc4Xz9Aa3Ss6Dd5Ff1Gg0Hh",
        ),
    ],
)
def test_each_kind_of_credential_is_redacted(text: str, secret: str) -> None:
    scrubbed = scrub_secrets(text, max_chars=1000)
    assert secret not in scrubbed
    assert REDACTED in scrubbed


def test_ordinary_text_is_left_alone() -> None:
    text = (
        "answer failed regex must_match '\\d' (max_tokens: 1000, author: Ada); "
        "the verifier expected a number"
    )
    assert scrub_secrets(text, max_chars=1000) == text


def test_the_result_is_bounded_and_says_how_much_was_cut() -> None:
    scrubbed = scrub_secrets("word " * 1000, max_chars=50)
    assert scrubbed.startswith("word word")
    assert scrubbed.endswith("… [4950 more characters]")
    assert len(scrubbed) == 50 + len("… [4950 more characters]")


def test_a_secret_across_the_cut_is_redacted_not_half_shown() -> None:
    key = "sk-proj-" + "A1b2C3d4" * 4
    text = "x" * 40 + " " + key + " tail"
    scrubbed = scrub_secrets(text, max_chars=60)
    assert "A1b2C3d4" not in scrubbed
    assert scrubbed.startswith("x" * 40 + " " + REDACTED)


def test_a_huge_run_without_spaces_is_cut_before_scrubbing_and_its_tail_redacted() -> None:
    text = "a" * 100_000 + "sk-proj-abcdefghijklmnop0123456789"
    scrubbed = scrub_secrets(text, max_chars=100)
    assert "0123456789" not in scrubbed
    assert scrubbed.endswith("more characters]")


def test_max_chars_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_chars must be >= 1"):
        scrub_secrets("x", max_chars=0)


def test_docstring_examples() -> None:
    result = doctest.testmod(secrets)
    assert result.attempted > 0
    assert result.failed == 0
