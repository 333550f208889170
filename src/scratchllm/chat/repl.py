"""The chat loop: read a message, answer it as it is generated, keep the conversation.

``ChatRepl(model, settings=...)`` talks to anything with ``describe()``, ``fit(messages,
settings)`` and ``reply(messages, settings)`` (``local.LocalChat``, ``remote.RemoteChat``):
``fit`` drops the oldest turns that no longer fit the window, and ``reply`` gives the answer's
text pieces as they come, a ``close()`` that stops it, and ``tokens`` once it is read.

On a terminal the loop shows a ``>>>`` prompt and dims its stats line; with piped input each
line is a message, nothing but the answers goes to stdout, and the end of the input ends the
chat. Ctrl-C during an answer stops that answer (what was written stays in the conversation);
at the prompt it clears the line. ``HELP`` lists the commands.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, TextIO

from scratchllm.chat.session import describe_settings, load_chat, save_chat, set_setting
from scratchllm.config import SamplingConfig
from scratchllm.errors import ConfigError, ScratchLLMError

PROMPT, CONTINUATION = ">>> ", "... "
BLOCK = '"""'  # a line of its own opens and closes a multi-line message

HELP = f"""\
Type a message and press Enter; the answer streams as it is generated.
Multi-line: end a line with \\ to go on on the next, or put {BLOCK} on a line of its own
before and after the lines. A message starting with / is a command (// sends a literal /).
  /help                  this list
  /set                   show the settings
  /set NAME VALUE        temperature, top_k, top_p, max_tokens or seed (none turns off
                         top_k, top_p and seed)
  /retry                 answer the last message again
  /undo                  forget the last message and its answer
  /reset                 forget the whole conversation (a system message stays)
  /save FILE, /load FILE the conversation and settings, as JSON
  /exit                  quit (so does Ctrl-D); Ctrl-C stops an answer"""


class Reply(Protocol):
    tokens: int | None

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class ChatModel(Protocol):
    def describe(self) -> str: ...

    def fit(
        self, messages: Sequence[Mapping[str, str]], settings: SamplingConfig
    ) -> tuple[list[Mapping[str, str]], int]: ...

    def reply(self, messages: Sequence[Mapping[str, str]], settings: SamplingConfig) -> Reply: ...


class ChatRepl:
    """One conversation with ``model``; ``run()`` reads messages until the input ends."""

    def __init__(
        self,
        model: ChatModel,
        *,
        settings: SamplingConfig,
        system: str | None = None,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.model = model
        self.settings = settings
        self.system = [{"role": "system", "content": system}] if system else []
        self.messages: list[dict[str, str]] = list(self.system)
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.interactive = self.stdin.isatty()
        self.clock = clock

    # ---- the loop ------------------------------------------------------------------------------

    def run(self) -> int:
        if self.interactive:
            with contextlib.suppress(ImportError):  # not on every platform
                import readline  # noqa: F401 - line editing and history for input()
            self.notice(f"chatting with {self.model.describe()}; /help lists the commands")
        while True:
            try:
                text = self.read_message()
            except KeyboardInterrupt:
                if not self.interactive:
                    return 130
                self.notice("\n(Ctrl-D or /exit quits)")
                continue
            if text is None:
                if self.interactive:
                    print(file=self.stdout)
                return 0
            if text.strip() and not self.handle(text):
                return 0

    def read_message(self) -> str | None:
        """One message: a line, lines joined by a final backslash, or a block between
        ``\"\"\"`` lines; None at the end of the input."""
        line = self._read_line(PROMPT)
        if line is None:
            return None
        if line.strip() == BLOCK:
            lines = []
            while (line := self._read_line(CONTINUATION)) is not None and line.strip() != BLOCK:
                lines.append(line)
            return "\n".join(lines)
        lines = []
        while line is not None and line.endswith("\\"):
            lines.append(line[:-1])
            line = self._read_line(CONTINUATION)
        return "\n".join([*lines, line or ""])

    def _read_line(self, prompt: str) -> str | None:
        if self.interactive:
            try:
                return input(prompt)
            except EOFError:
                return None
        line = self.stdin.readline()
        return line.rstrip("\r\n") if line else None

    def handle(self, text: str) -> bool:
        """Act on one message or command; False to quit."""
        if text.startswith("/") and not text.startswith("//"):
            try:
                return self.command(text)
            except ScratchLLMError as error:
                self.error(str(error))
                return True
        self.messages.append({"role": "user", "content": text.removeprefix("/")})
        self.answer()
        return True

    # ---- the commands --------------------------------------------------------------------------

    def command(self, text: str) -> bool:
        name, _, rest = text.strip().partition(" ")
        rest = rest.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            print(HELP, file=self.stdout)
        elif name == "/set":
            if rest:
                setting, _, value = rest.partition(" ")
                if not value.strip():
                    raise ConfigError(f"/set {setting} needs a value: /set {setting} VALUE")
                self.settings = set_setting(self.settings, setting, value.strip())
            print(describe_settings(self.settings), file=self.stdout)
        elif name == "/reset":
            self.messages = list(self.system)
            self.notice("(the conversation is cleared)")
        elif name == "/undo":
            self.messages = self.messages[: self._last_user_index("undo")]
            self.notice("(the last exchange is forgotten)")
        elif name == "/retry":
            self.messages = self.messages[: self._last_user_index("retry") + 1]
            self.answer()
        elif name in ("/save", "/load"):
            if not rest:
                raise ConfigError(f"{name} needs a file name: {name} FILE")
            if name == "/save":
                save_chat(Path(rest), self.messages, self.settings)
                self.notice(f"(saved {len(self.messages)} messages to {rest})")
            else:
                self.messages, self.settings = load_chat(Path(rest), self.settings)
                self.notice(f"(loaded {len(self.messages)} messages from {rest})")
        else:
            raise ConfigError(f"unknown command {name}; /help lists the commands")
        return True

    def _last_user_index(self, action: str) -> int:
        for index in range(len(self.messages) - 1, -1, -1):
            if self.messages[index]["role"] == "user":
                return index
        raise ConfigError(f"nothing to {action}: no message yet")

    # ---- answering -----------------------------------------------------------------------------

    def answer(self) -> None:
        """Stream the model's answer to the conversation, and keep it."""
        kept, dropped = self.model.fit(self.messages, self.settings)
        if dropped:
            self.messages = [dict(message) for message in kept]
            self.notice(
                "(the context window is full: "
                + ("the oldest turn was" if dropped == 1 else f"the {dropped} oldest turns were")
                + " dropped)"
            )
        start, first = self.clock(), None
        pieces: list[str] = []
        stopped = False
        reply = self.model.reply(self.messages, self.settings)
        try:
            for piece in reply:
                if first is None:
                    first = self.clock()
                if not "".join(pieces).strip():  # the answer's leading spaces are not shown
                    piece = piece.lstrip()
                pieces.append(piece)
                self.stdout.write(piece)
                self.stdout.flush()
        except KeyboardInterrupt:
            stopped = True
        except ScratchLLMError as error:  # a server's error: this message goes unanswered
            if pieces:
                print(file=self.stdout)
            self.error(str(error))
            del self.messages[self._last_user_index("answer") :]
            return
        finally:
            reply.close()
        print(file=self.stdout, flush=True)
        end = self.clock()
        text = "".join(pieces).strip()
        if stopped and not text:
            del self.messages[self._last_user_index("answer") :]
            self.notice("(stopped before the answer began; the message is not kept)")
            return
        self.messages.append({"role": "assistant", "content": text})
        self.stats(reply.tokens or 0, start, first, end, stopped=stopped)

    def stats(
        self, tokens: int, start: float, first: float | None, end: float, *, stopped: bool
    ) -> None:
        """``[12 tokens, first after 0.05 s, 85.3 tokens/s]``, the rate over the whole answer
        (pieces can come in bursts: a character or a stop string held back)."""
        parts = [f"{tokens} token{'s' if tokens != 1 else ''}"]
        if first is not None:
            parts.append(f"first after {first - start:.2f} s")
            if end > start:
                parts.append(f"{tokens / (end - start):.1f} tokens/s")
        self.notice(f"[{', '.join(parts)}{'; stopped' if stopped else ''}]")

    # ---- messages to the user ------------------------------------------------------------------

    def notice(self, text: str) -> None:
        """A line on stderr, dimmed on a terminal: never mixed into the answers on stdout."""
        if self.stderr.isatty():
            text = f"\033[2m{text}\033[0m"
        print(text, file=self.stderr, flush=True)

    def error(self, text: str) -> None:
        print(f"error: {text}", file=self.stderr, flush=True)
