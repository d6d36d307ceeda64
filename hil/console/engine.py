"""The console engine: a reader thread and a stamped transcript, expect/send, login to a framed shell, run.

A serial console is shared with the kernel: printk writes straight to the UART, so kernel log lines
(`[   12.345678] ...`) can land anywhere, even inside a prompt or one of our markers. Everything this
module waits for is recognised with those lines taken out, so login and framing survive them; the output
that `run()` returns is what the console showed, kernel lines included. SSH is the channel for exact
output; the console is the channel that works when nothing else does.

    console = Console(transport, workdir / "console.log", name="qemux86-64 console")
    console.login("root", None, timeout=boot_timeout)  # from power-on: waits for the prompt
    console.run("uname -r", timeout=10).check()
"""

from __future__ import annotations

import bisect
import logging
import re
import secrets
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from hil.console.result import CommandResult
from hil.console.text import KERNEL_LINE, TextCleaner, strip_kernel_lines, tolerant
from hil.console.transcript import TranscriptWriter
from hil.console.transport import Transport
from hil.errors import ConsoleClosed, ConsoleTimeout, LoginRefused

log = logging.getLogger(__name__)

# How long the reader blocks in one read: bounds how long close() waits for it.
_READ_SLICE = 0.1
# login() types a newline to provoke a fresh prompt when the console showed nothing new for this long:
# the prompt was printed before we were reading, or the DUT lost what we typed (labgrid issue 1786).
_QUIET = 1.5
# How long a shell gets to answer the framing round-trip before login() looks at the console again.
_FRAME_TIMEOUT = 5.0
_MAX_REFUSALS = 3
_TAIL_LINES = 15
# A shell waiting for input: the text ends in a prompt character (kernel lines taken out).
_SHELL_PROMPT = re.compile(r"[#$>] ?\Z")
_REFUSED = re.compile(r"login incorrect|authentication fail|permission denied", re.IGNORECASE)


class Console:
    """A DUT's console: everything it prints is kept (stamped in the transcript file, clean in memory).

    `started` is when the board was powered on (time.monotonic()): transcript stamps and seconds_at()
    count from it.
    """

    def __init__(
        self,
        transport: Transport,
        transcript: Path,
        *,
        name: str = "console",
        closed_reason: Callable[[], str | None] | None = None,
        started: float | None = None,
    ) -> None:
        self.name = name
        self._transport = transport
        self._path = Path(transcript)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic() if started is None else started
        # Seconds after power-on at which the last login() or await_login_prompt() first saw a prompt.
        self.prompt_seen: float | None = None
        # Appended, so a board powered on twice keeps both boots in one transcript.
        self._file = TranscriptWriter(self._path, self.started)
        self._file.note(f"hil: {name} attached at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}", time.monotonic())
        self._closed_reason = closed_reason
        self._cleaner = TextCleaner()
        self._cond = threading.Condition()
        self._text = ""
        # (position in the clean text, when what begins there arrived): maps text back to time.
        self._arrivals: list[tuple[int, float]] = []
        self._cursor = 0
        self._failure: Exception | None = None
        self._stopping = threading.Event()
        self._reader = threading.Thread(target=self._pump, name=f"hil-{name}-reader", daemon=True)
        self._reader.start()

    @property
    def transcript(self) -> Path:
        """The file holding every byte the DUT printed, each line stamped with its time (transcript.py)."""
        return self._path

    def expect(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait for `pattern` (multi-line regex) in the clean text after the cursor; move past it."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.MULTILINE)
        return self._wait(regex, time.monotonic() + timeout, timeout, f"the pattern `{regex.pattern}`")

    def expect_exact(self, text: str, timeout: float) -> None:
        """Wait for `text` literally in the clean text after the cursor; move past it."""
        self._wait(re.compile(re.escape(text)), time.monotonic() + timeout, timeout, f"the text {text!r}")

    def send(self, text: str) -> None:
        """Type `text` on the console as it is."""
        self._write(text, repr(text))

    def sendline(self, text: str = "") -> None:
        """Type `text` and Enter."""
        self.send(text + "\n")

    def login(
        self,
        username: str,
        password: str | None,
        *,
        login_prompt: str = r"login:\s*$",
        password_prompt: str = r"[Pp]assword:\s*$",
        timeout: float,
        wake: bool = True,
    ) -> None:
        """Log in, or reuse a shell already there, and leave a framed shell ready for run().

        When the console goes quiet without a prompt, login() types Enter to get a fresh one. With
        `wake=False` it waits for the DUT's first prompt before typing anything: for boards whose
        bootloader a stray key would stop (U-Boot's autoboot), when login() is called right at power-on.
        """
        deadline = time.monotonic() + timeout
        prompts = {
            "login": re.compile(login_prompt, re.MULTILINE),
            "password": re.compile(password_prompt, re.MULTILINE),
            "shell": _SHELL_PROMPT,
        }
        what = f"a login prompt, a password prompt or a shell (logging in as {username!r})"
        refusals = 0
        with self._cond:  # the prompt may be on the line someone already waited for (the boot)
            self._cursor = self._text.rfind("\n", 0, self._cursor) + 1
            self.prompt_seen = None
        while True:
            state, seen = self._await_prompt(prompts, deadline, timeout, what)
            wake = wake or state is not None  # past the first prompt, no bootloader is listening
            if state is None:
                if wake:
                    self.sendline()
            elif state == "login":
                if _REFUSED.search(seen):
                    refusals += 1
                    if refusals >= _MAX_REFUSALS:
                        raise LoginRefused(
                            f"{self.name}: logging in as {username!r} was refused {refusals} times; "
                            f"check the user name and password. {self._evidence()}"
                        )
                self.sendline(username)
            elif state == "password":
                self._write(f"{password or ''}\n", "the password")
            elif self._frame_shell(deadline):
                log.info("%s: logged in as %s", self.name, username)
                return

    def await_login_prompt(self, login_prompt: str, *, timeout: float, wake: bool = True) -> None:
        """Wait until the console offers a login, without logging in (an OS hil has no password for)."""
        deadline = time.monotonic() + timeout
        prompts = {"login": re.compile(login_prompt, re.MULTILINE)}
        with self._cond:
            self._cursor = self._text.rfind("\n", 0, self._cursor) + 1
            self.prompt_seen = None
        while True:
            state, _ = self._await_prompt(prompts, deadline, timeout, "a login prompt")
            if state is not None:
                return
            if wake:
                self.sendline()

    def run(self, command: str, timeout: float) -> CommandResult:
        """Run `command` in the shell and return its output and exit status, framed by unique markers."""
        token = secrets.token_hex(4)
        deadline = time.monotonic() + timeout
        # The markers are printed in two pieces so an echo of this line never matches them. The command
        # sits in a group on lines of its own: `&`, comments and here-documents keep working, and the
        # shell prints every continuation prompt before it runs anything, so none lands in the output.
        framed = (
            f"printf '%s\\n' {shlex.quote('$ ' + command)}; printf '%s%s\\n' HILS {token}; {{ :\n"
            f"{command}\n"
            f"}}; printf '\\n%s%s:%s;\\n' HILE {token} \"$?\"\n"
        )
        self._write(framed, f"`{command}`")
        what = f"`{command}` to finish"
        try:
            start = self._wait(re.compile(tolerant(f"HILS{token}\n")), deadline, timeout, what)
            end = self._wait(
                re.compile(tolerant(f"\nHILE{token}:") + rf"((?:\d|{KERNEL_LINE})+?)" + tolerant(";")),
                deadline,
                timeout,
                what,
            )
        except ConsoleTimeout:
            self._interrupt()
            raise
        status = int(strip_kernel_lines(end.group(1)))
        log.debug("%s: `%s` exited %d", self.name, command, status)
        return CommandResult(command, end.string[start.end() : end.start()], status)

    def mark(self) -> int:
        """Return the current position in the transcript, to slice out what comes next."""
        with self._cond:
            return len(self._text)

    def text_since(self, mark: int) -> str:
        """Return the clean text the DUT printed since `mark`."""
        with self._cond:
            return self._text[mark:]

    def tail(self, lines: int = 20) -> str:
        """Return the last `lines` lines the DUT printed, escapes stripped."""
        with self._cond:
            return "\n".join(self._text.rstrip("\n").rsplit("\n", lines)[-lines:])

    def seconds_at(self, position: int) -> float:
        """Seconds after power-on at which the clean text at `position` arrived."""
        with self._cond:
            at = bisect.bisect_right(self._arrivals, (position, float("inf"))) - 1
            return (self._arrivals[at][1] if at >= 0 else self.started) - self.started

    def close(self) -> None:
        """Stop reading, close the transport and the transcript; idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._reader.join(timeout=_READ_SLICE * 20)
        self._transport.close()  # unblocks a transport that ignored the read timeout
        self._reader.join(timeout=_READ_SLICE * 20)
        with self._cond:
            if self._failure is None:
                self._failure = ConsoleClosed("closed by hil")
            self._cond.notify_all()
        self._file.close()

    def __enter__(self) -> Console:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def note(self, text: str) -> None:
        """Mark an event (a serial adapter that dropped out) in the transcript, between what the DUT printed.

        Called from the reader thread (transports report gaps from inside read()), so it never races
        the transcript's writer; the mark stays out of the text that patterns match.
        """
        self._file.note(f"hil: {text}", time.monotonic())

    def _pump(self) -> None:
        """Reader thread: bytes go to the transcript first, then to the clean text."""
        failure: Exception
        try:
            while not self._stopping.is_set():
                data = self._transport.read(_READ_SLICE)
                if data:
                    now = time.monotonic()
                    self._file.write(data, now)
                    self._append(self._cleaner.feed(data), now)
            failure = ConsoleClosed("closed by hil")
        except Exception as exc:  # handed to the waiting call: never a traceback from this thread
            failure = exc
        self._append(self._cleaner.flush(), time.monotonic())
        with self._cond:
            self._failure = failure
            self._cond.notify_all()

    def _append(self, text: str, at: float) -> None:
        if text:
            with self._cond:
                self._arrivals.append((len(self._text), at))
                self._text += text
                self._cond.notify_all()

    def _wait(self, regex: re.Pattern[str], deadline: float, timeout: float, what: str) -> re.Match[str]:
        """Wait for `regex` after the cursor until `deadline`; raise ConsoleTimeout naming `what`."""
        with self._cond:
            while True:
                match = regex.search(self._text, self._cursor)
                if match:
                    self._cursor = match.end()
                    return match
                self._raise_if_closed(f"waiting for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConsoleTimeout(f"{self.name}: waited {timeout:g} s for {what}. {self._evidence()}")
                self._cond.wait(remaining)

    def _await_prompt(
        self, prompts: dict[str, re.Pattern[str]], deadline: float, timeout: float, what: str
    ) -> tuple[str | None, str]:
        """Return which prompt the console now waits at, with the text seen; None after a quiet spell."""
        with self._cond:
            seen: str | None = None
            quiet_from = time.monotonic()
            while True:
                view = strip_kernel_lines(self._text[self._cursor :])
                now = time.monotonic()
                if view != seen:
                    seen, quiet_from = view, now
                    for state, regex in prompts.items():
                        if any(not view[m.end() :].strip() for m in regex.finditer(view)):
                            self._cursor = len(self._text)
                            if self.prompt_seen is None:  # when the text that completed it arrived
                                self.prompt_seen = self.seconds_at(self._cursor - 1)
                            return state, view
                self._raise_if_closed(f"waiting for {what}")
                if now >= deadline:
                    raise ConsoleTimeout(f"{self.name}: waited {timeout:g} s for {what}. {self._evidence()}")
                if now >= quiet_from + _QUIET:
                    self._cursor = len(self._text)
                    return None, view
                self._cond.wait(min(deadline, quiet_from + _QUIET) - now)

    def _frame_shell(self, deadline: float) -> bool:
        """Make the shell machine-friendly and prove it answers; False if it did not (not a shell?)."""
        token = secrets.token_hex(4)
        # No echo (long echoed lines wrap and ash asks for the cursor position), prompts we can tell
        # apart from anything else, no job notices ("[1] 1234") in outputs, and no bracketed paste
        # (labgrid issue 969).
        self.sendline(
            f"stty -echo 2>/dev/null; set +m; PS1='hil-{token}> '; PS2='hil-{token}+ '; "
            "unset PROMPT_COMMAND; bind 'set enable-bracketed-paste off' 2>/dev/null; "
            f"printf '%s%s\\n' HILR {token}"
        )
        ready = re.compile(tolerant(f"HILR{token}\n"))
        budget = min(deadline, time.monotonic() + _FRAME_TIMEOUT)
        try:
            self._wait(ready, budget, _FRAME_TIMEOUT, "the shell to answer")
        except ConsoleTimeout:
            log.info("%s: no answer from what looked like a shell; looking again", self.name)
            return False
        return True

    def _write(self, text: str, shown: str) -> None:
        """Send `text`; `shown` is how logs and errors name it (never a password)."""
        log.debug("%s <- %s", self.name, shown)
        with self._cond:
            self._raise_if_closed(f"sending {shown}")
        try:
            self._transport.write(text.encode())
        except (ConsoleClosed, OSError) as exc:
            with self._cond:
                self._failure = self._failure or exc
            raise self._closed_error(f"sending {shown}") from exc

    def _interrupt(self) -> None:
        """Type Ctrl-C so a command that overran its timeout does not hold the shell for the next one."""
        try:
            self.send("\x03")
        except ConsoleClosed:
            return
        log.warning("%s: sent Ctrl-C after a timeout", self.name)

    def _raise_if_closed(self, doing: str) -> None:
        """Raise ConsoleClosed if the reader has stopped; called with the lock held."""
        if self._failure is not None:
            raise self._closed_error(doing) from self._failure

    def _closed_error(self, doing: str) -> ConsoleClosed:
        reason = self._closed_reason() if self._closed_reason else None
        because = "; ".join(part for part in (reason, str(self._failure or "")) if part)
        return ConsoleClosed(f"{self.name} closed ({because}) while {doing}. {self._evidence()}")

    def _evidence(self) -> str:
        """The last lines received and where the rest is: what every console error carries."""
        tail = self.tail(_TAIL_LINES)
        body = "\n".join(f"  | {line}" for line in tail.splitlines()) or "  | (nothing received)"
        return f"Last lines received:\n{body}\nFull transcript: {self._path}"
