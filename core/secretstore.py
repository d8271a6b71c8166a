"""Storing a password where it will work on this machine, and proving it reads back.

Setup never says an account is done before its password has been written *and read back
through exactly the code the config will use* (``core.secrets.password_for`` on the section
the config will contain). The config then says how to read the password, never the password
itself (``StoreKind.INLINE`` only when the user insists).

The stores, in order of preference (``available_stores``):

``keyring``
    The system keyring (Secret Service, KWallet, macOS Keychain, Windows), through the
    ``keyring`` library, as ``password_keyring = { service = "kittiwake", user =
    "ACCOUNT/SERVER" }``. It is read *in process* by ``core.secrets``, not by a
    ``password_command`` running ``python -m keyring get``: that command would have to name an
    interpreter, and the one Kittiwake runs in (often a pipx venv) moves or vanishes when
    Kittiwake or Python is upgraded, so the config would silently stop working; a
    ``kittiwake secret get`` command would instead depend on ``kittiwake`` being on the
    ``PATH`` of whatever starts it. Offered only when a backend really works here: keyring
    falls back to its ``fail`` backend (every call raises ``NoKeyringError``) where there is
    none, typically over SSH without a D-Bus session, and backends keyring itself rates "not
    recommended" (priority below 1, such as keyrings.alt's plain-text file) are not better than
    our own file, so they count only when the user chose them (``PYTHON_KEYRING_BACKEND`` or
    keyringrc.cfg).

``pass``
    The standard Unix password manager, when it is installed and initialised
    (``$PASSWORD_STORE_DIR`` or ``~/.password-store`` has a ``.gpg-id``): ``pass insert
    --multiline --force kittiwake/ACCOUNT/SERVER`` with the password on standard input (never
    on a command line, where ``ps`` shows it), read with ``password_command = ["pass", "show",
    NAME]``, an argv list: no shell, nothing interpolated.

``file``
    Always possible: ``$XDG_DATA_HOME/kittiwake/secrets/ACCOUNT@SERVER`` (``@`` cannot occur
    in an account name or a host name, so two accounts never share a file), mode 0600 in a
    0700 directory, written atomically, read with ``password_file = "PATH"`` (``~/`` when under
    the home directory). ``core.secrets`` refuses it if its mode ever lets others read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kittiwake.core import paths
from kittiwake.core.config import ServerConfig, config_from_dict, is_valid_account_name
from kittiwake.core.errors import ConfigError, SecretError
from kittiwake.core.files import PRIVATE_DIR, PRIVATE_FILE, atomic_write, make_private_dirs
from kittiwake.core.logsetup import mask
from kittiwake.core.secrets import Secret, password_for

log = logging.getLogger(__name__)

KEYRING_SERVICE = "kittiwake"
PASS_PREFIX = "kittiwake"  # noqa: S105 (a folder name in pass)
STORE_TIMEOUT = 60.0
"""Seconds a store may take to write or read (a keyring or gpg may ask the user to unlock)."""

_T = TypeVar("_T")


class StoreKind(enum.StrEnum):
    KEYRING = "keyring"
    PASS = "pass"  # noqa: S105 (the program)
    FILE = "file"
    INLINE = "inline"
    """The password itself in config.toml: never chosen, only when the user insists."""


@dataclass(frozen=True, slots=True)
class StoreStatus:
    kind: StoreKind
    available: bool
    reason: str
    """One sentence: what was found, or why this store cannot be used here."""


@dataclass(frozen=True, slots=True)
class SecretRef:
    """What the config's server section should contain to read the stored password."""

    kind: StoreKind
    config: dict[str, Any] = field(repr=False)
    """e.g. ``{"password_file": "~/.local/share/kittiwake/secrets/work@imap.example.org"}``."""
    where: str
    """Where it went, for the user: "in pass as kittiwake/work/imap.example.org"."""


# --- names ----------------------------------------------------------------------------------


def safe_server(server: str) -> str:
    """``server`` as one path component: lower case, IDNA, anything but letters, digits, '.'
    and '-' replaced by '_', no leading or trailing dots."""
    host = server.strip().lower()
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii")
    host = re.sub(r"[^a-z0-9.-]", "_", host).strip(".")
    if not host or len(host) > 190:
        raise ValueError(f"{server!r} is not a server name")
    return host


def _check_account(account: str) -> None:
    if not is_valid_account_name(account):
        raise ValueError(f"{account!r} is not a valid account name")


def secret_label(account: str, server: str) -> str:
    """How the entry is named in the keyring and in pass (under ``kittiwake/``)."""
    _check_account(account)
    return f"{account}/{safe_server(server)}"


def secrets_dir() -> Path:
    return paths.data_dir() / "secrets"


def secret_file_path(account: str, server: str) -> Path:
    _check_account(account)
    return secrets_dir() / f"{account}@{safe_server(server)}"


def _home_relative(path: Path) -> str:
    """``~/...`` when ``path`` is under the home directory (the config then survives a copy
    to a machine where home is elsewhere), else the absolute path."""
    home = Path.home()
    try:
        return "~/" + path.relative_to(home).as_posix()
    except ValueError:
        return str(path)


# --- which stores work here -----------------------------------------------------------------


def probe_stores() -> list[StoreStatus]:
    """Every automatic store in order of preference, with whether it works here and why."""
    return [_probe_keyring(), _probe_pass(), _probe_file()]


def available_stores() -> list[StoreKind]:
    """The stores that work on this machine, best first; the file store is always last."""
    return [status.kind for status in probe_stores() if status.available]


def _probe_keyring() -> StoreStatus:
    kind = StoreKind.KEYRING
    try:
        import keyring.backend
        import keyring.core
        from keyring.backends import chainer, fail, null
    except ImportError:
        return StoreStatus(kind, False, "the keyring library is not installed")

    def real(backend: keyring.backend.KeyringBackend) -> list[keyring.backend.KeyringBackend]:
        if isinstance(backend, chainer.ChainerBackend):
            return [b for b in backend.backends if real(b)]
        if isinstance(backend, fail.Keyring | null.Keyring):
            return []
        return [backend]

    try:
        chosen = keyring.core.load_env() or keyring.core.load_config()
    except Exception as exc:  # a bad PYTHON_KEYRING_BACKEND or keyringrc.cfg
        return StoreStatus(kind, False, f"the keyring backend you configured fails: {exc}")
    if chosen is not None:
        usable = real(chosen)
        if not usable:
            return StoreStatus(
                kind, False, f"the keyring backend you configured ({chosen.name}) stores nothing"
            )
        return StoreStatus(kind, True, f"the system keyring ({usable[0].name}, as configured)")
    try:
        found = [b for b in keyring.backend.get_all_keyring() if real(b)]
    except Exception as exc:
        return StoreStatus(kind, False, f"no system keyring could be looked for: {exc}")
    recommended = sorted(
        (b for b in found if b.priority >= 1), key=lambda b: b.priority, reverse=True
    )
    if not recommended:
        return StoreStatus(
            kind, False, "no system keyring works here (usual over SSH, without a desktop session)"
        )
    return StoreStatus(kind, True, f"the system keyring ({recommended[0].name})")


def password_store_dir() -> Path:
    return Path(os.environ.get("PASSWORD_STORE_DIR") or "~/.password-store").expanduser()


def _probe_pass() -> StoreStatus:
    kind = StoreKind.PASS
    if shutil.which("pass") is None:
        return StoreStatus(kind, False, "pass is not installed")
    store = password_store_dir()
    if not (store / ".gpg-id").is_file():
        return StoreStatus(kind, False, f"pass is not set up ({store}/.gpg-id is missing)")
    return StoreStatus(kind, True, f"pass ({store})")


def _probe_file() -> StoreStatus:
    return StoreStatus(StoreKind.FILE, True, f"a file only you can read, in {secrets_dir()}")


# --- storing and reading back ---------------------------------------------------------------


async def store_secret(
    kind: StoreKind, account: str, server: str, secret: str | Secret
) -> SecretRef:
    """Write ``secret`` to the store ``kind`` for ``account``'s ``server``, read it back
    through ``core.secrets.password_for`` on exactly the section the config will get, and
    return what that section must contain. Raises ``SecretError`` (one sentence, never the
    password) when the store fails or reads back something else."""
    value = secret.reveal() if isinstance(secret, Secret) else secret
    Secret(value)  # registered with the log filter before anything can mention it
    _check_secret(value)
    _check_account(account)
    label = secret_label(account, server)
    if kind is StoreKind.KEYRING:
        ref = await _in_thread(lambda: _store_keyring(label, value), "the system keyring")
    elif kind is StoreKind.PASS:
        ref = await _in_thread(lambda: _store_pass(label, value), "pass")
    elif kind is StoreKind.FILE:
        ref = await _in_thread(lambda: _store_file(account, server, value), "the file")
    else:
        ref = SecretRef(kind, {"password": value}, "in config.toml itself")
    read = await _in_thread(lambda: _read_back(account, server, ref), ref.where)
    if read.reveal() != value:
        raise SecretError(
            f"the password stored {ref.where} reads back as something else, so it is not used"
        )
    log.info("stored the password for %s/%s %s and read it back", account, server, ref.where)
    return ref


async def store_first_working(
    account: str,
    server: str,
    secret: str | Secret,
    kinds: list[StoreKind] | None = None,
) -> tuple[SecretRef, list[str]]:
    """Try each store of ``kinds`` (default: ``available_stores()``) until one reads back.
    Returns its reference and one sentence for each store that failed before it."""
    failures: list[str] = []
    for kind in kinds if kinds is not None else available_stores():
        try:
            return await store_secret(kind, account, server, secret), failures
        except SecretError as exc:
            log.warning("storing in %s failed: %s", kind, exc.message)
            failures.append(exc.message)
    raise SecretError(
        "the password could not be stored anywhere: " + "; ".join(failures or ["no store"])
    )


def _check_secret(value: str) -> None:
    if not value:
        raise SecretError("the password is empty")
    if any(c in value for c in "\r\n\x00"):
        raise SecretError("the password contains a line break, which no store can give back")


def _read_back(account: str, server: str, ref: SecretRef) -> Secret:
    """Read through the config's own validation and ``password_for``: what the config will
    do, not a re-implementation of it."""
    at = f"accounts.{account}.imap"
    section_data: dict[str, Any] = {"host": server, **ref.config}
    data = {"accounts": {account: {"email": "setup@example.invalid", "imap": section_data}}}
    try:
        section: ServerConfig | None = config_from_dict(data).accounts[account].imap
    except ConfigError as exc:
        raise SecretError(
            f"the config for the password stored {ref.where} is invalid: {exc.message}"
        ) from None
    assert section is not None
    try:
        return password_for(section, at)
    except SecretError as exc:
        detail = exc.message.removeprefix(f"{at}.")
        raise SecretError(
            f"the password stored {ref.where} cannot be read back: {detail}"
        ) from None


def _store_keyring(label: str, value: str) -> SecretRef:
    try:
        import keyring
        import keyring.errors
    except ImportError:
        raise SecretError("the keyring library is not installed") from None

    try:
        keyring.set_password(KEYRING_SERVICE, label, value)
        name = keyring.get_keyring().name
    except keyring.errors.NoKeyringError:
        raise SecretError("no system keyring works on this machine") from None
    except keyring.errors.KeyringError as exc:
        raise SecretError(
            f"the system keyring refused the password: {mask(str(exc))[:200]}"
        ) from None
    return SecretRef(
        StoreKind.KEYRING,
        {"password_keyring": {"service": KEYRING_SERVICE, "user": label}},
        f"in the system keyring ({name}) as {KEYRING_SERVICE} / {label}",
    )


def _store_pass(label: str, value: str) -> SecretRef:
    name = f"{PASS_PREFIX}/{label}"
    try:
        proc = subprocess.run(
            # from PATH, as the config's password_command will be: the same pass
            ["pass", "insert", "--multiline", "--force", name],  # noqa: S607
            input=(value + "\n").encode(),
            capture_output=True,
            timeout=STORE_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise SecretError("pass is not installed") from None
    except subprocess.TimeoutExpired:
        raise SecretError(f"pass did not finish within {STORE_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        said = " ".join(mask(proc.stderr.decode("utf-8", "replace")).split())
        reason = f": {said[:200]}" if said else ""
        raise SecretError(f"pass insert failed with exit status {proc.returncode}{reason}")
    return SecretRef(
        StoreKind.PASS, {"password_command": ["pass", "show", name]}, f"in pass as {name}"
    )


def _store_file(account: str, server: str, value: str) -> SecretRef:
    path = secret_file_path(account, server)
    try:
        make_private_dirs(path.parent)
        info = path.parent.lstat()
        if path.parent.is_symlink() or info.st_uid != os.getuid():
            raise SecretError(
                f"{path.parent} is not a directory of yours, so nothing is stored there"
            )
        os.chmod(path.parent, PRIVATE_DIR)
        atomic_write(path, (value + "\n").encode(), PRIVATE_FILE)
    except OSError as exc:
        raise SecretError(f"{path} cannot be written ({exc.strerror})") from None
    return SecretRef(
        StoreKind.FILE, {"password_file": _home_relative(path)}, f"in {_home_relative(path)}"
    )


async def _in_thread(fn: Callable[[], _T], what: str) -> _T:
    """Run a blocking store call in a daemon thread, giving up after ``STORE_TIMEOUT``: a
    keyring waiting for an unlock dialog nobody sees must not hang setup, nor its exit (the
    default executor's threads are joined when Python exits; a daemon thread is not)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def settle(result: _T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: _T | None = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed while we waited
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="kittiwake-secretstore", daemon=True).start()
    try:
        return await asyncio.wait_for(future, STORE_TIMEOUT)
    except TimeoutError:
        raise SecretError(f"{what} did not answer within {STORE_TIMEOUT:.0f} s") from None
