"""Cyrus and Courier binaries for the test suite, unpacked from their Debian packages.

Both packages declare a conflict with ``dovecot-imapd``, which the suite needs, so they cannot be
installed. Instead their ``.deb`` files are fetched with ``apt-get download`` and unpacked with
``dpkg -x`` into a private tree (``KITTIWAKE_TEST_PACKAGES``, default
/var/cache/kittiwake-test-packages), from which the harness runs them with private configs. Only
their plain library dependencies, which conflict with nothing, are installed with apt-get.

``ensure(name)`` is idempotent and cheap once done (a marker file per server); scripts/test calls
it through ``python -m harness.packages`` so that a fresh machine gets everything before pytest,
and the harness calls it again on first use. Nothing here touches /etc or any service.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .common import ServerError

PACKAGES = {
    "cyrus": ("cyrus-imapd", "cyrus-common"),
    "courier": (
        "courier-imap",
        "courier-base",
        "courier-authlib",
        "courier-authlib-userdb",
        "libcourier-unicode4",
    ),
}
"""The conflicting (or config-bearing) packages that are only unpacked, never installed."""

LIBRARIES = {
    "cyrus": ("libical3", "libxapian30", "libpcre3", "libsasl2-modules", "sasl2-bin"),
    "courier": ("libgamin0", "libidn12", "libltdl7", "libpcre3", "libgdbm6", "perl"),
}
"""What the unpacked binaries load or run (sasl2-bin for saslpasswd2); none conflicts with Dovecot."""

_MARKER = ".unpacked"


def cache_dir() -> Path:
    return Path(os.environ.get("KITTIWAKE_TEST_PACKAGES", "/var/cache/kittiwake-test-packages"))


def ensure(name: str) -> Path:
    """Return the unpacked root of server ``name`` ("cyrus" or "courier"), fetching it if needed.

    Raises ServerError with the command to run when it cannot (not root, no network, ...).
    """
    base = cache_dir()
    root = base / name
    wanted = " ".join(PACKAGES[name]) + "\n"
    if _read(root / _MARKER) == wanted and not _missing_libraries(name):
        return root
    try:
        base.mkdir(parents=True, exist_ok=True)
        base.chmod(0o755)  # the servers drop root: every parent must be traversable
    except OSError as error:
        raise _cannot(name, f"cannot create {base}: {error}") from error
    with _locked(base / f".{name}.lock"):
        if _read(root / _MARKER) != wanted:
            _unpack(name, base, root)
            (root / _MARKER).write_text(wanted)
        _install_libraries(name)
    return root


def version(package: str) -> str:
    """The Debian version of an unpacked package, e.g. ``3.6.1-4+deb12u5``."""
    deb = max((cache_dir() / "debs").glob(f"{package}_*.deb"))
    return deb.name.split("_")[1]


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two pytest sessions may set up at the same time
        yield


def _unpack(name: str, base: Path, root: Path) -> None:
    debs = base / "debs"
    debs.mkdir(exist_ok=True)
    wanted = PACKAGES[name]
    have = {path.name.split("_", 1)[0] for path in debs.glob("*.deb")}
    missing = [package for package in wanted if package not in have]
    if missing:
        # apt's sandbox user cannot write into a root-owned cache: download as the caller
        _run(name, ["apt-get", "download", "-q", *missing], cwd=debs)
    staging = base / f"{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for package in wanted:
        deb = max(debs.glob(f"{package}_*.deb"))
        _run(name, ["dpkg-deb", "-x", str(deb), str(staging)])
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    root.chmod(0o755)


def _missing_libraries(name: str) -> list[str]:
    missing = []
    for package in LIBRARIES[name]:
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        )
        if "install ok installed" not in status.stdout:
            missing.append(package)
    return missing


def _install_libraries(name: str) -> None:
    missing = _missing_libraries(name)
    if not missing:
        return
    if os.geteuid() != 0:
        raise _cannot(name, f"missing libraries; install with: apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    _run(name, command, env=env)


def _run(
    name: str, command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise _cannot(name, f"{' '.join(command)}: {error}") from error
    if done.returncode != 0:
        raise _cannot(name, f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


def _cannot(name: str, reason: str) -> ServerError:
    return ServerError(
        f"cannot set up {name} for the server tests ({reason}). They need root (or a prepared "
        f"KITTIWAKE_TEST_PACKAGES tree) and apt-get access once: run "
        f"`python -m harness.packages` from tests/ as root."
    )


def main(argv: list[str]) -> int:
    for name in argv or sorted(PACKAGES):
        print(f"{name}: {ensure(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
