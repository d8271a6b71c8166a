"""The installed product: a wheel in a fresh venv outside the checkout, run as a user runs it.

``KITTIWAKE_WHEEL`` (set by scripts/test, which builds the wheel from the sdist) names the wheel;
without it one is built here from the tree, so running this file alone tests the product too.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from .dovecot import Dovecot, User
from .postfix import Postfix
from .tmux import Tmux

REPO = Path(__file__).resolve().parents[2]
TOP_LEVEL = ("core", "tui", "themes", "cli", "demo")


def source_modules() -> set[str]:
    """Every module of the tree as it must be importable once installed (kittiwake.core...)."""
    names: set[str] = set()
    for top in TOP_LEVEL:
        for path in (REPO / top).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.add(".".join(("kittiwake", *parts)))
    return names


def source_data_files() -> set[str]:
    """Every file of the tree that is not Python source, as the wheel must carry it
    (kittiwake/themes/kittiwake-dark.toml, ...)."""
    names: set[str] = set()
    for top in TOP_LEVEL:
        for path in (REPO / top).rglob("*"):
            if (
                path.is_file()
                and path.suffix not in (".py", ".pyc")
                and "__pycache__" not in path.parts
            ):
                names.add("kittiwake/" + path.relative_to(REPO).as_posix())
    return names


def _quiet_pip(args: list[str]) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed:\n{done.stdout}\n{done.stderr}")


@dataclass
class Home:
    """A user's home for one test: config, XDG directories, environment."""

    root: Path
    config: Path
    env: dict[str, str]

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def snapshot(self) -> dict[str, int]:
        """Every file under the home with its size: what a command wrote shows as a change."""
        return {
            str(p.relative_to(self.root)): p.stat().st_size
            for p in self.root.rglob("*")
            if p.is_file()
        }


class Installed:
    """A venv with only the wheel (its dependencies and ``extras``) installed, outside the
    checkout."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.venv = base / "venv"
        self.outside = base / "elsewhere"  # the working directory of every command

    @classmethod
    def create(cls, base: Path, *, extras: str = "demo") -> Installed:
        """``extras`` as pip takes them ("demo": the demo's servers; "" for none)."""
        self = cls(base)
        wheel = os.environ.get("KITTIWAKE_WHEEL")
        if not wheel:
            dist = base / "dist"
            _quiet_pip([sys.executable, "-m", "build", "--wheel", "-o", str(dist), str(REPO)])
            wheel = str(next(dist.glob("kittiwake-*.whl")))
        _quiet_pip([sys.executable, "-m", "venv", str(self.venv)])
        requirement = f"{wheel}[{extras}]" if extras else wheel
        _quiet_pip([str(self.bin("python")), "-m", "pip", "install", "-q", requirement])
        self.outside.mkdir()
        return self

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def _env(self, home: Home | None) -> dict[str, str]:
        env = home.env if home is not None else self.home_env(self.base / "nohome")
        return dict(env)

    @staticmethod
    def home_env(root: Path) -> dict[str, str]:
        keep = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("XDG_", "KITTIWAKE", "PYTHON", "VIRTUAL_ENV", "PYTEST"))
        }
        keep.update(
            HOME=str(root),
            XDG_CONFIG_HOME=str(root / "config"),
            XDG_CACHE_HOME=str(root / "cache"),
            XDG_STATE_HOME=str(root / "state"),
            XDG_DATA_HOME=str(root / "data"),
        )
        return keep

    def python(self, code: str) -> str:
        done = subprocess.run(
            [str(self.bin("python")), "-c", code],
            cwd=self.outside,
            env=self._env(None),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return done.stdout

    def modules(self) -> set[str]:
        listing = self.python(
            "import importlib.metadata as m\n"
            "for f in m.files('kittiwake'):\n"
            "    if f.suffix == '.py': print(f.as_posix())\n"
        )
        names = set()
        for line in listing.split():
            parts = Path(line).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.add(".".join(parts))
        return names

    def data_files(self) -> set[str]:
        """Every installed file of the package that is not Python source."""
        listing = self.python(
            "import importlib.metadata as m\n"
            "for f in m.files('kittiwake'):\n"
            "    if f.parts[0] == 'kittiwake' and f.suffix not in ('.py', '.pyc'):\n"
            "        print(f.as_posix())\n"
        )
        return set(listing.split())

    def home(self, dovecot: Dovecot, user: User, *, postfix: Postfix | None = None) -> Home:
        """A fresh home whose config.toml names ``user``'s account on the test servers."""
        root = self.base / f"home-{uuid.uuid4().hex[:8]}"
        config = root / "config" / "kittiwake" / "config.toml"
        config.parent.mkdir(parents=True)
        text = (
            f'[accounts.me]\nemail = "{user.email}"\nname = "Me"\n'
            f"[accounts.me.imap]\n"
            f'host = "{dovecot.host}"\nport = {dovecot.ports.imaps}\nuser = "{user.login}"\n'
            f'password_env = "KW_TEST_PASSWORD"\nca_file = "{dovecot.ca_file}"\ntimeout = 10\n'
        )
        if postfix is not None:
            text += (
                f"[accounts.me.smtp]\n"
                f'host = "{postfix.host}"\nport = {postfix.ports.submission}\n'
                f'security = "starttls"\nuser = "{user.login}"\n'
                f'password_env = "KW_TEST_PASSWORD"\nca_file = "{postfix.ca_file}"\ntimeout = 10\n'
            )
        config.write_text(text)
        config.chmod(0o600)
        env = self.home_env(root)
        env["KW_TEST_PASSWORD"] = user.password
        return Home(root, config, env)

    def kittiwake(
        self, *args: str, home: Home | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The installed ``kittiwake`` command, run from outside the checkout."""
        return subprocess.run(
            [str(self.bin("kittiwake")), *args],
            cwd=self.outside,
            env=self._env(home),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )


class TmuxScreen(Tmux):
    """The installed app in a detached tmux session of a given size, read off its screen."""

    def __init__(
        self, installed: Installed, home: Home, *args: str, width: int = 100, height: int = 30
    ) -> None:
        command = [str(installed.bin("kittiwake")), *args]
        super().__init__(
            command, home.env, installed.outside, installed.base, width=width, height=height
        )
