"""Colour themes: Kittiwake's built-in ones, the user's own, and what NO_COLOR does.

A theme is a TOML file: the fields of :class:`textual.theme.Theme` (``primary``, ``secondary``,
``accent``, ``foreground``, ``background``, ``surface``, ``panel``, ``boost``, ``warning``,
``error``, ``success``, ``dark``, ``ansi``, ``luminosity_spread``, ``text_alpha``), optional
``name`` (default: the file name without ``.toml``), ``description`` and ``extends``, and a
``[variables]`` table. Textual turns every theme variable into a CSS variable, so the app's CSS
says ``color: $mail-unread``. :data:`MAIL_VARIABLES` lists Kittiwake's own (their meaning is
documented in ``themes/kittiwake-dark.toml``); ``[variables]`` may also override Textual's own
variables (``border``, ``footer-key-foreground``, …).

Like posting (``src/posting/themes.py``), the file is validated first and only then turned
into a Textual ``Theme`` and given to ``App.register_theme``: every colour goes through
``textual.color.Color.parse`` here, because a bad value that reached Textual would only fail
later, as a stylesheet error that stops the app. The built-in themes come from the
``kittiwake.themes`` package; a malformed one is a bug and raises. User themes come from
``$XDG_CONFIG_HOME/kittiwake/themes/*.toml`` and may replace a built-in by using its name; a
malformed user theme (bad TOML, an unknown key, a bad colour, an unknown ``extends``) is
skipped with a one-sentence warning naming the file and the key, and the others still load.
``extends = "NAME"`` starts from another theme (Kittiwake's, another user theme, or one of
Textual's such as ``nord``) and overrides only what the file sets; ``[variables]`` merge.

Every theme that :func:`load_themes` returns defines all of :data:`MAIL_VARIABLES` (a user
theme without ``extends`` gets any missing one derived from its own colours), and
:func:`completed_theme` gives Textual's built-in themes (``nord``, ``ansi-dark``, … reachable
from the command palette) the same derived values when one is first used, so CSS that uses
``$mail-*`` never fails to parse whichever theme is active. ANSI themes (``ansi = true``) also
get the few variables Textual's ANSI colour system forgets but Textual's own CSS uses
(``$ansi-background``).

The app uses three calls, in ``App.__init__`` (after ``super().__init__()``)::

    themes, warnings = load_themes()          # user_dir=None: the XDG theme directory
    register_themes(self, themes)
    warning = pick_theme(self, config.ui.theme, themes)   # sets self.theme

and :func:`completed_theme` in its ``get_theme``.

NO_COLOR
--------
Textual 8.2.8 handles NO_COLOR by itself, in ``App.__init__``::

    self.no_color = environ.pop("NO_COLOR", None) is not None
    if self.no_color:
        self._filters.append(NoColor() if self.native_ansi_color else Monochrome())

So with NO_COLOR set, every line Textual renders goes through the ``Monochrome`` line filter,
which replaces each colour by the grey of the same luminance (``Color.monochrome``): no hue
reaches the terminal, whichever theme is active. (``NoColor``, which uses the terminal's
default colours, is chosen only when the theme current at construction uses native ANSI
colours, which Kittiwake's default does not.) Kittiwake relies on this and adds no theme of its
own for NO_COLOR. What follows for the app:

* Hue disappears, so nothing may be told apart by colour alone: unread rows are also bold,
  flagged and selected messages also carry a marker, the cursor row also has a different
  background. Kittiwake's true-colour themes keep a 4.5:1 contrast after the grey conversion
  (the tests check it).
* Textual tests presence only, so ``NO_COLOR=`` (empty) also turns the screen grey, while the
  convention (no-color.org, and Rich) says an empty value means unset. Call
  :func:`normalise_no_color` in ``main()`` before the App is built to follow the convention.
* The ``Monochrome`` filter maps every ANSI palette colour (``ansi_*`` and ``ansi_default``,
  whose RGB only the terminal knows) to black, so an ANSI theme (``kittiwake-16``,
  ``kittiwake-16-light``, Textual's ``ansi-dark``) would render black on black.
  :func:`pick_theme` therefore does not select an ANSI theme while that filter is active: it
  falls back to ``kittiwake-dark`` (shown in greys) with a warning.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from textual.app import App
from textual.color import Color, ColorParseError
from textual.css.constants import VALID_STYLE_FLAGS
from textual.css.tokenize import IDENTIFIER
from textual.design import ColorSystem
from textual.filter import Monochrome
from textual.theme import BUILTIN_THEMES as TEXTUAL_THEMES
from textual.theme import Theme

import kittiwake.themes
from kittiwake.core.paths import user_themes_dir

DEFAULT_THEME = "kittiwake-dark"
"""Used when the configuration names no theme, or one that does not exist."""

MAIL_VARIABLES: dict[str, str] = {
    "mail-unread": "text of an unread message's row (the CSS makes it bold too)",
    "mail-dim": "read rows, the date column, signatures and other secondary text",
    "mail-flagged": "a flagged (starred) message's row or flag marker",
    "mail-selected": "the marker of a message picked for a bulk action (multi-select)",
    "mail-cursor-background": "background of the message list's cursor row",
    "mail-quote-1": "quoted text at depth 1 ('> ')",
    "mail-quote-2": "quoted text at depth 2",
    "mail-quote-3": "quoted text at depth 3",
    "mail-quote-4": "quoted text at depth 4 and deeper",
    "mail-link": "links in a message body (the CSS underlines them too)",
    "mail-header-name": "header names ('From:', 'Subject:') above a message",
}
"""Kittiwake's semantic CSS variables (``$mail-unread`` …), each with its meaning."""

_COLOUR_FIELDS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "boost",
    "warning",
    "error",
    "success",
)
_BOOL_FIELDS = ("dark", "ansi")
_FRACTION_FIELDS = ("luminosity_spread", "text_alpha")
_THEME_FIELDS = (*_COLOUR_FIELDS, *_BOOL_FIELDS, *_FRACTION_FIELDS)
_TEXT_KEYS = ("name", "extends", "description")
_KNOWN_KEYS = (*_TEXT_KEYS, *_THEME_FIELDS, "variables")

_NAME = re.compile(IDENTIFIER)
_COLOUR_WITH_ALPHA = re.compile(r"(?P<colour>.*?)(?:\s+\d+(?:\.\d+)?%)?")

#: Where a Textual theme without Kittiwake's variables takes each of them from: a variable of
#: the colour system Textual generates for that theme, so the values suit its colours.
_DERIVED_FROM = {
    "mail-unread": "foreground",
    "mail-dim": "foreground-muted",
    "mail-flagged": "text-warning",
    "mail-selected": "text-accent",
    "mail-cursor-background": "primary-muted",
    "mail-quote-1": "text-primary",
    "mail-quote-2": "text-secondary",
    "mail-quote-3": "text-success",
    "mail-quote-4": "text-warning",
    "mail-link": "text-accent",
    "mail-header-name": "text-primary",
}


class ThemeError(ValueError):
    """A theme file that cannot be used; ``key`` is the offending key (dotted for variables)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"key {key!r} {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class _Spec:
    """A validated theme file, before ``extends`` is resolved."""

    name: str
    source: str
    extends: str | None
    fields: dict[str, Any]
    variables: dict[str, str]


# --- loading -------------------------------------------------------------------------------


def load_themes(user_dir: Path | None = None) -> tuple[dict[str, Theme], list[str]]:
    """Kittiwake's built-in themes, then the user's (which may replace them), and warnings.

    ``user_dir`` defaults to ``$XDG_CONFIG_HOME/kittiwake/themes``; a missing directory is
    not an error. A user theme that cannot be used is left out and explained in one sentence
    of the returned warnings; this never raises because of a user file.
    """
    builtins = _load_builtins()
    directory = user_themes_dir() if user_dir is None else user_dir
    warnings: list[str] = []
    specs: dict[str, _Spec] = {}
    for path in _theme_files(directory, warnings):
        spec = _read_user_file(path, warnings)
        if spec is None:
            continue
        if spec.name in specs:
            warnings.append(
                f"Theme file {path} defines theme {spec.name!r} again, "
                f"replacing the one in {specs[spec.name].source}."
            )
        specs[spec.name] = spec
    user_themes = _resolve(specs, {**TEXTUAL_THEMES, **builtins}, warnings)
    return {**builtins, **user_themes}, warnings


def _load_builtins() -> dict[str, Theme]:
    specs: dict[str, _Spec] = {}
    # The package's folder (importlib.resources' readers load zipfile: ~2 ms at every start).
    root = Path(kittiwake.themes.__file__).parent
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".toml") or not entry.is_file():
            continue
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        spec = _parse(data, entry.name.removesuffix(".toml"), f"kittiwake.themes/{entry.name}")
        specs[spec.name] = spec
    problems: list[str] = []
    themes = _resolve(specs, TEXTUAL_THEMES, problems)
    if problems:  # a packaging or editing mistake, caught by the tests
        raise RuntimeError(" ".join(problems))
    return themes


def _theme_files(directory: Path, warnings: list[str]) -> list[Path]:
    try:
        if not directory.is_dir():
            return []
        return sorted(p for p in directory.glob("*.toml") if p.is_file())
    except OSError as exc:
        warnings.append(f"Could not read the theme directory {directory}: {exc.strerror or exc}.")
        return []


def _read_user_file(path: Path, warnings: list[str]) -> _Spec | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        warnings.append(f"Skipped theme file {path}: it is not valid TOML ({exc}).")
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        warnings.append(f"Skipped theme file {path}: it could not be read ({reason}).")
        return None
    try:
        return _parse(data, path.stem, str(path))
    except ThemeError as exc:
        warnings.append(_skipped(str(path), exc))
        return None


def _skipped(source: str, exc: ThemeError) -> str:
    return f"Skipped theme file {source}: {exc}."


# --- validation ----------------------------------------------------------------------------


def _parse(data: Mapping[str, Any], default_name: str, source: str) -> _Spec:
    """Check one file's table; raises :class:`ThemeError` naming the first bad key."""
    for key in data:
        if key not in _KNOWN_KEYS:
            raise ThemeError(key, f"is not a theme setting{_did_you_mean(key, _KNOWN_KEYS)}")
    name = data.get("name", default_name)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ThemeError(
            "name",
            f"must be letters, digits, '-' and '_' (not starting with a digit), not {name!r}",
        )
    for key in ("extends", "description"):
        if key in data and not isinstance(data[key], str):
            raise ThemeError(key, "must be a string")
    fields: dict[str, Any] = {}
    for key in _COLOUR_FIELDS:
        if key in data:
            fields[key] = _check_colour(key, data[key])
    for key in _BOOL_FIELDS:
        if key in data:
            if not isinstance(data[key], bool):
                raise ThemeError(key, "must be true or false")
            fields[key] = data[key]
    for key in _FRACTION_FIELDS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ThemeError(key, "must be a number from 0 to 1")
            fields[key] = float(value)
    table = data.get("variables", {})
    if not isinstance(table, dict):
        raise ThemeError("variables", "must be a table ([variables])")
    variables = {name_: _check_variable(name_, value) for name_, value in table.items()}
    return _Spec(name, source, data.get("extends"), fields, variables)


def _check_colour(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ThemeError(key, 'must be a colour in a string, such as "#5f87af"')
    try:
        Color.parse(value)
    except ColorParseError as exc:
        hint = f" (did you mean {exc.suggested_color!r}?)" if exc.suggested_color else ""
        raise ThemeError(key, f"has {value!r}, which is not a colour{hint}") from None
    return value


def _check_variable(name: str, value: object) -> str:
    key = f"variables.{name}"
    if name in MAIL_VARIABLES:
        return _check_colour(key, value)
    if name not in _textual_variables():
        known = [*MAIL_VARIABLES, *_textual_variables()]
        raise ThemeError(key, f"is not a theme variable{_did_you_mean(name, known)}")
    if not isinstance(value, str):
        raise ThemeError(key, "must be a string")
    if name.endswith("style"):  # block-cursor-text-style, link-style, …
        words = value.split()
        if not words or not set(words) <= VALID_STYLE_FLAGS:
            raise ThemeError(
                key, f'has {value!r}, which is not a text style (such as "bold" or "none")'
            )
        return value
    # Textual's colour variables also take "auto", an alpha ("#ffffff 50%") or "initial".
    match = _COLOUR_WITH_ALPHA.fullmatch(value.strip())
    colour = match.group("colour") if match else value
    if colour not in ("auto", "initial"):
        try:
            _check_colour(key, colour)
        except ThemeError:
            raise ThemeError(key, f"has {value!r}, which is not a colour") from None
    return value


@cache
def _textual_variables() -> frozenset[str]:
    """Every variable Textual's colour system defines (what ``[variables]`` may override)."""
    names: set[str] = set()
    for ansi in (False, True):
        names.update(ColorSystem(primary="#808080", ansi=ansi).generate())
    return frozenset(names - set(_COLOUR_FIELDS))


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- building ------------------------------------------------------------------------------


def _resolve(
    specs: Mapping[str, _Spec], bases: Mapping[str, Theme], warnings: list[str]
) -> dict[str, Theme]:
    """Build every spec, following ``extends`` to other specs first, then to ``bases``."""
    done: dict[str, Theme] = {}
    failed: set[str] = set()

    def build(name: str, chain: tuple[str, ...]) -> None:
        if name in done or name in failed:
            return
        spec = specs[name]
        try:
            base: Theme | None = None
            parent = spec.extends
            if parent is not None and parent in specs and parent != name:
                if parent in chain:
                    loop = " -> ".join((*chain, name, parent))
                    raise ThemeError("extends", f"makes a loop ({loop})")
                build(parent, (*chain, name))
                if parent in failed:
                    raise ThemeError("extends", f"names theme {parent!r}, which was skipped")
                base = done[parent]
            elif parent is not None:
                if parent not in bases:
                    hint = _did_you_mean(parent, [*specs, *bases])
                    raise ThemeError("extends", f"names {parent!r}, which is not a theme{hint}")
                base = bases[parent]
            done[name] = _build(spec, base)
        except ThemeError as exc:
            failed.add(name)
            warnings.append(_skipped(spec.source, exc))
        except Exception as exc:  # Textual refusing a combination: still never crash on a file
            failed.add(name)
            warnings.append(f"Skipped theme file {spec.source}: Textual rejected it ({exc}).")

    for name in specs:
        build(name, ())
    return done


def _build(spec: _Spec, base: Theme | None) -> Theme:
    values: dict[str, Any] = {}
    variables: dict[str, str] = {}
    if base is not None:
        values = {key: getattr(base, key) for key in _THEME_FIELDS}
        variables = dict(base.variables)
    values.update(spec.fields)
    variables.update(spec.variables)
    if values.get("primary") is None:
        raise ThemeError(
            "primary", f'is missing (set it, or start from a theme: extends = "{DEFAULT_THEME}")'
        )
    theme = complete_theme(Theme(name=spec.name, variables=variables, **values))
    theme.to_color_system().generate()  # whatever Textual would refuse, refuse it now
    return theme


def mail_variable_defaults(theme: Theme) -> dict[str, str]:
    """Values for :data:`MAIL_VARIABLES` derived from ``theme``'s own colour system.

    For themes that do not set them (Textual's built-ins, a user theme without ``extends``).
    An app's ``get_theme_variable_defaults`` can return this for ``self.current_theme``.
    """
    generated = theme.to_color_system().generate()
    values = {name: generated[source] for name, source in _DERIVED_FROM.items()}
    if theme.ansi:  # "primary-muted" is a half-transparent palette colour there
        values["mail-cursor-background"] = generated["primary"]
    return values


def complete_theme(theme: Theme) -> Theme:
    """``theme`` itself if the app's CSS can use it as it is, else a completed copy.

    Adds the :data:`MAIL_VARIABLES` it lacks (see :func:`mail_variable_defaults`) and, for an
    ANSI theme, the variables Textual's ANSI colour system does not generate although Textual's
    own CSS uses them (``$ansi-background`` in Screen's CSS), as Textual's ``ansi-dark`` and
    ``ansi-light`` set them.
    """
    missing: dict[str, str] = {}
    if not MAIL_VARIABLES.keys() <= theme.variables.keys():
        missing.update(mail_variable_defaults(theme))
    if theme.ansi:
        missing.update(_ansi_gaps(theme.dark))
    if missing.keys() <= theme.variables.keys():
        return theme
    return replace(theme, variables={**missing, **theme.variables})


def _ansi_gaps(dark: bool) -> dict[str, str]:
    return {
        "ansi-background": "ansi_black" if dark else "ansi_white",
        "ansi-foreground": "ansi_white" if dark else "ansi_black",
        "foreground-disabled": "ansi_default 50%",
        "surface-active": "transparent",
    }


# --- the app -------------------------------------------------------------------------------


def register_themes(app: App[Any], themes: Mapping[str, Theme]) -> None:
    """Register ``themes`` with ``app``.

    Textual registers its own themes in ``App.__init__``; they are completed (see
    :func:`complete_theme`) when the app first uses one, by :func:`completed_theme` in the
    app's ``get_theme``, as copies: Textual's shared theme objects are left alone. Completing
    all twenty of them at once cost every start ~10 ms for themes it never shows (issue 19).
    """
    for theme in themes.values():
        app.register_theme(complete_theme(theme))


def completed_theme(app: App[Any], theme: Theme | None) -> Theme | None:
    """``theme`` as the app's CSS can use it, registered so in place of the original.

    For an app's ``get_theme`` (through which Textual reaches the current theme)::

        def get_theme(self, theme_name: str) -> Theme | None:
            return completed_theme(self, super().get_theme(theme_name))
    """
    if theme is None:
        return None
    completed = complete_theme(theme)
    if completed is not theme:
        app.register_theme(completed)
    return completed


def pick_theme(app: App[Any], name: str | None, themes: Mapping[str, Theme]) -> str | None:
    """Set ``app.theme`` to ``name``; return a warning when another theme had to be used.

    An unknown name falls back to :data:`DEFAULT_THEME`. So does an ANSI theme while Textual's
    NO_COLOR greyscale filter is active (see the module docstring). ``name`` may also be one
    of Textual's own themes. Call after :func:`register_themes`.
    """
    available = app.available_themes
    chosen = name or DEFAULT_THEME
    warning = None
    if chosen not in available:
        ours = ", ".join(sorted(themes))
        warning = f"Unknown theme {chosen!r}, using {DEFAULT_THEME} instead (themes: {ours})."
        chosen = DEFAULT_THEME
    elif available[chosen].ansi and greyscale_filter_active(app):
        warning = (
            f"Theme {chosen!r} uses the terminal's palette, which NO_COLOR's greyscale "
            f"rendering would show as black on black, so {DEFAULT_THEME} is used instead."
        )
        chosen = DEFAULT_THEME
    if chosen in available:
        app.theme = chosen
    return warning


def greyscale_filter_active(app: App[Any]) -> bool:
    """True when Textual renders ``app`` through its NO_COLOR ``Monochrome`` filter."""
    return any(isinstance(f, Monochrome) for f in app.get_line_filters())


def no_color_requested(environ: Mapping[str, str] | None = None) -> bool:
    """NO_COLOR as the convention defines it: set and not empty."""
    env = os.environ if environ is None else environ
    return bool(env.get("NO_COLOR"))


def normalise_no_color(environ: MutableMapping[str, str] | None = None) -> bool:
    """Drop an empty NO_COLOR, which Textual would obey; return whether colour is off.

    Call before the App is constructed (Textual reads NO_COLOR in ``App.__init__``).
    """
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR") == "":
        del env["NO_COLOR"]
    return no_color_requested(env)
