"""The user's config: one TOML file, validated into typed settings.

Every problem becomes a ``ConfigError`` whose message names the file, the key (and the line
for TOML syntax errors) in one sentence. Unknown keys are errors, not silently ignored: a typo
in ``pasword_command`` must not turn into "no password".
"""

from __future__ import annotations

import os
import re
import ssl
import stat
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

import msgspec

from kittiwake.core.errors import ConfigError

Security = Literal["tls", "starttls", "none"]
_T = TypeVar("_T")

PASSWORD_KEYS = (
    "password",
    "password_command",
    "password_env",
    "password_file",
    "password_keyring",
    "oauth2_token_command",
)
"""The keys that say how to log in; a server section has at most one of them."""
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_DEFAULT_PORTS = {
    "imap": {"tls": 993, "starttls": 143, "none": 143},
    "pop3": {"tls": 995, "starttls": 110, "none": 110},
    "smtp": {"tls": 465, "starttls": 587, "none": 587},
}


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class KeyringEntry(_Strict):
    """An entry of the system keyring (the ``keyring`` library: Secret Service, KWallet, macOS
    Keychain, Windows Credential Locker), named as that library names entries."""

    service: str
    user: str


class OAuth2Config(_Strict):
    """``[accounts.NAME.oauth2]``: where the account signs in with OAuth2."""

    client_id: str
    """Your own client id (registered with Microsoft Entra or Google Cloud: see the README)."""
    provider: Literal["microsoft", "google"] | None = None
    """A preset of endpoints and scopes; None: give authorize_url and token_url."""
    client_secret: str | None = None
    """Google's desktop clients have one that is not secret; Microsoft's public clients none."""
    tenant: str = "common"
    """Microsoft: "common", "organizations", "consumers" or your tenant's id or domain."""
    authorize_url: str | None = None
    token_url: str | None = None
    device_url: str | None = None
    scopes: list[str] | None = None
    """Instead of the preset's (IMAP, POP3 and SMTP scopes and offline_access)."""
    ca_file: str | None = None
    """An extra trust anchor for the sign-in server (PEM)."""


class ServerConfig(_Strict):
    """How to reach and log in to one server."""

    host: str
    port: int | None = None
    """Defaults from ``security``: see ``_DEFAULT_PORTS``."""
    security: Security = "tls"
    """"tls" (implicit TLS), "starttls" (required, never downgraded) or "none" (plain text)."""
    user: str | None = None
    """Login name; defaults to the account's email address."""
    password: str | None = None
    """Inline password: discouraged, warned about when the file is readable by others."""
    password_command: str | list[str] | None = None
    """Run without a shell; the first line of its output is the password."""
    password_env: str | None = None
    """Name of an environment variable holding the password."""
    password_file: str | None = None
    """A file readable only by the user (mode 600); its first line is the password. ``~`` is
    expanded when the config is loaded; the path must then be absolute."""
    password_keyring: KeyringEntry | None = None
    """``{ service = "...", user = "..." }``: read from the system keyring, in this process."""
    oauth2_token_command: str | list[str] | None = None
    """Prints an OAuth2 access token (XOAUTH2/OAUTHBEARER) instead of a password."""
    ca_file: str | None = None
    """An extra trust anchor (PEM), on top of the system store."""
    timeout: float = 30.0
    """Seconds to wait for any single server reply."""
    auth: Literal["password", "oauth2"] = "password"
    """"oauth2": sign in through the account's [accounts.NAME.oauth2] section."""


class ImapConfig(ServerConfig):
    poll_every: str = "5m"
    """Without NOTIFY, how often the folders not being watched by IDLE are checked."""
    disable: list[str] = msgspec.field(default_factory=list)
    """Capabilities the server advertises but breaks (e.g. ``["QRESYNC", "NOTIFY"]``):
    Kittiwake acts as if they were not offered."""


class Pop3Config(ServerConfig):
    keep_on_server: bool | int = True
    """true: leave mail on the server; false: delete once stored; N: delete after N days."""
    check_every: str = "5m"
    maildir: str | None = None
    """Where the local Maildir++ tree lives; default: the XDG data dir."""
    deliver_to: str | None = None
    """"ACCOUNT/FOLDER": append downloaded mail to a folder of an IMAP account instead."""


class SmtpConfig(ServerConfig):
    save_sent: bool = True
    """Save a copy to Sent after sending; false when the server files sent mail itself."""


class IdentityConfig(_Strict):
    """``[[accounts.NAME.identities]]``: another address the account sends from."""

    address: str
    name: str = ""
    """Display name for From; default: the account's name."""
    signature: str | None = None
    signature_file: str | None = None
    """Default: the account's signature."""


class AddressBookConfig(_Strict):
    """``[addressbook]``: where completion looks besides the mail already seen."""

    query_command: str | list[str] | None = None
    """mutt's query protocol: a status line, then ``address<TAB>name<TAB>extra`` lines. Run
    without a shell; the typed text replaces ``%s`` in an argument, else is the last one."""
    timeout: float = 5.0


class AccountConfig(_Strict):
    email: str
    name: str = ""
    """Display name for From."""
    signature: str | None = None
    """Added below "-- " in new messages, replies and forwards."""
    signature_file: str | None = None
    """The signature read from this file (``~`` expanded) each time a message is started."""
    signature_position: Literal["bottom", "above-quote"] = "bottom"
    """In a reply or forward: after the quoted text, or between your text and the quote."""
    identities: list[IdentityConfig] = []
    imap: ImapConfig | None = None
    pop3: Pop3Config | None = None
    smtp: SmtpConfig | None = None
    archive_folder: str | None = None
    """Used by archive when the server marks no \\Archive folder."""
    addresses: list[str] = []
    """Other addresses that are yours (removed from reply-all)."""
    oauth2: OAuth2Config | None = None
    pgp_sign: bool = False
    """Sign every message by default (OpenPGP; ``p`` on the review screen changes it)."""
    pgp_encrypt: bool = False
    """Encrypt by default when every recipient has a key in the keyring."""
    crypto: Literal["openpgp", "smime"] | None = None
    """How ``p`` on the review screen signs and encrypts: OpenPGP (gpg) or S/MIME (gpgsm).
    Default: "smime" when ``smime_sign`` or ``smime_encrypt`` is set, else "openpgp"."""
    smime_sign: bool = False
    """Sign every message by default with S/MIME (sets ``crypto = "smime"``)."""
    smime_encrypt: bool = False
    """Encrypt by default with S/MIME when every recipient has a certificate."""
    autocrypt: bool = False
    """Autocrypt Level 1 (OpenPGP): send your key in an ``Autocrypt`` header, learn peers'
    keys from theirs, and propose encryption when every recipient can read it."""
    autocrypt_prefer_encrypt: Literal["mutual", "nopreference"] = "nopreference"
    """ "mutual": encrypt by default to peers who say mutual too (and ask them to)."""


class UiConfig(_Strict):
    theme: str = "kittiwake-dark"
    bell: bool = False
    """Ring the terminal bell when new mail arrives in an inbox."""
    editor: str | None = None
    """The command that edits a message body; "builtin" for the editor inside the app.
    Default: $VISUAL, else $EDITOR, else the built-in one."""


class CryptoConfig(_Strict):
    """``[crypto]``: signed and encrypted mail through the user's GnuPG."""

    gpg: str = "gpg"
    """The gpg program (a name on $PATH or an absolute path)."""
    gpgsm: str = "gpgsm"
    """The gpgsm program, for S/MIME; it uses the same GnuPG home (``pubring.kbx``)."""
    gnupg_home: str | None = None
    """The GnuPG home; default $GNUPGHOME, else ~/.gnupg."""
    autocrypt_dir: str | None = None
    """Where the Autocrypt peer table and keyring live; default
    ``$XDG_DATA_HOME/kittiwake/autocrypt``."""
    index_decrypted: bool = False
    """Index the words of decrypted messages for search. Off: decrypted text stays in memory
    and the cache only ever holds the message as it came, encrypted."""


@dataclass(frozen=True)
class Identity:
    """An address an account sends from, with its name and signature (text, or a file)."""

    address: str
    name: str
    signature: str | None = None
    signature_file: str | None = None


@dataclass(frozen=True)
class Account:
    """A validated account: exactly one receive section, ports resolved."""

    key: str
    email: str
    name: str
    imap: ImapConfig | None
    pop3: Pop3Config | None
    smtp: SmtpConfig | None
    archive_folder: str | None
    addresses: tuple[str, ...]
    oauth2: OAuth2Config | None = None
    signature: str | None = None
    signature_file: str | None = None
    signature_position: Literal["bottom", "above-quote"] = "bottom"
    identities: tuple[Identity, ...] = ()
    """The account's own address first, then ``[[accounts.NAME.identities]]``."""
    pgp_sign: bool = False
    """Sign by default, with the account's ``crypto`` protocol (``pgp_sign`` or
    ``smime_sign`` in the file, whichever the protocol is)."""
    pgp_encrypt: bool = False
    """Encrypt by default when possible, with the account's ``crypto`` protocol."""
    crypto: Literal["openpgp", "smime"] = "openpgp"
    autocrypt: bool = False
    autocrypt_mutual: bool = False
    """``autocrypt_prefer_encrypt = "mutual"``."""

    @property
    def kind(self) -> Literal["imap", "pop3"]:
        return "imap" if self.imap is not None else "pop3"


@dataclass(frozen=True)
class Config:
    path: Path | None
    accounts: dict[str, Account]
    ui: UiConfig = field(default_factory=UiConfig)
    keys: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    tools: ToolsConfig = field(default_factory=lambda: ToolsConfig())
    """``[pipe]`` and ``[open]``: the user's own programs (see the end of this module)."""
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """``[aliases]``: a name typed in To/Cc/Bcc stands for these addresses."""
    addressbook: AddressBookConfig = field(default_factory=AddressBookConfig)
    crypto: CryptoConfig = field(default_factory=CryptoConfig)


def is_valid_account_name(name: str) -> bool:
    """Letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64."""
    return _ACCOUNT_NAME.fullmatch(name) is not None


def parse_duration(text: str) -> float:
    """ "90s", "5m", "1h", "2d" or plain seconds, as seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def load_config(path: Path) -> Config:
    """Read and validate the config file at ``path``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {_toml_error(exc)}") from None
    config = config_from_dict(data, where=str(path))
    warnings = list(config.warnings)
    if _readable_by_others(path):
        for account in config.accounts.values():
            for section in (account.imap, account.pop3, account.smtp):
                if section is not None and section.password is not None:
                    warnings.append(
                        f"{path}: accounts.{account.key} has an inline password in a file "
                        "other users can read; use password_command or chmod 600"
                    )
                    break
    return replace(config, path=path, warnings=tuple(warnings))


def config_from_dict(data: dict[str, Any], where: str = "config") -> Config:
    """Validate already-parsed TOML. ``where`` prefixes every error message."""
    known = {"accounts", "ui", "keys", "aliases", "addressbook", "crypto", *TOOL_SECTIONS}
    for key in data:
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key '{key}' (expected one of: {', '.join(sorted(known))})"
            )
    aliases = _aliases(data.get("aliases", {}), where)
    addressbook = _convert(data.get("addressbook", {}), AddressBookConfig, where, "addressbook")
    if addressbook.query_command is not None and not _command_words(addressbook.query_command):
        raise ConfigError(f"{where}: addressbook.query_command: must not be empty")
    if addressbook.timeout <= 0:
        raise ConfigError(f"{where}: addressbook.timeout: must be a positive number of seconds")
    ui = _convert(data.get("ui", {}), UiConfig, where, "ui")
    crypto = _convert(data.get("crypto", {}), CryptoConfig, where, "crypto")
    if crypto.gnupg_home is not None:
        crypto = msgspec.structs.replace(crypto, gnupg_home=_expand(crypto.gnupg_home))
    if crypto.autocrypt_dir is not None:
        crypto = msgspec.structs.replace(crypto, autocrypt_dir=_expand(crypto.autocrypt_dir))
    keys_raw = data.get("keys", {})
    if not isinstance(keys_raw, dict):
        raise ConfigError(f'{where}: keys: expected a table of action = "key"')
    keys: dict[str, str] = {}
    for action, keyspec in keys_raw.items():
        if not isinstance(keyspec, str):
            raise ConfigError(f'{where}: keys.{action}: expected a string such as "ctrl+r"')
        keys[action] = keyspec
    accounts_raw = data.get("accounts", {})
    if not isinstance(accounts_raw, dict):
        raise ConfigError(f"{where}: accounts: expected a table of [accounts.NAME] sections")
    if not accounts_raw:
        raise ConfigError(f"{where}: no accounts: add an [accounts.NAME] section")
    accounts = {name: _account(name, value, where) for name, value in accounts_raw.items()}
    _check_deliver_to(accounts, where)
    return Config(
        None,
        accounts,
        ui,
        keys,
        aliases=aliases,
        addressbook=addressbook,
        crypto=crypto,
        tools=_tools(data, where),
    )


_ALIAS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _aliases(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    """``name = "a@b"`` or ``name = ["A <a@b>", "c@d"]``; a name has no "@" (it would be
    taken for an address) and each entry must hold one."""
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: aliases: expected a table of name = "address" or a list')
    out: dict[str, tuple[str, ...]] = {}
    for name, entry in value.items():
        at = f"aliases.{name}"
        if not _ALIAS_NAME.match(name):
            raise ConfigError(
                f"{where}: {at}: alias names may use letters, digits, '.', '_', '+' and '-' only"
            )
        items = [entry] if isinstance(entry, str) else entry
        if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{where}: {at}: expected an address or a list of addresses")
        for item in items:
            if "@" not in item:
                raise ConfigError(f"{where}: {at}: {item!r} is not an email address")
        out[name] = tuple(items)
    return out


def _command_words(command: str | list[str]) -> list[str]:
    import shlex

    try:
        return shlex.split(command) if isinstance(command, str) else list(command)
    except ValueError:
        return []


def _account(name: str, value: Any, where: str) -> Account:
    at = f"accounts.{name}"
    if not _ACCOUNT_NAME.match(name):
        raise ConfigError(
            f"{where}: {at}: account names may use letters, digits, '.', '_' and '-' only"
        )
    cfg = _convert(value, AccountConfig, where, at)
    if (cfg.imap is None) == (cfg.pop3 is None):
        raise ConfigError(f"{where}: {at}: needs exactly one of [{at}.imap] or [{at}.pop3]")
    if "@" not in cfg.email:
        raise ConfigError(f"{where}: {at}.email: {cfg.email!r} is not an email address")
    sections: dict[str, ServerConfig | None] = {
        "imap": cfg.imap,
        "pop3": cfg.pop3,
        "smtp": cfg.smtp,
    }
    resolved: dict[str, Any] = {}
    for proto, section in sections.items():
        if section is None:
            resolved[proto] = None
            continue
        _check_server(section, where, f"{at}.{proto}")
        port = section.port or _DEFAULT_PORTS[proto][section.security]
        user = section.user or cfg.email
        password_file = section.password_file
        if password_file is not None:
            password_file = _absolute_path(password_file, where, f"{at}.{proto}.password_file")
        # Paths are stored expanded: whatever opens them later sees what validation saw.
        ca_file = _expand(section.ca_file)
        resolved[proto] = msgspec.structs.replace(
            section, port=port, user=user, password_file=password_file, ca_file=ca_file
        )
    if resolved["pop3"] is not None:
        resolved["pop3"] = msgspec.structs.replace(
            resolved["pop3"], maildir=_expand(resolved["pop3"].maildir)
        )
    if cfg.pop3 is not None:
        _check_duration(cfg.pop3.check_every, where, f"{at}.pop3.check_every")
        keep = cfg.pop3.keep_on_server
        if not isinstance(keep, bool) and keep < 0:
            raise ConfigError(f"{where}: {at}.pop3.keep_on_server: days cannot be negative")
    if cfg.imap is not None:
        _check_duration(cfg.imap.poll_every, where, f"{at}.imap.poll_every")
        _check_disable(cfg.imap.disable, where, f"{at}.imap.disable")
    oauth2 = cfg.oauth2
    if oauth2 is not None:
        from kittiwake.core.oauth2.settings import check_oauth2

        check_oauth2(oauth2, where, f"{at}.oauth2")
        if oauth2.ca_file is not None:
            problem = ca_file_problem(oauth2.ca_file)
            if problem is not None:
                raise ConfigError(f"{where}: {at}.oauth2.ca_file: {problem}")
            oauth2 = msgspec.structs.replace(oauth2, ca_file=_expand(oauth2.ca_file))
    for proto in ("imap", "pop3", "smtp"):
        section = resolved[proto]
        if section is None or section.auth != "oauth2":
            continue
        if oauth2 is None:
            raise ConfigError(
                f'{where}: {at}.{proto}.auth: "oauth2" needs an [{at}.oauth2] section '
                "(provider and client_id)"
            )
        others = [k for k in PASSWORD_KEYS if getattr(section, k) is not None]
        if others:
            raise ConfigError(
                f'{where}: {at}.{proto}: auth = "oauth2" signs in by itself; remove {others[0]}'
            )
    signature_file = _signature_file(cfg.signature, cfg.signature_file, where, at)
    protocol = _crypto_protocol(cfg, where, at)
    return Account(
        key=name,
        email=cfg.email,
        name=cfg.name,
        imap=resolved["imap"],
        pop3=resolved["pop3"],
        smtp=resolved["smtp"],
        archive_folder=cfg.archive_folder,
        addresses=tuple(cfg.addresses),
        oauth2=oauth2,
        signature=cfg.signature,
        signature_file=signature_file,
        signature_position=cfg.signature_position,
        identities=_identities(cfg, signature_file, where, at),
        crypto=protocol,
        autocrypt=cfg.autocrypt,
        autocrypt_mutual=cfg.autocrypt_prefer_encrypt == "mutual",
        pgp_sign=cfg.smime_sign if protocol == "smime" else cfg.pgp_sign,
        pgp_encrypt=cfg.smime_encrypt if protocol == "smime" else cfg.pgp_encrypt,
    )


def _crypto_protocol(cfg: AccountConfig, where: str, at: str) -> Literal["openpgp", "smime"]:
    """The account's one protocol: options of the other are a mistake, not a silent no-op."""
    smime = cfg.smime_sign or cfg.smime_encrypt
    pgp = cfg.pgp_sign or cfg.pgp_encrypt
    protocol = cfg.crypto or ("smime" if smime else "openpgp")
    if (protocol == "smime" and pgp) or (protocol == "openpgp" and smime):
        raise ConfigError(
            f'{where}: {at}: crypto = "{protocol}" does not go with '
            f"{'pgp_sign/pgp_encrypt' if protocol == 'smime' else 'smime_sign/smime_encrypt'}"
        )
    if protocol == "smime" and cfg.autocrypt:
        raise ConfigError(f"{where}: {at}: autocrypt is OpenPGP; it does not go with S/MIME")
    return protocol


_CAPABILITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9=+.\-]*")


def _check_disable(names: list[str], where: str, at: str) -> None:
    """A capability switched off must be one (a typo would silently switch off nothing)."""
    for name in names:
        if not _CAPABILITY_NAME.fullmatch(name):
            raise ConfigError(
                f'{where}: {at}: {name!r} is not a capability name (such as "QRESYNC")'
            )
        if name.upper() in ("IMAP4REV1", "IMAP4REV2"):
            raise ConfigError(f"{where}: {at}: {name} is IMAP itself and cannot be switched off")


def _signature_file(text: str | None, path: str | None, where: str, at: str) -> str | None:
    """The file checked now (a typo is a config error, not a silently unsigned message)."""
    if path is None:
        return None
    if text is not None:
        raise ConfigError(f"{where}: {at}: set only one of signature, signature_file")
    full = _absolute_path(path, where, f"{at}.signature_file")
    if not Path(full).is_file():
        raise ConfigError(f"{where}: {at}.signature_file: {path} is not a file")
    return full


def _identities(
    cfg: AccountConfig, signature_file: str | None, where: str, at: str
) -> tuple[Identity, ...]:
    """The account's own address first (its default), then each configured identity; a
    name or signature not given is the account's."""
    out = [Identity(cfg.email, cfg.name, cfg.signature, signature_file)]
    seen = {cfg.email.lower()}
    for n, ident in enumerate(cfg.identities):
        here = f"{at}.identities[{n}]"
        if "@" not in ident.address:
            raise ConfigError(f"{where}: {here}.address: {ident.address!r} is not an email address")
        if ident.address.lower() in seen:
            raise ConfigError(f"{where}: {here}.address: {ident.address} is given twice")
        seen.add(ident.address.lower())
        own_file = _signature_file(ident.signature, ident.signature_file, where, here)
        if ident.signature is None and own_file is None:
            text, path = cfg.signature, signature_file
        else:
            text, path = ident.signature, own_file
        out.append(Identity(ident.address, ident.name or cfg.name, text, path))
    return tuple(out)


def _check_server(section: ServerConfig, where: str, at: str) -> None:
    sources = [k for k in PASSWORD_KEYS if getattr(section, k) is not None]
    if len(sources) > 1:
        raise ConfigError(f"{where}: {at}: set only one of {', '.join(sources)}")
    if section.port is not None and not 0 < section.port < 65536:
        raise ConfigError(f"{where}: {at}.port: {section.port} is not a TCP port")
    if section.ca_file is not None:
        problem = ca_file_problem(section.ca_file)
        if problem is not None:
            raise ConfigError(f"{where}: {at}.ca_file: {problem}")
    if section.timeout <= 0:
        raise ConfigError(f"{where}: {at}.timeout: must be a positive number of seconds")
    if not section.host.strip():
        raise ConfigError(f"{where}: {at}.host: must not be empty")


def _absolute_path(text: str, where: str, at: str) -> str:
    """``~`` expanded; relative paths are refused (they would depend on the directory
    Kittiwake happens to be started from)."""
    path = Path(text).expanduser()
    if not text.strip() or not path.is_absolute():
        raise ConfigError(f"{where}: {at}: {text!r} must be an absolute path or start with ~/")
    return str(path)


def _expand(path: str | None) -> str | None:
    """``~`` and ``~user`` expanded (TOML has no notion of a home directory)."""
    return None if path is None else str(Path(path).expanduser())


def ca_file_problem(ca_file: str) -> str | None:
    """What is wrong with ``ca_file`` as a trust anchor (its name first), or None.

    Loaded into a bare context (no system store: a millisecond), so a file that is not a
    PEM certificate is a config mistake named now, not a TLS error at every connection."""
    path = Path(ca_file).expanduser()
    if not path.exists():
        return f"{ca_file} does not exist"
    if not path.is_file():
        return f"{ca_file} is not a file"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except ssl.SSLError:
        return f"{ca_file} is not a PEM certificate file"
    except OSError as exc:
        return f"{ca_file} cannot be read ({exc.strerror or exc})"
    return None


def _check_duration(text: str, where: str, at: str) -> None:
    try:
        parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {at}: {exc}") from None


def _check_deliver_to(accounts: dict[str, Account], where: str) -> None:
    for account in accounts.values():
        target = account.pop3.deliver_to if account.pop3 else None
        if target is None:
            continue
        at = f"accounts.{account.key}.pop3.deliver_to"
        dest, _, folder = target.partition("/")
        if not folder or dest not in accounts or accounts[dest].imap is None:
            raise ConfigError(
                f'{where}: {at}: {target!r} must be "ACCOUNT/FOLDER" naming an IMAP account'
            )


_TYPE_WORDS = {
    "int": "a whole number",
    "str": "a string",
    "bool": "true or false",
    "float": "a number",
    "object": "a table",
    "array": "a list",
    "null": "nothing",
}


def _convert(value: Any, kind: type[_T], where: str, at: str) -> _T:
    try:
        return msgspec.convert(value, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(str(exc), at)}") from None


def _describe(msg: str, at: str) -> str:
    """Turn msgspec's "Expected `int`, got `str` - at `$.imap.port`" into plain words."""
    text, _, path = msg.partition(" - at `")
    path = path.rstrip("`").removeprefix("$")
    full = at + path if at else path.lstrip(".")
    if m := re.match(r"Object contains unknown field `(.+)`", text):
        return f"{full}: unknown key '{m.group(1)}'"
    if m := re.match(r"Object missing required field `(.+)`", text):
        return f"{full}: missing required key '{m.group(1)}'"
    if m := re.match(r"Expected `(.+)`, got `(.+)`", text):
        wanted = " or ".join(
            _TYPE_WORDS.get(t.strip(), t.strip())
            for t in m.group(1).split("|")
            if t.strip() != "null"
        )
        return f"{full}: expected {wanted}, got {_TYPE_WORDS.get(m.group(2), m.group(2))}"
    if m := re.match(r"Invalid enum value (.+)", text):
        return f"{full}: {m.group(1)} is not one of the allowed values (tls, starttls, none)"
    return f"{full}: {text}"


def _toml_error(exc: tomllib.TOMLDecodeError) -> str:
    """tomllib says "... (at line 3, column 5)"; lead with the line, as editors do."""
    msg = str(exc)
    if m := re.search(r"\(at line (\d+), column (\d+)\)$", msg):
        return f"line {m.group(1)}, column {m.group(2)}: {msg[: m.start()].strip()}"
    if m := re.search(r"\(at end of document\)$", msg):
        return f"at the end: {msg[: m.start()].strip()}"
    return msg


def _readable_by_others(path: Path) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return bool(mode & (stat.S_IRGRP | stat.S_IROTH))


# -- [pipe] and [open]: the user's own programs ----------------------------------------------

TOOL_SECTIONS = ("pipe", "open")


class PipeCommand(_Strict):
    """``[pipe] NAME = { command = "git am -3", key = "A" }``: a command line the user wrote,
    run by the shell with the messages on its standard input."""

    command: str
    key: str | None = None
    """A key of the screens that show mail; none: only in the palette and the ``|`` prompt."""


class OpenRule(_Strict):
    """``[open] "application/pdf" = "zathura %s"`` (or a table with ``terminal = true`` for a
    program that needs the terminal: the app steps aside while it runs)."""

    command: str
    terminal: bool = False


@dataclass(frozen=True)
class ToolsConfig:
    pipe: dict[str, PipeCommand] = field(default_factory=dict)
    open: tuple[tuple[str, OpenRule], ...] = ()
    """(type pattern such as ``image/*``, rule), first match wins, in the file's order."""


def _tools(data: dict[str, Any], where: str) -> ToolsConfig:
    pipe_raw = data.get("pipe", {})
    if not isinstance(pipe_raw, dict):
        raise ConfigError(f'{where}: pipe: expected a table of NAME = {{ command = "..." }}')
    pipe: dict[str, PipeCommand] = {}
    for name, value in pipe_raw.items():
        if isinstance(value, str):
            value = {"command": value}
        pipe[name] = _convert(value, PipeCommand, where, f"pipe.{name}")
        if not pipe[name].command.strip():
            raise ConfigError(f"{where}: pipe.{name}.command: empty command")
    open_raw = data.get("open", {})
    if not isinstance(open_raw, dict):
        raise ConfigError(f'{where}: open: expected a table of "type/subtype" = "command %s"')
    rules: list[tuple[str, OpenRule]] = []
    for pattern, value in open_raw.items():
        if isinstance(value, str):
            value = {"command": value}
        rule = _convert(value, OpenRule, where, f'open."{pattern}"')
        if "/" not in pattern:
            raise ConfigError(f'{where}: open."{pattern}": expected a type such as "image/*"')
        rules.append((pattern.lower(), rule))
    return ToolsConfig(pipe, tuple(rules))
