"""Fake secrets of every kind, planted into copies of real transcripts, and the grep
that proves none of them survived.

The secrets are generated at run time from a seeded RNG: they have the exact shape of
real credentials (so the rules see what they would see in the wild) but none is real,
and none is written in this repository, where secret scanners would rightly object.

Used by the redaction tests and by the end-to-end tests that grep an outbox, or a
receiving machine's inbox, for every planted secret.
"""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import string
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CORPUS = (
    Path(os.environ["KARMAD_TEST_CORPUS"]) / "projects"
    if os.environ.get("KARMAD_TEST_CORPUS")
    else Path(__file__).resolve().parents[3] / "shared" / "corpus" / "claude" / "projects"
)
needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"no corpus of real transcripts at {CORPUS} (KARMAD_TEST_CORPUS)"
)
"""Real Claude Code transcripts (MIT), laid out like ~/.claude/projects. Never edit in
place: `plant_corpus` copies them."""

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"


@dataclass(frozen=True, slots=True)
class FakeSecret:
    kind: str
    """The kind its placeholder must name: `[REDACTED:<kind>]`."""
    text: str
    """The secret in a realistic context: a command, a config line, a sentence."""
    fragments: tuple[str, ...]
    """Substrings that must not appear anywhere in redacted output."""
    where: str = "any"
    """Where it is planted: any, command, output, file, prompt."""


@dataclass(slots=True)
class PlantedCorpus:
    root: Path
    secrets: list[FakeSecret]
    files: list[Path] = field(default_factory=list)
    planted_lines: dict[Path, set[int]] = field(default_factory=dict)
    """Per file, the 0-based numbers of the lines that carry a planted secret."""


@dataclass(frozen=True, slots=True)
class Leak:
    secret: FakeSecret
    fragment: str
    form: str
    where: str

    def __str__(self) -> str:
        return f"{self.secret.kind} leaked ({self.form} form of {self.fragment!r}) in {self.where}"


class SecretFactory:
    """Deterministic fake credentials."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = random.Random(seed)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def password(self) -> str:
        # Distinctive enough that a grep never finds it in the real corpus by chance.
        return "Pw" + self.chars(ALNUM, 10) + self.rng.choice("!%^*~") + self.chars(ALNUM, 4)

    def pem_body(self, lines: int = 6) -> list[str]:
        return [self.chars(B64, 64) for _ in range(lines)]

    def jwt(self) -> str:
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode()
        claims = json.dumps({"sub": self.chars(ALNUM, 12), "iat": self.rng.randrange(1 << 31)})
        payload = base64.urlsafe_b64encode(claims.encode()).rstrip(b"=").decode()
        return f"{header}.{payload}.{self.chars(B64URL, 43)}"

    def all(self) -> list[FakeSecret]:
        """At least one secret of every built-in kind, in realistic contexts."""
        c = self.chars
        out: list[FakeSecret] = []

        def add(kind: str, text: str, *fragments: str, where: str = "any") -> None:
            out.append(FakeSecret(kind, text, fragments or (text,), where))

        ant = "sk-ant-" + "api03-" + c(B64URL, 93) + "AA"
        add("anthropic-key", f"export ANTHROPIC_API_KEY={ant}", ant, where="command")
        ant2 = "sk-ant-" + "oat01-" + c(B64URL, 80)
        add("anthropic-key", f"my key is {ant2}, use it for the test", ant2, where="prompt")
        oai = "sk-" + "proj-" + c(B64URL, 120)
        add("openai-key", f'client = OpenAI(api_key="{oai}")', oai, where="file")
        legacy = "sk-" + c(ALNUM, 48)
        add("openai-key", f"OPENAI_API_KEY={legacy}", legacy, where="output")
        akid = "AKIA" + c(string.ascii_uppercase + string.digits, 16)
        asec = c(B64, 40)
        add(
            "aws-access-key",
            f"[default]\naws_access_key_id = {akid}\nregion = eu-west-1",
            akid,
            where="output",
        )
        add(
            "aws-secret-key",
            f"[default]\naws_secret_access_key = {asec}\n",
            asec,
            where="file",
        )
        session = c(B64, 180)
        add("aws-session-token", f'export AWS_SESSION_TOKEN="{session}"', session, where="command")
        ghp = "ghp_" + c(ALNUM, 36)
        add(
            "github-token",
            f"git clone https://x-access-token:{ghp}@github.com/acme/widgets.git",
            ghp,
            where="command",
        )
        pat = "github_" + "pat_" + c(ALNUM, 22) + "_" + c(ALNUM, 59)
        add("github-token", f"GITHUB_TOKEN={pat}", pat, where="file")
        glpat = "glpat-" + c(B64URL, 20)
        add(
            "gitlab-token",
            f'curl --header "PRIVATE-TOKEN: {glpat}" https://gitlab.example.com/api/v4/projects',
            glpat,
            where="command",
        )
        xoxb = "xoxb-" + c(string.digits, 12) + "-" + c(string.digits, 13) + "-" + c(ALNUM, 24)
        add("slack-token", f"SLACK_BOT_TOKEN={xoxb}", xoxb, where="output")
        hook = "T" + c(ALNUM, 10).upper() + "/B" + c(ALNUM, 10).upper() + "/" + c(ALNUM, 24)
        add(
            "slack-webhook",
            f'curl -X POST https://hooks.slack.com/services/{hook} -d \'{{"text":"hi"}}\'',
            hook,
            where="command",
        )
        discord = c(string.digits, 18) + "/" + c(B64URL, 68)
        add(
            "discord-webhook",
            f"DISCORD_WEBHOOK_URL=https://discord.com/api/webhooks/{discord}",
            discord,
            where="file",
        )
        stripe = "sk_" + "live_" + c(ALNUM, 99)
        add("stripe-key", f"stripe.api_key = '{stripe}'", stripe, where="file")
        rk = "rk_" + "test_" + c(ALNUM, 99)
        add("stripe-key", f"the restricted key {rk} works", rk, where="prompt")
        gkey = "AIza" + c(B64URL, 35)
        add(
            "google-api-key",
            f"https://maps.googleapis.com/maps/api/geocode/json?address=x&key={gkey}",
            gkey,
            where="output",
        )
        gocspx = "GOCSPX-" + c(B64URL, 28)
        add("google-oauth", f'"client_secret": "{gocspx}"', gocspx, where="file")
        npm = "npm_" + c(ALNUM, 36)
        add("npm-token", f"//registry.npmjs.org/:_authToken={npm}", npm, where="file")
        pypi = "pypi-" + "AgEIcHlwaS5vcmc" + c(B64URL, 140)
        add("pypi-token", f"[pypi]\nusername = __token__\npassword = {pypi}\n", pypi, where="file")
        hf = "hf_" + c(string.ascii_letters, 34)
        add("huggingface-token", f"huggingface-cli login --token {hf}", hf, where="command")
        sg = "SG." + c(B64URL, 22) + "." + c(B64URL, 43)
        add("sendgrid-key", f"SENDGRID_API_KEY='{sg}'", sg, where="output")
        tw = "SK" + c(HEX, 32)
        add("twilio-key", f"twilio api key sid {tw}", tw, where="prompt")
        do = "dop_" + "v1_" + c(HEX, 64)
        add("digitalocean-token", f"doctl auth init -t {do}", do, where="command")
        dp = "dp.pt." + c(ALNUM, 43)
        add("doppler-token", f"DOPPLER_TOKEN={dp}", dp, where="command")
        shp = "shpat_" + c(HEX, 32)
        add("shopify-token", f"X-Shopify-Access-Token: {shp}", shp, where="output")
        hvs = "hvs." + c(B64URL, 90)
        add("vault-token", f"vault login {hvs}", hvs, where="command")
        age = "AGE-SECRET-KEY-1" + c(string.ascii_uppercase + string.digits, 58)
        add("age-secret-key", f"# created: 2024\n{age}\n", age, where="file")
        dckr = "dckr_pat_" + c(B64URL, 27)
        add("api-token", f"echo {dckr} | docker login -u acme --password-stdin", dckr)
        gsk = "gsk_" + c(ALNUM, 52)
        add("api-token", f"GROQ key: {gsk}", gsk, where="prompt")
        tg = c(string.digits, 10) + ":AA" + c(B64URL, 33)
        add("telegram-bot-token", f"https://api.telegram.org/bot{tg}/getMe", tg, where="output")
        jwt = self.jwt()
        add("jwt", f"session cookie: {jwt}", jwt, where="output")
        body = self.pem_body()
        pem = "\n".join(
            ["-----BEGIN RSA PRIVATE KEY-----", *body, "-----END RSA PRIVATE KEY-----", ""]
        )
        add("private-key", pem, *body, where="file")
        body2 = self.pem_body(4)
        sa = json.dumps(
            {
                "type": "service_account",
                "private_key_id": c(HEX, 40),
                "private_key": "-----BEGIN PRIVATE KEY-----\n"
                + "\n".join(body2)
                + "\n-----END PRIVATE KEY-----\n",
            },
            indent=2,
        )
        add("private-key", sa, *body2, where="output")
        body3 = self.pem_body(3)
        truncated = "\n".join(["-----BEGIN OPENSSH PRIVATE KEY-----", *body3])
        add("private-key", truncated, *body3, where="output")
        bearer = c(B64URL, 40)
        add(
            "bearer-token",
            f'curl -s -H "Authorization: Bearer {bearer}" https://api.example.com/v1/me',
            bearer,
            where="command",
        )
        basic = base64.b64encode(f"deploy:{self.password()}".encode()).decode()
        add("basic-auth", f"Authorization: Basic {basic}", basic, where="output")
        header = c(ALNUM, 32)
        add("auth-header", f"curl -H 'X-Api-Key: {header}' https://api.example.com", header)
        pw = self.password()
        add(
            "url-password",
            f"DATABASE_URL=postgres://app:{pw}@db.internal:5432/app",
            pw,
            where="file",
        )
        pw2 = self.password()
        add("url-password", f"git remote add origin https://bob:{pw2}@git.example.com/x.git", pw2)
        pw3 = self.password()
        add("password", f"DB_PASSWORD={pw3}", pw3, where="file")
        pw4 = self.password()
        add("password", f"database:\n  user: app\n  password: {pw4}\n", pw4, where="file")
        pw5 = self.password()
        add("password", f"mysql -u root --password {pw5} app", pw5, where="command")
        pw6 = self.password()
        add("password", f"curl -u admin:{pw6} https://ci.example.com/api", pw6, where="command")
        pw7 = self.password()
        add("password", f'{{"username": "admin", "password": "{pw7}"}}', pw7, where="output")
        # Passwords on command lines, in the forms tools take them.
        for command in (
            "mysql -u root -p{pw} app",
            "mysqldump -h db.internal -uadmin -p'{pw}' --all-databases",
            "sshpass -p {pw} ssh deploy@web1",
            "docker login -u ci -p {pw} registry.example.com",
            "PGPASSWORD={pw} psql -h db -U app",
            "MYSQL_PWD={pw} mysql -u root",
            "redis-cli -h cache -a {pw} ping",
            "mongosh -u admin -p {pw} --authenticationDatabase admin",
            "smbclient //nas/share -U bob%{pw}",
            "keytool -list -keystore ks.jks -storepass {pw}",
            "openssl pkcs12 -export -in c.pem -passout pass:{pw} -out c.p12",
            "ldapsearch -x -D cn=admin,dc=example -w {pw} -b dc=example",
            "curl -uadmin:{pw} https://ci.example.com/api",
            "7z a -p{pw} backup.7z docs/",
            "zip -P {pw} -r backup.zip docs",
            "wget --http-user=bob --http-password {pw} https://files.example.com/a",
        ):
            pw = self.password()
            add("password", command.format(pw=pw), pw, where="command")
        pw8 = self.password()
        add(
            "password",
            f"machine api.heroku.com\n  login dev@example.com\n  password {pw8}\n",
            pw8,
            where="output",
        )
        docker = base64.b64encode(f"ci:{self.password()}".encode()).decode()
        add(
            "secret",
            json.dumps({"auths": {"ghcr.io": {"auth": docker}}}, indent=2),
            docker,
            where="output",
        )
        session_cookie = c(ALNUM, 32)
        add(
            "cookie",
            f"curl -H 'Cookie: sessionid={session_cookie}; theme=dark' https://app.example.com",
            session_cookie,
            where="command",
        )
        sec = c(ALNUM, 40)
        add("secret", f'export CLIENT_SECRET="{sec}"', sec, where="command")
        sec2 = c(ALNUM, 32)
        add("secret", f"  apiKey: {sec2}\n", sec2, where="file")
        return out


# ---- planting into transcripts


def _template(lines: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    for record in lines:
        if record.get("type") == kind and isinstance(record.get("message"), dict):
            return record
    return {
        "type": kind,
        "sessionId": str(uuid.uuid4()),
        "cwd": "/home/dev/project",
        "version": "2.0.0",
        "message": {"role": kind, "content": ""},
    }


def _record(
    template: dict[str, Any], rng: random.Random, message: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    record = {
        key: value
        for key, value in template.items()
        if key not in ("message", "toolUseResult", "uuid", "parentUuid")
    }
    record["uuid"] = str(uuid.UUID(int=rng.getrandbits(128)))
    record["parentUuid"] = template.get("uuid")
    record["message"] = message
    record.update(extra)
    return record


def _tool_use(
    rng: random.Random, name: str, tool_input: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    tool_id = "toolu_01" + "".join(rng.choice(ALNUM) for _ in range(22))
    return tool_id, {
        "id": "msg_01" + "".join(rng.choice(ALNUM) for _ in range(22)),
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 12, "output_tokens": 80},
    }


def _tool_result(tool_id: str, output: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [
            {"tool_use_id": tool_id, "type": "tool_result", "content": output, "is_error": False}
        ],
    }


def _numbered(text: str) -> str:
    """How Claude Code's Read tool shows a file."""
    return "\n".join(f"{i:>6}\u2192{line}" for i, line in enumerate(text.split("\n"), 1))


def plant_records(
    lines: list[dict[str, Any]], secret: FakeSecret, rng: random.Random
) -> list[dict[str, Any]]:
    """Records that carry `secret` the way a real session would, shaped like `lines`."""
    user = _template(lines, "user")
    assistant = _template(lines, "assistant")
    where = secret.where if secret.where != "any" else rng.choice(["command", "output", "file"])
    if where == "prompt":
        return [_record(user, rng, {"role": "user", "content": secret.text})]
    if where == "command":
        tool_id, message = _tool_use(
            rng, "Bash", {"command": secret.text, "description": "Run the command"}
        )
        result = "ok"
        return [
            _record(assistant, rng, message),
            _record(
                user,
                rng,
                _tool_result(tool_id, result),
                toolUseResult={"stdout": result, "stderr": "", "interrupted": False},
            ),
        ]
    if where == "output":
        command = rng.choice(["cat .env", "env | sort", "./scripts/show-config.sh", "cat ~/.netrc"])
        tool_id, message = _tool_use(rng, "Bash", {"command": command, "description": "Show it"})
        return [
            _record(assistant, rng, message),
            _record(
                user,
                rng,
                _tool_result(tool_id, secret.text),
                toolUseResult={"stdout": secret.text, "stderr": "", "interrupted": False},
            ),
        ]
    path = rng.choice(["/home/dev/project/.env", "/home/dev/project/config/settings.yml"])
    write_id, write = _tool_use(rng, "Write", {"file_path": path, "content": secret.text})
    read_id, read = _tool_use(rng, "Read", {"file_path": path})
    shown = _numbered(secret.text)
    return [
        _record(assistant, rng, write),
        _record(user, rng, _tool_result(write_id, f"File created successfully at: {path}")),
        _record(assistant, rng, read),
        _record(
            user,
            rng,
            _tool_result(read_id, shown),
            toolUseResult={"type": "text", "file": {"filePath": path, "content": secret.text}},
        ),
    ]


def dump_line(record: Any) -> bytes:
    """A JSONL line as Claude Code writes it (JSON.stringify: compact, non-ASCII as is).

    With `plant_records`, what a test appends to a live session to watch a secret
    travel: `b"".join(dump_line(r) for r in plant_records(lines, secret, rng))`.
    """
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def plant_corpus(dst: Path, *, src: Path = CORPUS, seed: int = 0) -> PlantedCorpus:
    """Copy the transcripts under `src` to `dst` and plant every fake secret in them.

    Every secret goes into some file (several files get several), as new records
    inserted between real ones, and a few real user prompts get a secret appended.
    """
    factory = SecretFactory(seed)
    secrets = factory.all()
    rng = random.Random(seed + 1)
    shutil.copytree(src, dst)
    files = sorted(dst.rglob("*.jsonl"))
    planted = PlantedCorpus(dst, secrets, files)
    queue = list(secrets) * 2  # every secret twice, in two different files
    rng.shuffle(queue)
    per_file: dict[Path, list[FakeSecret]] = {f: [] for f in files}
    for i, secret in enumerate(queue):
        per_file[files[i % len(files)]].append(secret)
    for path, mine in per_file.items():
        raw_lines = path.read_bytes().splitlines(keepends=True)
        records: list[Any] = []
        for raw in raw_lines:
            try:
                records.append(json.loads(raw))
            except ValueError:
                records.append(None)
        real = [r for r in records if isinstance(r, dict)]
        out: list[bytes] = [r if r.endswith(b"\n") else r + b"\n" for r in raw_lines]
        marked: set[int] = set()
        for secret in mine:
            position = rng.randrange(len(out) + 1)
            new = [dump_line(r) for r in plant_records(real, secret, rng)]
            out[position:position] = new
            marked = {m + len(new) if m >= position else m for m in marked}
            marked.update(position + i for i, line in enumerate(new) if find_leaks(line, [secret]))
        # and one real prompt gets a secret pasted into it
        for index, record in enumerate(records):
            if not (isinstance(record, dict) and record.get("type") == "user"):
                continue
            message = record.get("message")
            if not (isinstance(message, dict) and isinstance(message.get("content"), str)):
                continue
            secret = mine[0] if mine else secrets[0]
            message["content"] += f"\n\nAlso, for the deploy: {secret.text}"
            target = _find_line(out, raw_lines[index])
            out[target] = dump_line(record)
            marked.add(target)
            break
        path.write_bytes(b"".join(out))
        planted.planted_lines[path] = marked
    return planted


def _find_line(lines: list[bytes], original: bytes) -> int:
    want = original if original.endswith(b"\n") else original + b"\n"
    return lines.index(want)


# ---- the grep


def forms(fragment: str) -> Iterator[tuple[str, bytes]]:
    """Every way a fragment may be spelled in a JSONL file."""
    yield "raw", fragment.encode()
    yield "json", json.dumps(fragment, ensure_ascii=False)[1:-1].encode()
    yield "json-ascii", json.dumps(fragment)[1:-1].encode()
    yield "json-slash", json.dumps(fragment)[1:-1].replace("/", "\\/").encode()


def find_leaks(data: bytes, secrets: Iterable[FakeSecret], where: str = "data") -> list[Leak]:
    leaks: list[Leak] = []
    for secret in secrets:
        for fragment in secret.fragments:
            for form, needle in forms(fragment):
                if needle in data:
                    leaks.append(Leak(secret, fragment, form, where))
    return leaks


def find_leaks_in_tree(root: Path, secrets: Iterable[FakeSecret]) -> list[Leak]:
    """Grep every file under `root`, whatever its name, for every planted secret."""
    secrets = list(secrets)
    leaks: list[Leak] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # a temporary file that was renamed meanwhile: its content is elsewhere
        leaks.extend(find_leaks(data, secrets, str(path)))
    return leaks
