"""Provider tokens: a distinctive prefix and a body of characters JSON never escapes.

Every regex starts with a literal, so `re` can search for it quickly; the word boundary
before the prefix is a lookbehind placed after it. (A regex that starts with a
lookbehind is tried at every position of the string: measured 50x slower.)
"""

from __future__ import annotations

import re

from karmad.redact.rule import Rule, raw_anchor


def _b(prefix: str, before: str = "[A-Za-z0-9]") -> str:
    """`prefix` (a fixed-width regex), not preceded by a character of `before`."""
    return f"{prefix}(?<!{before}{prefix})"


_B64_BEFORE = "[A-Za-z0-9+/_-]"
"""For prefixes made only of base64 letters: never match inside a base64 blob (an `=`
before is fine: padding only ends a blob, and `KEY=AKIA...` must match)."""
_END_B64 = r"(?![A-Za-z0-9+/=_-])"


def _token(kind: str, regex: str, *anchors: bytes) -> Rule:
    return Rule((kind,), re.compile(regex, re.ASCII), tuple(raw_anchor(a) for a in anchors))


TOKEN_RULES: tuple[Rule, ...] = (
    _token(
        "private-key",
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        # bounded, so a string full of BEGIN lines without an END stays linear
        r"(?:[\s\S]{0,65536}?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        r"|(?:[A-Za-z0-9+/=:,. \t\r\n-]|\\[rn])*)",
        rb"PRIVATE KEY",
    ),
    _token(
        "private-key",
        r"Private-Lines:[ \t]*\d+[ \t]*(?:\r?\n|\\r?\\n)"
        r"(?P<secret>(?:[A-Za-z0-9+/=]+[ \t]*(?:\r?\n|\\r?\\n|$))+)",
        rb"Private-Lines:",
    ),
    _token(
        "anthropic-key",
        _b("sk-ant-") + r"[A-Za-z0-9_-]{20,}",
        rb"sk-ant-[A-Za-z0-9_-]{20}",
    ),
    _token(
        "openai-key",
        _b("sk-") + r"(?:(?:proj|svcacct|admin|None|or-v1)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{32,})",
        rb"sk-(?:proj|svcacct|admin|None|or-v1)-[A-Za-z0-9_-]{20}",
        rb"sk-[A-Za-z0-9]{32}",
    ),
    _token(
        "aws-access-key",
        _b("(?:AKIA|ASIA|ABIA|ACCA)", _B64_BEFORE) + r"[A-Z0-9]{16}" + _END_B64,
        rb"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}",
    ),
    _token(
        "github-token",
        _b("gh[pousr]_") + r"[A-Za-z0-9]{36,255}|" + _b("github_pat_") + r"[A-Za-z0-9_]{22,255}",
        rb"gh[pousr]_[A-Za-z0-9]{36}",
        rb"github_pat_[A-Za-z0-9_]{22}",
    ),
    _token(
        "gitlab-token",
        _b("gl") + r"(?:pat|dt|rt|ptt|cbt|ft|imt|oas|soat|agent)-[A-Za-z0-9_-]{20,}",
        rb"gl(?:pat|dt|rt|ptt|cbt|ft|imt|oas|soat|agent)-[A-Za-z0-9_-]{20}",
    ),
    _token(
        "slack-token",
        _b("xox")
        + r"[abeoprs](?:\.xox[abeoprs])?-[A-Za-z0-9-]{10,}|"
        + _b("xapp-")
        + r"\d-[A-Za-z0-9-]{10,}",
        rb"xox[abeoprs](?:\.xox[abeoprs])?-[A-Za-z0-9-]{10}",
        rb"xapp-\d-[A-Za-z0-9-]{10}",
    ),
    _token(
        "slack-webhook",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/+-]{8,})",
        rb"hooks\.slack\.com",
    ),
    _token(
        "discord-webhook",
        r"discord(?:app)?\.com/api/webhooks/(?P<secret>\d+/[A-Za-z0-9_-]{20,})",
        rb"discord(?:app)?\.com/api/webhooks",
    ),
    _token(
        "stripe-key",
        _b("(?:sk|rk)_")
        + r"(?:live|test)_[A-Za-z0-9]{16,}|"
        + _b("whsec_")
        + r"[A-Za-z0-9+/=]{24,}",
        rb"k_(?:live|test)_[A-Za-z0-9]{16}",
        rb"whsec_[A-Za-z0-9+/=]{24}",
    ),
    _token(
        "google-api-key",
        _b("AIza", _B64_BEFORE) + r"[0-9A-Za-z_-]{35}" + _END_B64,
        rb"AIza[0-9A-Za-z_-]{35}",
    ),
    _token(
        "google-oauth",
        _b("GOCSPX-") + r"[A-Za-z0-9_-]{20,}|" + _b(r"ya29\.") + r"[0-9A-Za-z_-]{20,}",
        rb"GOCSPX-[A-Za-z0-9_-]{20}",
        rb"ya29\.[0-9A-Za-z_-]{20}",
    ),
    _token("npm-token", _b("npm_") + r"[A-Za-z0-9]{36,}", rb"npm_[A-Za-z0-9]{36}"),
    _token("pypi-token", _b("pypi-Ag") + r"[A-Za-z0-9_-]{50,}", rb"pypi-Ag[A-Za-z0-9_-]{50}"),
    _token("huggingface-token", _b("hf_") + r"[A-Za-z0-9]{30,}", rb"hf_[A-Za-z0-9]{30}"),
    _token(
        "sendgrid-key",
        _b(r"SG\.") + r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",
        rb"SG\.[A-Za-z0-9_-]{16}",
    ),
    _token(
        "twilio-key",
        _b("SK", _B64_BEFORE) + r"[0-9a-fA-F]{32}" + _END_B64,
        rb"SK[0-9a-fA-F]{32}",
    ),
    _token(
        "digitalocean-token",
        _b("do[opr]_v1_") + r"[a-f0-9]{64}",
        rb"do[opr]_v1_[a-f0-9]{64}",
    ),
    _token(
        "doppler-token",
        _b(r"dp\.") + r"(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",
        rb"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40}",
    ),
    _token(
        "shopify-token",
        _b("shp") + r"(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
        rb"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",
    ),
    _token(
        "vault-token",
        _b(r"hv[sb]\.") + r"[A-Za-z0-9_-]{24,}",
        rb"hv[sb]\.[A-Za-z0-9_-]{24}",
    ),
    _token(
        "age-secret-key",
        r"AGE-SECRET-KEY-1[0-9A-Z]{58}",
        rb"AGE-SECRET-KEY-1[0-9A-Z]{58}",
    ),
    _token(
        "api-token",
        "|".join(
            (
                _b("dckr_pat_") + r"[A-Za-z0-9_-]{20,}",  # Docker Hub
                _b("lin_") + r"(?:api|oauth)_[A-Za-z0-9]{32,}",  # Linear
                _b("PMAK-") + r"[a-f0-9]{24}-[a-f0-9]{34}",  # Postman
                _b("tskey-") + r"[a-z]+-[A-Za-z0-9-]{16,}",  # Tailscale
                _b("gl(?:sa|c_)") + r"_?[A-Za-z0-9+/=_]{32,}",  # Grafana
                _b("sntr") + r"[ysu]s?_[A-Za-z0-9+/=_-]{30,}",  # Sentry
                _b("gsk_") + r"[A-Za-z0-9]{40,}",  # Groq
                _b("pcsk_") + r"[A-Za-z0-9_]{40,}",  # Pinecone
                _b("lsv2_") + r"(?:pt|sk)_[a-f0-9]{32}_[a-f0-9]{10}",  # LangSmith
                _b("r8_") + r"[A-Za-z0-9]{37}",  # Replicate
                _b("xai-") + r"[A-Za-z0-9]{60,}",  # xAI
                _b("pplx-") + r"[A-Za-z0-9]{40,}",  # Perplexity
                _b("ops_eyJ") + r"[A-Za-z0-9+/=_-]{20,}",  # 1Password service accounts
                _b("ATATT3") + r"[A-Za-z0-9_=-]{30,}",  # Atlassian
                _b("sbp_") + r"[a-f0-9]{40}",  # Supabase
                _b("sq0") + r"(?:atp|csp)-[A-Za-z0-9_-]{22,}",  # Square
                _b("pscale_") + r"(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32,}",  # PlanetScale
                _b("dapi") + r"[a-f0-9]{32}(?:-\d)?",  # Databricks
                _b("figd_") + r"[A-Za-z0-9_-]{40,}",  # Figma
                r"FlyV1 fm\d_[A-Za-z0-9+/=_-]{20,}",  # Fly.io
            )
        ),
        rb"dckr_pat_[A-Za-z0-9_-]{20}",
        rb"lin_(?:api|oauth)_[A-Za-z0-9]{32}",
        rb"PMAK-[a-f0-9]{24}",
        rb"tskey-[a-z]+-[A-Za-z0-9-]{16}",
        rb"gl(?:sa|c_)_?[A-Za-z0-9+/=_]{32}",
        rb"sntr[ysu]s?_[A-Za-z0-9+/=_-]{30}",
        rb"gsk_[A-Za-z0-9]{40}",
        rb"pcsk_[A-Za-z0-9_]{40}",
        rb"lsv2_(?:pt|sk)_[a-f0-9]{32}",
        rb"r8_[A-Za-z0-9]{37}",
        rb"xai-[A-Za-z0-9]{60}",
        rb"pplx-[A-Za-z0-9]{40}",
        rb"ops_eyJ[A-Za-z0-9+/=_-]{20}",
        rb"ATATT3[A-Za-z0-9_=-]{30}",
        rb"sbp_[a-f0-9]{40}",
        rb"sq0(?:atp|csp)-[A-Za-z0-9_-]{22}",
        rb"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_.-]{32}",
        rb"dapi[a-f0-9]{32}",
        rb"figd_[A-Za-z0-9_-]{40}",
        rb"FlyV1 fm\d_",
    ),
    _token(
        "telegram-bot-token",
        r"\d{8,10}:AA[A-Za-z0-9_-]{33}",
        rb"\d{8}:AA[A-Za-z0-9_-]{33}",
    ),
    _token(
        "jwt",
        _b("eyJ") + r"[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ",
    ),
)
