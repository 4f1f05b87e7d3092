"""One redaction for every URL and error text: no password survives, whatever its form."""

from __future__ import annotations

import string
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from regressops.redact import redact_text, redact_url

# passwords with the characters that broke the old patterns: "@", ":", "%", "/"
password = st.text(
    alphabet=string.ascii_letters + string.digits + "@:%/!$&'()*+,;=-._~",
    min_size=4,
    max_size=20,
).filter(lambda p: p.strip("@:/%") and not p.isdigit())
user = st.one_of(
    st.just(""), st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=8)
)
scheme = st.sampled_from(
    ["postgresql", "postgresql+psycopg", "mysql+pymysql", "http", "https", "mssql+pyodbc"]
)
host = st.sampled_from(["db", "127.0.0.1", "db.example.com:5432", "[::1]:5432"])


@given(scheme, user, password, host, st.booleans())
def test_no_password_survives_in_a_url(
    scheme: str, user: str, pw: str, host: str, encoded: bool
) -> None:
    secret = quote(pw, safe="") if encoded else pw
    shown = redact_text(f"cannot connect to {scheme}://{user}:{secret}@{host}/db: refused")
    assert shown == f"cannot connect to {scheme}://{user}:***@{host}/db: refused"


@given(st.lists(st.tuples(scheme, user, password, host), min_size=2, max_size=4))
def test_every_url_of_a_message_is_redacted(urls: list[tuple[str, str, str, str]]) -> None:
    text = " and ".join(f"{s}://{u}:{p}@{h}/db" for s, u, p, h in urls)
    assert redact_text(text) == " and ".join(f"{s}://{u}:***@{h}/db" for s, u, _, h in urls)


@given(
    st.sampled_from(["password", "passwd", "api_key", "token", "secret", "sslpassword"]),
    password.filter(lambda p: not set(p) & set("&# ")),
)
def test_query_string_secrets_are_masked(key: str, pw: str) -> None:
    url = f"postgresql://u@db/x?sslmode=require&{key}={pw}"
    shown = redact_text(url)
    assert shown == f"postgresql://u@db/x?sslmode=require&{key}=***"


def test_empty_user_with_password_is_masked() -> None:
    # the registry's old pattern left this one visible
    assert redact_text("postgresql://:pw@host/db") == "postgresql://:***@host/db"


def test_text_without_secrets_is_unchanged() -> None:
    for text in ("http://127.0.0.1:5000", "sqlite:///x.db", "file:///tmp/a@b", "user@example.com"):
        assert redact_text(text) == text


def test_libpq_keyword_passwords_are_masked() -> None:
    assert redact_text("host=db password='a b' user=x") == "host=db password=*** user=x"


def test_redact_url_drops_the_password_even_with_reserved_characters() -> None:
    shown = redact_url("postgresql+psycopg://etl:p%40ss%3Aw@db:5432/shop?password=x&sslmode=on")
    assert shown == "postgresql+psycopg://etl@db:5432/shop?sslmode=on"
