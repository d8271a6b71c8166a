"""The setup screen: from an email address to a working account, shown as it happens.

Discovery's findings and the probes of each candidate appear as they come; the user picks
IMAP or POP3 where both work (with the difference explained at that point), reads the
provider's sign-in advice before typing a password, watches the login tests run, and saves.
All the work is in ``core/setup`` behind ``SetupService``; this screen only shows and asks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Input, RadioButton, RadioSet, Static

from kittiwake.core.sanitize import clean_line
from kittiwake.core.setup.autoconfig import SECURITY_LABELS
from kittiwake.core.setup.confirm import Candidate
from kittiwake.core.setup.discover import Finding
from kittiwake.core.setup.flow import IMAP_OR_POP3, Proposal, Receive
from kittiwake.core.setup.login import LoginResult
from kittiwake.core.setup.roundtrip import RoundTrip


class SetupService(Protocol):
    """What the screen needs of the engine (``core/setup/service.py``)."""

    async def find(
        self,
        email: str,
        on_finding: Callable[[Finding], None] | None = None,
        on_candidate: Callable[[Candidate], None] | None = None,
    ) -> Proposal: ...

    async def test_login(
        self, proposal: Proposal, receive: Receive, name: str, password: str
    ) -> list[LoginResult]: ...

    async def save(self, proposal: Proposal, receive: Receive, name: str, password: str) -> str: ...

    async def send_test_unsaved(
        self, proposal: Proposal, receive: Receive, name: str, password: str
    ) -> RoundTrip: ...


def describe_findings(findings: list[Finding]) -> Text:
    """One line per source that proposed servers, then one line naming those that had
    nothing (their reasons are in the log and in ``kittiwake setup --email``'s output)."""
    text = Text("Where the settings came from\n", style="bold")
    for finding in sorted(findings, key=lambda f: f.rank):
        if not finding.settings:
            continue
        servers = ", ".join(
            f"{s.protocol.upper()} {s.host}:{s.port} {SECURITY_LABELS[s.security]}"
            for s in finding.settings[:3]
        )
        text.append("  ●  ", style="bold")
        text.append(clean_line(f"{finding.source}: {servers}"))
        text.append("\n")
    silent = [_short_source(f) for f in findings if not f.settings]
    if silent:
        text.append(f"  –  nothing from {', '.join(dict.fromkeys(silent))}\n", style="dim")
    return text


def _short_source(finding: Finding) -> str:
    if finding.kind == "autoconfig":
        return clean_line(finding.source.split("/")[2])
    return {"table": "the provider table", "mx": "MX", "srv": "SRV", "guess": "guesses"}.get(
        finding.kind, finding.kind
    )


def describe_candidate(candidate: Candidate) -> Text:
    s = candidate.setting
    text = Text()
    if candidate.ok:
        text.append("  ✓  ", style="bold green")
    else:
        text.append("  ✗  ", style="dim")
    label = f"{s.protocol.upper():<4} {s.host}:{s.port} {SECURITY_LABELS[s.security]}"
    text.append(clean_line(label), style="" if candidate.ok else "dim")
    if not candidate.ok:
        text.append(f"  {clean_line(candidate.result.detail)[:70]}", style="dim")
    return text


class SetupScreen(Screen[str | None]):
    """Dismissed with a sentence naming the saved account, or None when the user quits."""

    # No binding id: setup runs before there is a config whose [keys] could remap it.
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "quit_setup", "Quit")]

    DEFAULT_CSS = """
    SetupScreen { align: center top; }
    SetupScreen > VerticalScroll { width: 100%; max-width: 100; height: 1fr; padding: 0 1; }
    SetupScreen Input, SetupScreen Input:focus {
        width: 100%; height: 1; border: none; padding: 0 1; background: $boost;
    }
    SetupScreen Input:focus { background: $primary 30%; }
    SetupScreen #advice.empty { display: none; }
    SetupScreen .label { margin-top: 1; }
    SetupScreen #findings, SetupScreen #probes, SetupScreen #logins { height: auto; }
    SetupScreen #choice, SetupScreen #signin { display: none; height: auto; }
    SetupScreen #choice.shown, SetupScreen #signin.shown { display: block; }
    SetupScreen RadioSet { width: 100%; }
    SetupScreen #explain, SetupScreen #advice { height: auto; }
    SetupScreen #bottom { dock: bottom; height: auto; }
    SetupScreen #status { height: auto; max-height: 3; padding: 0 1; background: $boost; }
    SetupScreen #keys { height: 1; }
    SetupScreen #buttons { height: auto; margin-top: 1; }
    SetupScreen Button { margin-right: 2; }
    """

    def __init__(self, service: SetupService, email: str = "", name: str = "") -> None:
        super().__init__()
        self.service = service
        self.initial = (email, name)
        self.proposal: Proposal | None = None
        self.tested = False

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("Set up a mail account", style="bold"), id="title")
            yield Static("Your email address", classes="label")
            yield Input(value=self.initial[0], placeholder="you@example.org", id="email")
            yield Static("Your name (shown to the people you write to)", classes="label")
            yield Input(value=self.initial[1], placeholder="Ann Example", id="name")
            yield Static(id="findings", classes="label")
            yield Static(id="probes")
            with Vertical(id="choice"):
                yield Static(id="explain", classes="label")
                with RadioSet(id="receive"):
                    yield RadioButton("IMAP: the server keeps your mail (recommended)", id="imap")
                    yield RadioButton("POP3: this machine downloads and keeps it", id="pop3")
            with Vertical(id="signin"):
                yield Static(id="advice", classes="label")
                yield Static("Password", classes="label")
                yield Input(password=True, id="password")
                yield Static(id="logins")
                with Horizontal(id="buttons"):
                    yield Button("Test sign-in", id="test", variant="primary")
                    yield Button("Save account", id="save", disabled=True)
                    yield Button("Send a test message", id="roundtrip", disabled=True)
        with Vertical(id="bottom"):
            yield Static(id="status")
            yield Static(
                Text(" enter next · tab next field · escape leave setup", style="dim"), id="keys"
            )

    def on_mount(self) -> None:
        self.query_one("#email", Input).focus()

    # -- step 1: discovery -----------------------------------------------------------------

    @on(Input.Submitted, "#email")
    @on(Input.Submitted, "#name")
    def _address_entered(self) -> None:
        email = self.query_one("#email", Input).value.strip()
        if "@" not in email or email.startswith("@") or email.endswith("@"):
            self._status("Type your whole address, like ann@example.org.")
            self.query_one("#email", Input).focus()
            return
        if self.query_one("#name", Input).has_focus or self.query_one("#name", Input).value:
            self.discover(email)
        else:
            self.query_one("#name", Input).focus()

    def _status(self, sentence: str, style: str = "") -> None:
        self.query_one("#status", Static).update(Text(sentence, style=style))

    @work(exclusive=True, group="discover", exit_on_error=False)
    async def discover(self, email: str) -> None:
        findings: list[Finding] = []
        candidates: list[Candidate] = []
        self.tested = False
        self.query_one("#save", Button).disabled = True
        self.query_one("#choice").remove_class("shown")
        self.query_one("#signin").remove_class("shown")
        self._status(f"Looking up the settings for {clean_line(email)} …")

        def found(finding: Finding) -> None:
            findings.append(finding)
            self.query_one("#findings", Static).update(describe_findings(findings))

        def probed(candidate: Candidate) -> None:
            candidates.append(candidate)
            shown = Text("Checked over the network (no password sent)\n", style="bold")
            for c in sorted(candidates, key=lambda c: (not c.ok, c.setting.protocol)):
                shown.append_text(describe_candidate(c))
                shown.append("\n")
            self.query_one("#probes", Static).update(shown)

        self._status(f"Looking up and checking the servers for {clean_line(email)} …")
        proposal = await self.service.find(email, found, probed)
        self.proposal = proposal
        choices = proposal.receive_choices
        missing = proposal.missing()
        if missing is not None:
            self._status(clean_line(missing), "bold")
            return
        self._status("Found working servers.", "bold")
        choice = self.query_one("#choice")
        if len(choices) == 2:
            self.query_one("#explain", Static).update(Text(IMAP_OR_POP3))
            choice.add_class("shown")
            self.query_one("#imap", RadioButton).value = True
        else:
            self.query_one(f"#{choices[0]}", RadioButton).value = True
        rule = proposal.sign_in
        advice = self.query_one("#advice", Static)
        advice.update(Text(rule.advice, style="bold") if rule is not None else "")
        advice.set_class(rule is None, "empty")
        self.query_one("#signin").add_class("shown")
        password = self.query_one("#password", Input)
        password.focus()
        self.call_after_refresh(password.scroll_visible)

    @property
    def receive(self) -> Receive:
        return "pop3" if self.query_one("#pop3", RadioButton).value else "imap"

    # -- step 2: sign in, test, save -------------------------------------------------------

    @on(Input.Submitted, "#password")
    @on(Button.Pressed, "#test")
    def _test(self) -> None:
        if self.proposal is None:
            return
        if not self.query_one("#password", Input).value:
            self._status("Type the password first.")
            return
        self.test_login()

    @work(exclusive=True, group="login", exit_on_error=False)
    async def test_login(self) -> None:
        proposal = self.proposal
        assert proposal is not None
        password = self.query_one("#password", Input).value
        name = self.query_one("#name", Input).value.strip()
        self._status("Signing in (nothing is sent) …")
        results = await self.service.test_login(proposal, self.receive, name, password)
        shown = Text()
        hints: list[str] = []
        for result in results:
            shown.append("  ✓  " if result.ok else "  ✗  ", style="bold" if result.ok else "")
            shown.append(clean_line(result.detail) + "\n")
            if result.hint and result.hint not in hints:
                hints.append(result.hint)
        for hint in hints:
            shown.append(f"  {clean_line(hint)}\n", style="bold")
        logins = self.query_one("#logins", Static)
        logins.update(shown)
        self.call_after_refresh(logins.scroll_visible)
        self.tested = all(r.ok for r in results)
        save = self.query_one("#save", Button)
        save.disabled = not self.tested
        self.query_one("#roundtrip", Button).disabled = not self.tested
        if self.tested:
            self._status("Everything works. Save the account to start reading mail.", "bold")
            save.focus()
        elif any(r.auth_refused for r in results):
            self._status(
                "Sign-in did not work (the reasons are above): correct the password "
                "(ctrl+u clears it) and press enter.",
                "bold",
            )
            self.query_one("#password", Input).focus()
        else:  # unreachable, or [UNAVAILABLE]: the password was not what failed
            self._status(
                "The server could not be used just now (the reasons are above); the password "
                "was not refused: press enter to try again.",
                "bold",
            )
            self.query_one("#password", Input).focus()

    @on(Button.Pressed, "#roundtrip")
    def _roundtrip(self) -> None:
        if self.tested:
            self.send_test()

    @work(exclusive=True, group="roundtrip", exit_on_error=False)
    async def send_test(self) -> None:
        proposal = self.proposal
        assert proposal is not None
        password = self.query_one("#password", Input).value
        name = self.query_one("#name", Input).value.strip()
        self._status(f"Sending a message to {clean_line(proposal.email)} and waiting for it …")
        trip = await self.service.send_test_unsaved(proposal, self.receive, name, password)
        self._status(clean_line(trip.detail[:1].upper() + trip.detail[1:]) + ".", "bold")
        self.query_one("#save", Button).focus()

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        if self.tested:
            self.save()

    @work(exclusive=True, group="save", exit_on_error=False)
    async def save(self) -> None:
        proposal = self.proposal
        assert proposal is not None
        password = self.query_one("#password", Input).value
        name = self.query_one("#name", Input).value.strip()
        self._status("Saving …")
        try:
            said = await self.service.save(proposal, self.receive, name, password)
        except Exception as exc:  # one sentence on screen; the log has the rest
            message = getattr(exc, "message", None) or f"could not save ({type(exc).__name__})"
            self._status(clean_line(message), "bold")
            return
        self.dismiss(said)

    def action_quit_setup(self) -> None:
        self.dismiss(None)
