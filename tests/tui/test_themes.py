"""Themes: the built-ins, user themes (override, extends, malformed files), the CSS variables,
contrast, and what NO_COLOR does (Textual's own greyscale filter; see kittiwake.tui.themes)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from rich.color import ColorType
from rich.segment import Segment
from textual.app import App, ComposeResult
from textual.color import Color
from textual.theme import BUILTIN_THEMES as TEXTUAL_THEMES
from textual.theme import Theme
from textual.widgets import Footer, Static

from kittiwake.tui.themes import (
    DEFAULT_THEME,
    MAIL_VARIABLES,
    completed_theme,
    greyscale_filter_active,
    load_themes,
    mail_variable_defaults,
    no_color_requested,
    normalise_no_color,
    pick_theme,
    register_themes,
)

BUILTINS = [
    "kittiwake-dark",
    "kittiwake-light",
    "kittiwake-high-contrast",
    "kittiwake-16",
    "kittiwake-16-light",
]
TRUECOLOR = ["kittiwake-dark", "kittiwake-light", "kittiwake-high-contrast"]
ANSI = ["kittiwake-16", "kittiwake-16-light"]

#: What is drawn on what: message-list text on the list's backgrounds, body text on the reader's.
LIST_TEXT = ["foreground", "mail-unread", "mail-dim", "mail-flagged", "mail-selected"]
LIST_BACKGROUNDS = ["background", "surface", "mail-cursor-background"]
BODY_TEXT = [
    "foreground",
    "mail-dim",
    "mail-quote-1",
    "mail-quote-2",
    "mail-quote-3",
    "mail-quote-4",
    "mail-link",
    "mail-header-name",
]
BODY_BACKGROUNDS = ["background", "surface", "panel"]


@pytest.fixture(autouse=True)
def _clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No NO_COLOR from the caller's shell, and a private XDG config dir."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config" / "kittiwake" / "themes"
    directory.mkdir(parents=True)
    return directory


def _raw_builtin(name: str) -> dict[str, Any]:
    text = resources.files("kittiwake.themes").joinpath(f"{name}.toml").read_text("utf-8")
    return tomllib.loads(text)


def _value(theme: Theme, key: str) -> str:
    value = theme.variables[key] if key.startswith("mail-") else getattr(theme, key)
    assert isinstance(value, str), (theme.name, key)
    return value


def _luminance(color: Color) -> float:
    """WCAG 2 relative luminance."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def contrast(a: Color, b: Color) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


class MailCssApp(App[None]):
    """A tiny app whose CSS uses every mail variable, set up the way KittiwakeApp does it."""

    DEFAULT_CSS = "\n".join(
        [f"#{name} {{ color: ${name}; }}" for name in MAIL_VARIABLES]
        + ["#mail-cursor-background { color: $foreground; background: $mail-cursor-background; }"]
    )

    def __init__(self, theme: str | None, user_dir: Path) -> None:
        super().__init__()
        self.themes, self.load_warnings = load_themes(user_dir)
        register_themes(self, self.themes)
        self.pick_warning = pick_theme(self, theme, self.themes)

    def get_theme(self, theme_name: str) -> Theme | None:
        return completed_theme(self, super().get_theme(theme_name))

    def compose(self) -> ComposeResult:
        for name in MAIL_VARIABLES:
            yield Static(name, id=name)
        yield Footer()


def _segments(app: App[Any]) -> Iterator[Segment]:
    """Every segment of the screen as rendered, after Textual's line filters (NO_COLOR)."""
    for strip in app.screen._compositor.render_strips():
        yield from strip


def _rendered_colours(app: App[Any]) -> set[Any]:
    return {
        colour
        for segment in _segments(app)
        if segment.style is not None
        for colour in (segment.style.color, segment.style.bgcolor)
        if colour is not None
    }


# --- built-ins -----------------------------------------------------------------------------


def test_builtins_load_without_warnings(tmp_path: Path) -> None:
    themes, warnings = load_themes(tmp_path / "no-such-dir")
    assert warnings == []
    assert set(BUILTINS) <= set(themes)
    assert DEFAULT_THEME in themes
    files = [e.name for e in resources.files("kittiwake.themes").iterdir()]
    for name in BUILTINS:
        assert f"{name}.toml" in files
        assert _raw_builtin(name)["name"] == name


def test_every_builtin_defines_every_variable_of_the_dark_theme() -> None:
    dark = set(_raw_builtin("kittiwake-dark")["variables"])
    assert set(MAIL_VARIABLES) <= dark
    for name in BUILTINS:
        assert dark <= set(_raw_builtin(name)["variables"]), name


def test_dark_theme_documents_each_variable() -> None:
    text = resources.files("kittiwake.themes").joinpath("kittiwake-dark.toml").read_text("utf-8")
    lines = text.splitlines()
    for name in MAIL_VARIABLES:
        (index,) = [i for i, line in enumerate(lines) if line.startswith(f"{name} =")]
        assert lines[index - 1].startswith("#") or name.startswith("mail-quote-"), name
    assert "Quoted text by depth" in text


def test_sixteen_colour_themes_use_only_ansi_colours() -> None:
    themes, _ = load_themes(None)
    for name in ANSI:
        theme = themes[name]
        assert theme.ansi, name
        for key in ["primary", "secondary", "accent", "foreground", "background", *MAIL_VARIABLES]:
            assert Color.parse(_value(theme, key)).ansi is not None, (name, key)


async def test_theme_variables_become_css_variables() -> None:
    """The mechanism itself, plain Textual: a Theme's `variables` are `$name` in CSS."""

    class Probe(App[None]):
        DEFAULT_CSS = "Static { color: $mail-unread; }"

        def __init__(self) -> None:
            super().__init__()
            for name, colour in (("probe-a", "#abcdef"), ("probe-b", "#123456")):
                self.register_theme(
                    Theme(name=name, primary="#336699", variables={"mail-unread": colour})
                )
            self.theme = "probe-a"

        def compose(self) -> ComposeResult:
            yield Static("x")

    app = Probe()
    async with app.run_test() as pilot:
        static = app.query_one(Static)
        assert static.styles.color == Color.parse("#abcdef")
        app.theme = "probe-b"
        await pilot.pause()
        assert static.styles.color == Color.parse("#123456")


@pytest.mark.parametrize("name", BUILTINS)
async def test_each_builtin_registers_and_renders(name: str, tmp_path: Path) -> None:
    app = MailCssApp(name, tmp_path)
    assert app.pick_warning is None
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert app.theme == name
        theme = app.themes[name]
        for variable in MAIL_VARIABLES:
            styles = app.query_one(f"#{variable}", Static).styles
            got = styles.background if variable == "mail-cursor-background" else styles.color
            assert got == Color.parse(theme.variables[variable]), variable
        assert "mail-unread" in app.export_screenshot()


async def test_sixteen_colour_theme_renders_only_palette_colours(tmp_path: Path) -> None:
    app = MailCssApp("kittiwake-16", tmp_path)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        kinds = {colour.type for colour in _rendered_colours(app)}
    assert kinds <= {ColorType.DEFAULT, ColorType.STANDARD}, kinds


@pytest.mark.parametrize("name", ["nord", "textual-light", "ansi-dark"])
async def test_textual_themes_get_the_mail_variables(name: str, tmp_path: Path) -> None:
    app = MailCssApp(name, tmp_path)
    assert app.pick_warning is None
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert app.theme == name
        assert set(MAIL_VARIABLES) <= set(app.current_theme.variables)
        assert app.export_screenshot()
    # Every other theme gets them when first used (the command palette may pick any).
    for other in app.available_themes:
        theme = app.get_theme(other)
        assert theme is not None and set(MAIL_VARIABLES) <= set(theme.variables), other
    assert all(set(MAIL_VARIABLES) <= set(t.variables) for t in app.available_themes.values())
    assert not set(MAIL_VARIABLES) & set(TEXTUAL_THEMES[name].variables)  # copies, not edits


def test_mail_variable_defaults_follow_the_theme() -> None:
    nord = mail_variable_defaults(TEXTUAL_THEMES["nord"])
    light = mail_variable_defaults(TEXTUAL_THEMES["textual-light"])
    assert set(nord) == set(MAIL_VARIABLES)
    assert nord["mail-unread"] != light["mail-unread"]
    assert mail_variable_defaults(TEXTUAL_THEMES["ansi-dark"])["mail-cursor-background"] == (
        "ansi_blue"
    )


# --- contrast ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BUILTINS)
def test_contrast(name: str) -> None:
    theme = load_themes(None)[0][name]
    if theme.ansi:
        # The 16-colour themes name ANSI palette entries (and the terminal's default colours);
        # their RGB is whatever the user's terminal palette says, so there is no ratio to compute.
        # What we can check: every colour really is a palette entry (ansi is set).
        keys = {*LIST_TEXT, *LIST_BACKGROUNDS, *BODY_TEXT, *BODY_BACKGROUNDS}
        assert all(Color.parse(_value(theme, k)).ansi is not None for k in keys)
        return  # no ratio to compute: RGB is terminal-defined
    minimum = 7.0 if name == "kittiwake-high-contrast" else 4.5
    failures = []
    for texts, backgrounds in ((LIST_TEXT, LIST_BACKGROUNDS), (BODY_TEXT, BODY_BACKGROUNDS)):
        for text in texts:
            for background in backgrounds:
                fg, bg = Color.parse(_value(theme, text)), Color.parse(_value(theme, background))
                assert fg.a == bg.a == 1.0, (text, background)
                ratio = contrast(fg, bg)
                if ratio < minimum:
                    failures.append(f"{text} on {background}: {ratio:.2f}")
    assert failures == [], f"{name} below {minimum}:1: {failures}"
    fg, bg = Color.parse(_value(theme, "foreground")), Color.parse(_value(theme, "background"))
    dim = Color.parse(_value(theme, "mail-dim"))
    assert contrast(fg, bg) >= minimum
    assert contrast(dim, bg) >= minimum


@pytest.mark.parametrize("name", TRUECOLOR)
def test_contrast_survives_no_color_greyscale(name: str) -> None:
    """Under NO_COLOR Textual shows each colour as the grey of its luminance (Color.monochrome)."""
    theme = load_themes(None)[0][name]
    for texts, backgrounds in ((LIST_TEXT, LIST_BACKGROUNDS), (BODY_TEXT, BODY_BACKGROUNDS)):
        for text in texts:
            for background in backgrounds:
                fg = Color.parse(_value(theme, text)).monochrome
                bg = Color.parse(_value(theme, background)).monochrome
                assert contrast(fg, bg) >= 4.5, (name, text, background)
    unread = Color.parse(theme.variables["mail-unread"]).monochrome
    dim = Color.parse(theme.variables["mail-dim"]).monochrome
    assert contrast(unread, dim) >= 1.5  # read and unread rows still differ (and unread is bold)


# --- user themes ---------------------------------------------------------------------------


def test_user_theme_from_the_xdg_directory(user_dir: Path) -> None:
    (user_dir / "mine.toml").write_text('extends = "kittiwake-dark"\nbackground = "#000000"\n')
    themes, warnings = load_themes()
    assert warnings == []
    assert themes["mine"].background == "#000000"


def test_user_theme_overrides_a_builtin(user_dir: Path) -> None:
    builtin = load_themes(None)[0]["kittiwake-dark"]
    (user_dir / "kittiwake-dark.toml").write_text(
        'extends = "kittiwake-dark"\n[variables]\nmail-unread = "#ff0000"\n'
    )
    (user_dir / "kittiwake-light.toml").write_text(
        'primary = "#111111"\nbackground = "#eeeeee"\ndark = false\n'
    )
    themes, warnings = load_themes(user_dir)
    assert warnings == []
    dark = themes["kittiwake-dark"]
    assert dark.variables["mail-unread"] == "#ff0000"
    assert dark.variables["mail-dim"] == builtin.variables["mail-dim"]
    assert dark.background == builtin.background
    light = themes["kittiwake-light"]  # replaced whole, no extends: nothing inherited
    assert (light.primary, light.background, light.surface) == ("#111111", "#eeeeee", None)
    assert set(MAIL_VARIABLES) <= set(light.variables)  # derived from its own colours


def test_extends_inherits_the_rest(user_dir: Path) -> None:
    (user_dir / "paper.toml").write_text(
        'extends = "kittiwake-light"\nbackground = "#ffffff"\n'
        '[variables]\nmail-link = "#0000ee"\nborder = "#000000 50%"\n'
    )
    (user_dir / "paper-bold.toml").write_text(
        'extends = "paper"\n[variables]\nblock-cursor-text-style = "bold reverse"\n'
    )
    (user_dir / "my-nord.toml").write_text(
        'extends = "nord"\n[variables]\nmail-unread = "#ffffff"\n'
    )
    themes, warnings = load_themes(user_dir)
    assert warnings == []
    light, paper, bold = themes["kittiwake-light"], themes["paper"], themes["paper-bold"]
    assert paper.background == bold.background == "#ffffff"
    assert paper.dark is bold.dark is False
    assert paper.primary == light.primary
    assert paper.variables["mail-link"] == bold.variables["mail-link"] == "#0000ee"
    assert paper.variables["mail-dim"] == light.variables["mail-dim"]
    assert bold.variables["block-cursor-text-style"] == "bold reverse"
    assert themes["my-nord"].primary == TEXTUAL_THEMES["nord"].primary
    assert set(MAIL_VARIABLES) <= set(themes["my-nord"].variables)


MALFORMED = [
    ("syntax.toml", 'primary = "#ffffff\n', "not valid TOML"),
    ("unknown.toml", 'extends = "kittiwake-dark"\nprimay = "#ffffff"\n', "'primay'"),
    ("colour.toml", 'primary = "blu"\n', "'primary'"),
    (
        "variable.toml",
        'extends = "kittiwake-dark"\n[variables]\nmail-unread = "#ggg"\n',
        "'variables.mail-unread'",
    ),
    (
        "unknown-variable.toml",
        'extends = "kittiwake-dark"\n[variables]\nmail-unred = "#fff"\n',
        "'variables.mail-unred'",
    ),
    (
        "style.toml",
        'extends = "kittiwake-dark"\n[variables]\nlink-style = "blod"\n',
        "'variables.link-style'",
    ),
    (
        "textual-colour.toml",
        'extends = "kittiwake-dark"\n[variables]\nborder = "#12 50%"\n',
        "'variables.border'",
    ),
    ("type.toml", 'extends = "kittiwake-dark"\ndark = "yes"\n', "'dark'"),
    ("fraction.toml", 'extends = "kittiwake-dark"\ntext_alpha = 2\n', "'text_alpha'"),
    ("parent.toml", 'extends = "kittiwake-drak"\n', "'extends'"),
    ("no-primary.toml", 'background = "#000000"\n', "'primary'"),
    ("bad-name.toml", 'name = "my theme"\nextends = "kittiwake-dark"\n', "'name'"),
    ("table.toml", 'extends = "kittiwake-dark"\nvariables = "x"\n', "'variables'"),
]


@pytest.mark.parametrize(("filename", "content", "names"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_user_theme_is_skipped_with_a_warning(
    user_dir: Path, filename: str, content: str, names: str
) -> None:
    (user_dir / "good.toml").write_text('extends = "kittiwake-dark"\n')
    (user_dir / filename).write_text(content)
    themes, warnings = load_themes(user_dir)
    assert "good" in themes
    assert set(BUILTINS) <= set(themes)
    assert Path(filename).stem not in themes
    assert len(warnings) == 1, warnings
    (warning,) = warnings
    assert str(user_dir / filename) in warning
    assert names in warning
    assert warning.endswith(".") and "\n" not in warning


def test_warnings_suggest_the_intended_key(user_dir: Path) -> None:
    (user_dir / "a.toml").write_text('extends = "kittiwake-dark"\nprimay = "#ffffff"\n')
    (user_dir / "b.toml").write_text('primary = "blu"\n')
    _, warnings = load_themes(user_dir)
    assert "did you mean 'primary'?" in warnings[0]
    assert "'blu'" in warnings[1] and "did you mean 'blue'?" in warnings[1]


def test_bad_toml_warning_gives_the_line(user_dir: Path) -> None:
    (user_dir / "x.toml").write_text('extends = "kittiwake-dark"\n\nprimary = \n')
    (warning,) = load_themes(user_dir)[1]
    assert "line 3" in warning


def test_unreadable_and_looping_files(user_dir: Path) -> None:
    (user_dir / "latin1.toml").write_bytes(b'description = "caf\xe9"\n')
    (user_dir / "a.toml").write_text('extends = "b"\n')
    (user_dir / "b.toml").write_text('extends = "a"\n')
    (user_dir / "c.toml").write_text('extends = "a"\n')
    themes, warnings = load_themes(user_dir)
    assert not {"latin1", "a", "b", "c"} & set(themes)
    assert len(warnings) == 4
    assert "could not be read" in warnings[0]
    assert all("'extends'" in w for w in warnings[1:])
    assert any("loop" in w for w in warnings)


def test_same_name_in_two_files(user_dir: Path) -> None:
    (user_dir / "one.toml").write_text('name = "same"\nextends = "kittiwake-dark"\n')
    (user_dir / "two.toml").write_text('name = "same"\nextends = "kittiwake-light"\n')
    themes, warnings = load_themes(user_dir)
    assert themes["same"].dark is False
    (warning,) = warnings
    assert "two.toml" in warning and "one.toml" in warning


# --- picking -------------------------------------------------------------------------------


async def test_unknown_theme_falls_back_with_a_warning(tmp_path: Path) -> None:
    app = MailCssApp("solarised-nope", tmp_path)
    assert app.pick_warning is not None
    assert "'solarised-nope'" in app.pick_warning and DEFAULT_THEME in app.pick_warning
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == DEFAULT_THEME


async def test_no_name_means_the_default(tmp_path: Path) -> None:
    app = MailCssApp(None, tmp_path)
    assert app.pick_warning is None
    assert app.theme == DEFAULT_THEME


async def test_a_user_theme_can_be_picked(user_dir: Path) -> None:
    (user_dir / "mine.toml").write_text(
        'extends = "kittiwake-dark"\n[variables]\nmail-unread = "#ff0000"\n'
    )
    app = MailCssApp("mine", user_dir)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert app.theme == "mine"
        assert app.query_one("#mail-unread").styles.color == Color.parse("#ff0000")


# --- NO_COLOR ------------------------------------------------------------------------------


def test_no_color_convention() -> None:
    assert no_color_requested({"NO_COLOR": "1"})
    assert not no_color_requested({"NO_COLOR": ""})
    assert not no_color_requested({})
    env = {"NO_COLOR": ""}
    assert normalise_no_color(env) is False and env == {}
    env = {"NO_COLOR": "yes"}
    assert normalise_no_color(env) is True and env == {"NO_COLOR": "yes"}


async def test_without_no_color_themes_are_in_colour(tmp_path: Path) -> None:
    app = MailCssApp("kittiwake-dark", tmp_path)
    assert not app.no_color and not greyscale_filter_active(app)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        triplets = {c.triplet for c in _rendered_colours(app) if c.triplet is not None}
    assert any(len(set(t)) > 1 for t in triplets)  # not all grey: the next test means something


@pytest.mark.parametrize("name", TRUECOLOR)
async def test_no_color_makes_textual_render_greys_only(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Textual 8.2.8 itself reads NO_COLOR in App.__init__ and adds its Monochrome filter."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = MailCssApp(name, tmp_path)
    assert app.no_color and greyscale_filter_active(app)
    assert app.pick_warning is None
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert app.theme == name
        colours = _rendered_colours(app)
    assert colours
    for colour in colours:
        assert colour.type is ColorType.TRUECOLOR
        r, g, b = colour.triplet
        assert r == g == b, colour


async def test_empty_no_color_is_obeyed_by_textual_unless_normalised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "")
    assert MailCssApp(None, tmp_path).no_color  # Textual checks presence, not the value
    assert normalise_no_color() is False
    app = MailCssApp(None, tmp_path)
    assert not app.no_color and not greyscale_filter_active(app)


@pytest.mark.parametrize("name", [*ANSI, "ansi-dark"])
async def test_no_color_refuses_ansi_themes(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = MailCssApp(name, tmp_path)
    assert app.pick_warning is not None and f"'{name}'" in app.pick_warning
    assert app.theme == DEFAULT_THEME


async def test_why_ansi_themes_are_refused_under_no_color(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Textual's Monochrome filter turns palette colours (RGB unknown to it) into black."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = MailCssApp(None, tmp_path)
    async with app.run_test(size=(60, 20)) as pilot:
        app.theme = "kittiwake-16"  # forced, past pick_theme
        await pilot.pause()
        triplets = {c.triplet for c in _rendered_colours(app)}
    assert triplets == {(0, 0, 0)}  # black text on black: if this changes, revisit pick_theme
