"""Each built-in rule: what it must redact, and the near misses it must leave alone."""

from __future__ import annotations

import base64
import random
import re
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from karmad.redact import BUILTIN_KINDS, Redactor, placeholder
from karmad.redact.context import secret_name_kind
from karmad.redact.custom import LITERAL_KIND, literal_prefix
from tests.support.secrets import ALNUM, B64, HEX, FakeSecret, SecretFactory

REDACTOR = Redactor()
SECRETS = SecretFactory(7).all()
DOCS = Path(__file__).resolve().parents[1] / "docs" / "security.md"


def redact(text: str) -> str:
    return REDACTOR.redact_string(text)[0]


@pytest.mark.parametrize("secret", SECRETS, ids=lambda s: f"{s.kind}:{s.text[:24]!r}")
def test_every_fake_secret_is_redacted_with_its_kind(secret: FakeSecret) -> None:
    out, counts = REDACTOR.redact_string(secret.text)
    for fragment in secret.fragments:
        assert fragment not in out
    assert placeholder(secret.kind) in out
    assert counts[secret.kind] >= 1


def test_every_builtin_kind_has_a_fake_secret_and_documentation() -> None:
    assert {s.kind for s in SECRETS} == set(BUILTIN_KINDS)
    docs = DOCS.read_text()
    for kind in [*BUILTIN_KINDS, LITERAL_KIND]:
        assert f"`{kind}`" in docs, f"docs/security.md does not mention {kind}"


rng = random.Random(3)


def r(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


UPPER_DIGITS = string.ascii_uppercase + string.digits

# (input, expected output): the surrounding text must survive exactly.
CASES = [
    # provider tokens, in the places they turn up
    (f"key sk-ant-api03-{r(ALNUM, 95)} ok", "key [REDACTED:anthropic-key] ok"),
    (f'"sk-proj-{r(ALNUM, 60)}"', '"[REDACTED:openai-key]"'),
    (f"sk-svcacct-{r(ALNUM, 40)}", "[REDACTED:openai-key]"),
    (f"id=AKIA{r(UPPER_DIGITS, 16)};", "id=[REDACTED:aws-access-key];"),
    (f"ASIA{r(UPPER_DIGITS, 16)}", "[REDACTED:aws-access-key]"),
    (f"token gho_{r(ALNUM, 36)}.", "token [REDACTED:github-token]."),
    (f"ghs_{r(ALNUM, 36)}", "[REDACTED:github-token]"),
    (f"glpat-{r(ALNUM, 20)} is mine", "[REDACTED:gitlab-token] is mine"),
    (f"xoxp-{r(string.digits, 11)}-{r(ALNUM, 20)}", "[REDACTED:slack-token]"),
    (
        "https://hooks.slack.com/services/"
        f"T{r(UPPER_DIGITS, 8)}/B{r(UPPER_DIGITS, 8)}/{r(ALNUM, 24)}",
        "https://hooks.slack.com/services/[REDACTED:slack-webhook]",
    ),
    (
        f"https://discord.com/api/webhooks/{r(string.digits, 18)}/{r(ALNUM, 68)}",
        "https://discord.com/api/webhooks/[REDACTED:discord-webhook]",
    ),
    (f"sk_test_{r(ALNUM, 24)}", "[REDACTED:stripe-key]"),
    (f"whsec_{r(ALNUM, 32)}", "[REDACTED:stripe-key]"),
    (f"AIza{r(ALNUM, 35)}", "[REDACTED:google-api-key]"),
    (f"ya29.{r(ALNUM, 60)}", "[REDACTED:google-oauth]"),
    (f"npm_{r(ALNUM, 36)}", "[REDACTED:npm-token]"),
    (f"pypi-AgEIcHlwaS5vcmc{r(ALNUM, 60)}", "[REDACTED:pypi-token]"),
    (f"hf_{r(ALNUM, 34)}", "[REDACTED:huggingface-token]"),
    (f"SG.{r(ALNUM, 22)}.{r(ALNUM, 43)}", "[REDACTED:sendgrid-key]"),
    (f"dop_v1_{r(HEX, 64)}", "[REDACTED:digitalocean-token]"),
    (f"dp.st.{r(ALNUM, 40)}", "[REDACTED:doppler-token]"),
    (f"shpss_{r(HEX, 32)}", "[REDACTED:shopify-token]"),
    (f"hvs.{r(ALNUM, 30)}", "[REDACTED:vault-token]"),
    (f"lin_api_{r(ALNUM, 40)}", "[REDACTED:api-token]"),
    (f"PMAK-{r(HEX, 24)}-{r(HEX, 34)}", "[REDACTED:api-token]"),
    (f"tskey-auth-{r(ALNUM, 30)}", "[REDACTED:api-token]"),
    # structured secrets
    (
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----",
        "[REDACTED:private-key]",
    ),
    (
        "before\n-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n"
        "-----END PGP PRIVATE KEY BLOCK-----\nafter",
        "before\n[REDACTED:private-key]\nafter",
    ),
    (
        "PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\nAAAAIHJ5\nPrivate-MAC: ab",
        "PuTTY-User-Key-File-3: ssh-ed25519\nPrivate-Lines: 1\n"
        "[REDACTED:private-key]Private-MAC: ab",
    ),
    # headers and commands
    (
        "Authorization: Bearer abcdefghij0123456789xyz",
        "Authorization: Bearer [REDACTED:bearer-token]",
    ),
    (
        "curl -H 'authorization: bearer abcdefghij0123456789xyz'",
        "curl -H 'authorization: bearer [REDACTED:bearer-token]'",
    ),
    (
        f"Authorization: Basic {base64.b64encode(b'ci:s3cret-pw').decode()}",
        "Authorization: Basic [REDACTED:basic-auth]",
    ),
    ("Authorization: token 0123456789abcdef", "Authorization: token [REDACTED:auth-header]"),
    ('"x-api-key": "k3y-0123456789"', '"x-api-key": "[REDACTED:auth-header]"'),
    ("curl -u admin:hunter22 https://x", "curl -u admin:[REDACTED:password] https://x"),
    ("mysql --password hunter22 db", "mysql --password [REDACTED:password] db"),
    ("cli --token abc123def456", "cli --token [REDACTED:secret]"),
    ("machine h login me password s3cr3tpw", "machine h login me password [REDACTED:password]"),
    (
        "machine h\n  login me\n  password s3cr3tpw\n",
        "machine h\n  login me\n  password [REDACTED:password]\n",
    ),
    ("Cookie: session=abcdef123456; theme=dark", "Cookie: [REDACTED:cookie]"),
    ('{"auth": "dXNlcjpwYXNzd29yZA=="}', '{"auth": "[REDACTED:secret]"}'),
    ("_auth=dXNlcjpwYXNzd29yZA==", "_auth=[REDACTED:secret]"),
    # URLs
    ("https://user:pa55w0rd@example.com/x", "https://user:[REDACTED:url-password]@example.com/x"),
    ("redis://:pa55w0rd@cache:6379/0", "redis://:[REDACTED:url-password]@cache:6379/0"),
    (
        "mongodb+srv://app:p%40ss@cluster0.x.net",
        "mongodb+srv://app:[REDACTED:url-password]@cluster0.x.net",
    ),
    ("https://u:p@ss@host/", "https://u:[REDACTED:url-password]@host/"),
    # assignments: the name stays, the value goes
    ("API_KEY=abc123", "API_KEY=[REDACTED:secret]"),
    ("export GITHUB_TOKEN='abc123'", "export GITHUB_TOKEN='[REDACTED:secret]'"),
    ('SECRET_KEY="abc 123"', 'SECRET_KEY="[REDACTED:secret]"'),
    ("DB_PASSWORD=hunter2 ./run", "DB_PASSWORD=[REDACTED:password] ./run"),
    ("PASSWORD=hunter2", "PASSWORD=[REDACTED:password]"),
    ("spring.datasource.password=hunter2", "spring.datasource.password=[REDACTED:password]"),
    ("password: hunter2", "password: [REDACTED:password]"),
    ("  client_secret: abcdef123", "  client_secret: [REDACTED:secret]"),
    ('{"apiKey":"abcdef123"}', '{"apiKey":"[REDACTED:secret]"}'),
    ('{\\"password\\": \\"hunter2\\"}', '{\\"password\\": \\"[REDACTED:password]\\"}'),
    ('api_key = "abc123"', 'api_key = "[REDACTED:secret]"'),
    ("?access_token=abc123&x=1", "?access_token=[REDACTED:secret]&x=1"),
    ("$env:OPENAI_KEY='abc123'", "$env:OPENAI_KEY='[REDACTED:secret]'"),
    ("**Password**: hunter2", "**Password**: [REDACTED:password]"),
    ("deploy: apiKey: abc123", "deploy: apiKey: [REDACTED:secret]"),
    (
        "aws_secret_access_key = " + "a/B+" * 10,
        "aws_secret_access_key = [REDACTED:aws-secret-key]",
    ),
    ('"SecretAccessKey": "' + "a/B+" * 10 + '"', '"SecretAccessKey": "[REDACTED:aws-secret-key]"'),
    # overlapping rules merge, the most specific names it
    (f"OPENAI_API_KEY=sk-proj-{r(ALNUM, 40)}", "OPENAI_API_KEY=[REDACTED:openai-key]"),
    (
        f"Authorization: Bearer ghp_{r(ALNUM, 36)}",
        "Authorization: Bearer [REDACTED:github-token]",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redacts_and_keeps_the_context(text: str, expected: str) -> None:
    assert redact(text) == expected


def _jwt() -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"RS256"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(b'{"sub":"1234567890"}').rstrip(b"=").decode()
    return f"{head}.{body}.{r(ALNUM, 40)}"


def test_jwt_in_a_query_and_a_header() -> None:
    jwt = _jwt()
    assert redact(f"?id_token={jwt}&x=1") == "?id_token=[REDACTED:jwt]&x=1"
    assert redact(f"Bearer {jwt}") == "Bearer [REDACTED:jwt]"


NEAR_MISSES = [
    # ordinary words and identifiers that share a prefix
    "the task-list-management-component-for-everything is done",
    "sk-learn-style estimators",
    "use a basic configuration with basic building blocks",
    "the bearer token goes in the header",
    "Bearer $TOKEN",
    "Bearer ${API_TOKEN}",
    "Authorization: Bearer <token>",
    "Authorization: Basic YWJj",  # base64 of "abc": no colon, not credentials
    "https://github.com:443/acme/widgets",
    "ssh://git@github.com/acme/widgets.git",
    "git@github.com:acme/widgets.git",
    "email me at someone@example.com",
    "https://user:@example.com/",
    # identifiers of things, not secrets
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",
    "session 0ccf1a04-1b4c-43b6-8aa5-79e41db43a68",
    "msg_01XFDUDYJgAACzvnptvVoYEL toolu_01A09q90qw90lq917835lq9 req_011CUQwbGTdJCpRxvbYs",
    # assignments that are not secrets
    "MAX_TOKENS=4096",
    "max_tokens: 1024",
    "PRIMARY_KEY=id",
    "PUBLIC_KEY=ssh-ed25519 AAAA",
    "sort(key=len)",
    "PWD=/home/dev",
    "bypass=true",
    "API_KEY=$API_KEY",
    'API_KEY="${API_KEY}"',
    "password: <your password>",
    "password: string;",
    "password: str",
    "password = None",
    "token = get_token()",
    "password: req.body.password,",
    "token := os.Getenv(x)",
    "password=password",
    "if password == 'x':",
    "OPENAI_API_KEY=",
    "key: value",
    "TOKEN_TYPE=bearer",
    "input_tokens: 12",
    "the password is nice",
    "enter your password here",
    "- password reset is broken",
    "author: me",
    "auth: true",
    "OAUTH=enabled",
    "cookie: yes",
    # placeholders stay as they are
    "API_KEY=[REDACTED:secret]",
    "https://u:[REDACTED:url-password]@host",
    "Bearer [REDACTED:github-token]",
]


@pytest.mark.parametrize("text", NEAR_MISSES)
def test_near_misses_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_base64_blobs_are_not_cut_up() -> None:
    """An image in a transcript can contain AKIA.../AIza... by chance."""
    blob = r(B64, 4000)
    for chance in ["AKIA" + r(UPPER_DIGITS, 16), "AIza" + r(ALNUM, 35), "SK" + r(HEX, 32)]:
        at = rng.randrange(100, 3900)
        image = blob[:at] + chance + blob[at:]
        assert redact(image) == image


@pytest.mark.parametrize("kind", [*BUILTIN_KINDS, LITERAL_KIND, "acme-token"])
def test_placeholders_never_match_a_rule(kind: str) -> None:
    for text in [
        placeholder(kind),
        f"x={placeholder(kind)}",
        f"{placeholder(kind)} {placeholder(kind)}",
    ]:
        assert redact(text) == text


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("OPENAI_API_KEY", "secret"),
        ("apiKey", "secret"),
        ("x-api-key", "secret"),
        ("SECRETKEY", "secret"),
        ("clientSecret", "secret"),
        ("authToken", "secret"),
        ("GITHUB_TOKEN", "secret"),
        ("token", "secret"),
        ("secret", "secret"),
        ("credentials", "secret"),
        ("DB_PASSWORD", "password"),
        ("dbpassword", "password"),
        ("passwd", "password"),
        ("DB_PASS", "password"),
        ("DB_PWD", "password"),
        ("passphrase", "password"),
        ("key", None),
        ("PRIMARY_KEY", None),
        ("public_key", None),
        ("monkey", None),
        ("MAX_TOKENS", None),
        ("tokenizer", None),
        ("TOKEN_TYPE", None),
        ("PWD", None),
        ("bypass", None),
        ("password_file", None),
        ("", None),
    ],
)
def test_secret_names(name: str, kind: str | None) -> None:
    assert secret_name_kind(name) == kind


@pytest.mark.parametrize(
    ("regex", "prefix"),
    [
        ("acme_[a-z0-9]{32}", "acme_"),
        ("(?i)falcon-\\d+", "falcon-"),
        ("abc?", "ab"),
        ("abc*d", "ab"),
        ("abc{2}", "ab"),
        ("abc+", "abc"),
        ("a\\.b\\.c", "a.b.c"),
        ("abc|def", ""),
        ("(abc)", ""),
        ("abc(x|y)", "abc"),
        ("a[|]b|", ""),
        ("x[|]yz", "x"),
        ("\\d{4}", ""),
        ("(?x) a b", ""),
    ],
)
def test_literal_prefix(regex: str, prefix: str) -> None:
    assert literal_prefix(regex) == prefix


@given(
    st.text(alphabet=string.ascii_letters + "_-:", min_size=1, max_size=8),
    st.sampled_from(["", "[a-z]{3}", "\\d+", "(x|y)?", "[|]", "\\w*"]),
    st.data(),
)
def test_every_match_starts_with_the_literal_prefix(
    prefix: str, tail: str, data: st.DataObject
) -> None:
    regex = re.escape(prefix) + tail
    sample = data.draw(st.from_regex(regex, fullmatch=True))
    assert sample.startswith(literal_prefix(regex))


@pytest.mark.parametrize(
    "text",
    [
        "password=" * 20000,
        "password=$" * 20000,
        'PASSWORD="' * 20000,
        "a:password: " * 20000,
        "-----BEGIN RSA PRIVATE KEY-----x" * 3000,
        "https://" + "a:" * 50000,
        "basic " + "A" * 100001,
        "x" * 200000 + "password=abc",
    ],
    ids=lambda t: repr(t[:24]),
)
def test_adversarial_strings_stay_linear(text: str) -> None:
    """Each of these took seconds to minutes with a quadratic rule; now milliseconds."""
    out, _ = REDACTOR.redact_string(text)
    assert REDACTOR.redact_string(out)[0] == out
