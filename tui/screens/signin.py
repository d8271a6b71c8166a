"""``ctrl+l`` (or offered when an account needs it): sign in to an OAuth2 account from the app.

Shows the address to open (the browser opens by itself on a desktop), the ``ssh -L`` line for
a session over SSH, and a field for the address the browser ended on; or, with ``c``, a code to
type on any device where the provider allows it. The account reconnects once signed in."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Static

from kittiwake.core.api import MailApi
from kittiwake.core.oauth2.endpoint import DeviceStart
from kittiwake.core.oauth2.flow import BrowserPrompt, LoopbackReceiver, open_browser
from kittiwake.core.sanitize import clean_line


class SignInScreen(Screen[str | None]):
    """Dismissed with one sentence once signed in, or None when left."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss_none", "Close", id="signin.close"),
        Binding("ctrl+y", "copy_address", "Copy the address", id="signin.copy"),
    ]

    # No frame around the text: the long address must copy out of the terminal cleanly.
    DEFAULT_CSS = """
    SignInScreen { background: $surface; }
    SignInScreen > VerticalScroll { height: 1fr; padding: 0 0; }
    SignInScreen Input, SignInScreen Input:focus {
        height: 1; border: none; padding: 0 1; background: $boost; margin-top: 1;
    }
    SignInScreen #said { height: auto; }
    SignInScreen #keys { dock: bottom; height: 1; }
    """

    def __init__(self, api: MailApi, account: str, *, with_code: bool = False) -> None:
        super().__init__()
        self.api = api
        self.account = account
        self.with_code = with_code
        self.receiver: LoopbackReceiver | None = None
        self.prompt: BrowserPrompt | None = None
        self.device: DeviceStart | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(f"Sign in to {self.account}", style="bold"))
            yield Static(Text("Starting …", style="dim"), id="said")
            yield Input(
                placeholder="paste the address the browser ended on (http://127.0.0.1:…)",
                id="pasted",
            )
        yield Static(
            Text(" ctrl+y copy the address · enter use the pasted address · escape close", "dim"),
            id="keys",
        )

    def on_mount(self) -> None:
        if self.with_code:
            self.query_one("#pasted").display = False
        self.run_sign_in()

    @work(exclusive=True, exit_on_error=False)
    async def run_sign_in(self) -> None:
        said = self.query_one("#said", Static)
        try:
            sentence = await self.api.sign_in(
                self.account,
                self._show_browser,
                self._show_code if self.with_code else None,
            )
        except Exception as exc:  # one sentence on screen; the log has the rest
            message = getattr(exc, "message", None) or f"sign-in failed ({type(exc).__name__})"
            said.update(Text(clean_line(message), style="bold"))
            return
        self.dismiss(sentence)

    def _show_browser(self, prompt: BrowserPrompt, receiver: LoopbackReceiver) -> None:
        self.prompt, self.receiver = prompt, receiver
        opened = open_browser(prompt.url)
        text = Text()
        text.append("A browser opened; sign in there.\n\n" if opened else "Open this address in a ")
        if not opened:
            text.append("browser and sign in:\n\n")
        text.append(prompt.url + "\n\n", style="underline")
        text.append("Over SSH, connect this port from your own machine first:\n  ")
        text.append(prompt.ssh_hint + "\n", style="bold")
        text.append("or paste below the address the browser ended on.", style="dim")
        self.query_one("#said", Static).update(text)
        self.query_one("#pasted", Input).focus()

    def _show_code(self, device: DeviceStart) -> None:
        self.device = device
        text = Text(f"On any device, open {clean_line(device.verification_uri)} and enter:\n\n")
        text.append(f"  {clean_line(device.user_code)}\n\n", style="bold")
        text.append(f"Waiting (the code is valid for {device.expires_in // 60} minutes) …", "dim")
        self.query_one("#said", Static).update(text)

    @on(Input.Submitted, "#pasted")
    def _pasted(self, event: Input.Submitted) -> None:
        if self.receiver is None:
            return
        if not self.receiver.paste(event.value):
            self.notify(
                "That is not the address the browser ended on (it starts with "
                f"http://127.0.0.1:{self.receiver.port}/)",
                severity="warning",
            )

    def action_copy_address(self) -> None:
        """OSC 52: reaches the clipboard of the terminal the user sits at, over SSH too."""
        if self.prompt is not None:
            self.app.copy_to_clipboard(self.prompt.url)
            self.notify("The address was sent to your terminal's clipboard (if it allows that)")

    def action_dismiss_none(self) -> None:
        if self.receiver is not None:
            self.receiver.close()
        self.dismiss(None)
