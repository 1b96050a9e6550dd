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


P = "[REDACTED:password]"

# Passwords on command lines: one case per form, the command around it intact.
COMMAND_LINES = [
    # mysql and mariadb: `-p` glued to the password
    ("mysql -u root -phunter2 app", f"mysql -u root -p{P} app"),
    ("mysql -uroot -phunter2", f"mysql -uroot -p{P}"),
    ("mysql -h db -P 3306 -u app -p'two words' app", f"mysql -h db -P 3306 -u app -p'{P}' app"),
    ('mysqldump -p"hunter2" --all-databases', f'mysqldump -p"{P}" --all-databases'),
    ("mariadb -u root -phunter2 -e 'select 1'", f"mariadb -u root -p{P} -e 'select 1'"),
    ("mysqladmin -uroot -phunter2 status", f"mysqladmin -uroot -p{P} status"),
    ("/usr/bin/mysql -phunter2", f"/usr/bin/mysql -p{P}"),
    ("docker exec db mysql -uroot -phunter2 app", f"docker exec db mysql -uroot -p{P} app"),
    ("cd /srv && mysql -phunter2 app; mkdir -p x", f"cd /srv && mysql -p{P} app; mkdir -p x"),
    ('{"command":"mysql -phunter2"}', f'{{"command":"mysql -p{P}"}}'),
    # `--password`, `--password=`, and long options ending in password
    ("mysql --password=hunter2 app", f"mysql --password={P} app"),
    ("mysql --password hunter2 app", f"mysql --password {P} app"),
    ("app --passwd hunter2", f"app --passwd {P}"),
    ("wget --http-password hunter2 https://x", f"wget --http-password {P} https://x"),
    ("tool --db-password hunter2", f"tool --db-password {P}"),
    ("wget --ftp-password=hunter2 ftp://x", f"wget --ftp-password={P} ftp://x"),
    # environment variables that tools read
    ("PGPASSWORD=hunter2 psql -h db", f"PGPASSWORD={P} psql -h db"),
    ("MYSQL_PWD=hunter2 mysql -u root", f"MYSQL_PWD={P} mysql -u root"),
    ("export REDISCLI_AUTH=hunter2", "export REDISCLI_AUTH=[REDACTED:secret]"),
    ("SSHPASS=hunter2 sshpass -e ssh host", f"SSHPASS={P} sshpass -e ssh host"),
    # tools whose short option takes the password
    ("sshpass -p hunter2 ssh deploy@web1", f"sshpass -p {P} ssh deploy@web1"),
    ("sshpass -phunter2 scp a b:", f"sshpass -p{P} scp a b:"),
    ("redis-cli -h cache -a hunter2 ping", f"redis-cli -h cache -a {P} ping"),
    ("mongosh -u admin -p hunter2 db", f"mongosh -u admin -p {P} db"),
    ("docker login -u ci -p hunter2 ghcr.io", f"docker login -u ci -p {P} ghcr.io"),
    ("podman login -phunter2 quay.io", f"podman login -p{P} quay.io"),
    ("helm registry login r.io -u a -p hunter2", f"helm registry login r.io -u a -p {P}"),
    ("az login --service-principal -u id -p hunter2", f"az login --service-principal -u id -p {P}"),
    ("zip -P hunter2 -r b.zip docs", f"zip -P {P} -r b.zip docs"),
    ("unzip -P hunter2 b.zip", f"unzip -P {P} b.zip"),
    ("7z a -phunter2 b.7z docs", f"7z a -p{P} b.7z docs"),
    ("rar a -hphunter2 b.rar docs", f"rar a -hp{P} b.rar docs"),
    ("ldapsearch -x -D cn=admin -w hunter2 -b dc=x", f"ldapsearch -x -D cn=admin -w {P} -b dc=x"),
    ("ldappasswd -w hunter2 -s newpass1 uid=bob", f"ldappasswd -w {P} -s {P} uid=bob"),
    ("sqlcmd -S db -U sa -P hunter2 -Q 'select 1'", f"sqlcmd -S db -U sa -P {P} -Q 'select 1'"),
    ("ipmitool -H bmc -U admin -P hunter2 power on", f"ipmitool -H bmc -U admin -P {P} power on"),
    ("xfreerdp /u:bob /p:hunter2 /v:host", f"xfreerdp /u:bob /p:{P} /v:host"),
    ("ssh-keygen -t ed25519 -N hunter2 -f k", f"ssh-keygen -t ed25519 -N {P} -f k"),
    ("smbclient //nas/s -U bob%hunter2", f"smbclient //nas/s -U bob%{P}"),
    ("smbclient //nas/s --user=bob%hunter2", f"smbclient //nas/s --user=bob%{P}"),
    ("lftp -u bob,hunter2 sftp://host", f"lftp -u bob,{P} sftp://host"),
    ("curl -u bob:hunter2 https://x", f"curl -u bob:{P} https://x"),
    ("curl -ubob:hunter2 https://x", f"curl -ubob:{P} https://x"),
    ("openssl enc -aes-256-cbc -k hunter2 -in a", f"openssl enc -aes-256-cbc -k {P} -in a"),
    # single-dash long options
    (
        "keytool -list -storepass hunter2 -keypass hunter3",
        f"keytool -list -storepass {P} -keypass {P}",
    ),
    ("openssl pkcs12 -passin pass:hunter2 -in a", f"openssl pkcs12 -passin pass:{P} -in a"),
    ("openssl rsa -passout pass:hunter2", f"openssl rsa -passout pass:{P}"),
    ("influx -username bob -password hunter2", f"influx -username bob -password {P}"),
]


@pytest.mark.parametrize(("text", "expected"), COMMAND_LINES)
def test_command_line_passwords(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_command_line_passwords_on_the_fast_path() -> None:
    """In a transcript line (a Bash tool call), through the prefilter."""
    line = (
        b'{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash",'
        b'"input":{"command":"mysql -u root -pSECRETpw123 -e \\"select 1\\""}}]}}\n'
    )
    out = REDACTOR.redact_chunk(line).data
    assert b"SECRETpw123" not in out
    assert b"mysql -u root -p[REDACTED:password] -e" in out


# `-p` and friends where they are not passwords: the text must stay as it is.
NOT_PASSWORDS = [
    "mkdir -p build/out",
    "cp -p a b",
    "ssh -p 2222 host",
    "scp -P 2222 a host:",
    "docker run -p 8080:80 nginx",
    "docker run -p 8080:80 -e MYSQL_ROOT_PASSWORD=$PW mysql",
    "git log -p -- src",
    "git add -p",
    "patch -p1 < fix.diff",
    "psql -h db -p 5432 -U app",
    "redis-cli -p 6379 ping",
    "mysql -P 3306 -h db",
    "mysql -u root -p",
    "mysql -u root -p app",
    "mysql -u root -p -e 'select 1'",
    "mysqldump --single-transaction -p app > dump.sql",
    "mysql -p$MYSQL_PASSWORD app",
    'mysql -p"${DB_PASS}" app',
    "sshpass -f ~/.pw ssh host",
    "sshpass -e ssh host",
    "read -p 'Password: ' pw",
    "sudo -p 'pw: ' ls",
    "ps -p 1234",
    "lsof -p 42",
    "python -m pip install -p x",
    "openssl req -new -key k.pem -out c.csr",
    "openssl pkcs12 -passin env:P12_PASS -in a",
    "openssl pkcs12 -passin file:pw.txt -in a",
    "keytool -storepass:env STOREPASS -list",
    "zip -r b.zip docs",
    "7z x -p b.7z",
    "ldapsearch -x -W -b dc=x",
    "ssh-keygen -N '' -f k",
    "smbclient //nas/s -U bob",
    "curl -u bob https://x",
    "docker login -u ci --password-stdin ghcr.io",
    "psql --no-password db",
    "ansible-playbook --ask-pass site.yml",
    "ansible-playbook --ask-become-pass site.yml",
    "the mysql client asks for it with -p",
]


@pytest.mark.parametrize("text", NOT_PASSWORDS)
def test_options_that_are_not_passwords_stay(text: str) -> None:
    assert redact(text) == text


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
        ("SSHPASS", "password"),
        ("compass", None),
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
