"""Config validation: every mistake becomes one sentence naming the file and the key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kittiwake.core.config import config_from_dict, load_config, parse_duration
from kittiwake.core.errors import ConfigError

GOOD = """\
[accounts.work]
email = "alice@example.org"
name = "Alice Example"

[accounts.work.imap]
host = "imap.example.org"
user = "alice"
password_command = "pass show mail/work"

[accounts.work.smtp]
host = "smtp.example.org"
security = "starttls"
password_env = "WORK_PW"

[accounts.home]
email = "me@home.example"
[accounts.home.pop3]
host = "pop.home.example"
security = "starttls"
keep_on_server = 14
check_every = "10m"
password = "inline"

[ui]
theme = "kittiwake-light"

[keys]
quit = "ctrl+q"
"""


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_good_config_resolves_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    work = config.accounts["work"]
    assert work.kind == "imap"
    assert work.imap is not None and work.imap.port == 993 and work.imap.user == "alice"
    assert work.smtp is not None and work.smtp.port == 587
    assert work.smtp.user == "alice@example.org"  # login defaults to the address
    home = config.accounts["home"]
    assert home.kind == "pop3"
    assert home.pop3 is not None and home.pop3.port == 110 and home.pop3.keep_on_server == 14
    assert config.ui.theme == "kittiwake-light"
    assert config.keys == {"quit": "ctrl+q"}
    assert config.warnings == ()
    assert work.imap.disable == []


def test_disable_lists_capabilities_to_switch_off(tmp_path: Path) -> None:
    text = GOOD.replace(
        'password_command = "pass show mail/work"\n',
        'password_command = "pass show mail/work"\ndisable = ["QRESYNC", "notify"]\n',
    )
    work = load_config(write(tmp_path, text)).accounts["work"]
    assert work.imap is not None and work.imap.disable == ["QRESYNC", "notify"]


def test_inline_password_in_readable_file_warns(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD, 0o644))
    assert len(config.warnings) == 1
    assert "accounts.home" in config.warnings[0] and "inline password" in config.warnings[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[accounts.work\n", "line 1, column 15"),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\nport = "x"\n',
            "accounts.w.imap.port: expected a whole number, got a string",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\npasword_command = "x"\n',
            "accounts.w.imap: unknown key 'pasword_command'",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nport = 1\n',
            "accounts.w.imap: missing required key 'host'",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\nsecurity = "ssl"\n',
            "accounts.w.imap.security: 'ssl' is not one of the allowed values",
        ),
        ('[accounts.w]\nemail = "a@b"\n', "accounts.w: needs exactly one of"),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost="h"\n[accounts.w.pop3]\nhost="h"\n',
            "accounts.w: needs exactly one of",
        ),
        ('[accounts."bad/name"]\nemail = "a@b"\n', "account names may use"),
        ('[acounts.w]\nemail = "a@b"\n', "unknown key 'acounts'"),
        ("", "no accounts"),
        (
            '[accounts.w]\nemail = "nobody"\n[accounts.w.imap]\nhost = "h"\n',
            "accounts.w.email: 'nobody' is not an email address",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\npassword = "p"\n'
            'password_command = "c"\n',
            "set only one of password, password_command",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.pop3]\nhost = "h"\ncheck_every = "soon"\n',
            "accounts.w.pop3.check_every: 'soon' is not a duration",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.pop3]\nhost = "h"\nkeep_on_server = "yes"\n',
            "accounts.w.pop3.keep_on_server: expected true or false or a whole number, got a string",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\nport = 70000\n',
            "accounts.w.imap.port: 70000 is not a TCP port",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\nca_file = "/nope.pem"\n',
            "accounts.w.imap.ca_file: /nope.pem does not exist",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.pop3]\nhost = "h"\ndeliver_to = "x/INBOX"\n',
            "accounts.w.pop3.deliver_to",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\ndisable = "QRESYNC"\n',
            "accounts.w.imap.disable: expected a list, got a string",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\ndisable = ["Q RESYNC"]\n',
            "accounts.w.imap.disable: 'Q RESYNC' is not a capability name",
        ),
        (
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\ndisable = ["imap4rev1"]\n',
            "accounts.w.imap.disable: imap4rev1 is IMAP itself",
        ),
        (
            '[ui]\ntheme = 3\n[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\n',
            "ui.theme: expected a string, got a whole number",
        ),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.message
    assert message.startswith(f"{path}: "), message
    assert expected in message, message
    assert "\n" not in message and "Traceback" not in message


def test_missing_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b"\xff\xfe bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path)


def test_deliver_to_must_name_an_imap_account() -> None:
    data = {
        "accounts": {
            "mail": {"email": "a@b", "imap": {"host": "h"}},
            "old": {"email": "o@b", "pop3": {"host": "p", "deliver_to": "mail/Old"}},
        }
    }
    config = config_from_dict(data)
    assert config.accounts["old"].pop3 is not None
    assert config.accounts["old"].pop3.deliver_to == "mail/Old"


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("2d", 172800), ("45", 45)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_path_keys_expand_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation expands ``~``; whatever later opens the path must get the expanded one
    (the TLS setup opened the literal "~/certs/ca.pem" and failed with FileNotFoundError)."""
    import trustme

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "certs").mkdir()
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "certs" / "ca.pem"))
    config = load_config(
        write(
            tmp_path,
            '[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\n'
            'ca_file = "~/certs/ca.pem"\n[accounts.w.smtp]\nhost = "s"\n'
            'ca_file = "~/certs/ca.pem"\n'
            '[accounts.p]\nemail = "p@b"\n[accounts.p.pop3]\nhost = "h"\n'
            'ca_file = "~/certs/ca.pem"\nmaildir = "~/Mail/p"\n',
        )
    )
    ca = str(tmp_path / "certs" / "ca.pem")
    work, pop = config.accounts["w"], config.accounts["p"]
    assert work.imap is not None and work.imap.ca_file == ca
    assert work.smtp is not None and work.smtp.ca_file == ca
    assert pop.pop3 is not None and pop.pop3.ca_file == ca
    assert pop.pop3.maildir == str(tmp_path / "Mail" / "p")


@pytest.mark.parametrize("where", ["/etc/passwd", "DIR"])
def test_ca_file_that_is_not_pem_is_a_config_error(tmp_path: Path, where: str) -> None:
    target = str(tmp_path) if where == "DIR" else where
    path = write(
        tmp_path,
        f'[accounts.w]\nemail = "a@b"\n[accounts.w.imap]\nhost = "h"\nca_file = "{target}"\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = info.value.message
    assert message.startswith(f"{path}: accounts.w.imap.ca_file: {target} "), message
    assert "\n" not in message
    if where != "DIR":
        assert message.endswith("is not a PEM certificate file"), message
