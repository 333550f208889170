"""``chat``: talk with a model in the terminal, locally or through an OpenAI-compatible server."""

from __future__ import annotations

import argparse

from scratchllm.cli import options
from scratchllm.cli.config_flags import add_config_flags, given_fields
from scratchllm.config import SamplingConfig

# an answer is longer than generate's default continuation
CHAT_SAMPLING = SamplingConfig(max_new_tokens=256)
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


def add_commands(commands: argparse._SubParsersAction) -> None:
    chat = commands.add_parser(
        "chat",
        help="chat with a model in the terminal (local, or a server with --remote)",
        description="A multi-turn chat: each message and the conversation so far go to the "
        "model in its checkpoint's prompt format (a base model reads a User:/Assistant: "
        "transcript), and the answer streams as it is generated, followed by a stats line on "
        "stderr. Type /help for the commands (/set, /retry, /undo, /reset, /save, /load, "
        "/exit). Ctrl-C stops an answer, Ctrl-D quits. With piped input, each line is a "
        "message and only the answers are printed.",
        epilog="Examples: scratchllm chat --checkpoint out/runs/instruct; "
        "scratchllm chat --remote http://localhost:8000. See docs/chat.md.",
    )
    source = chat.add_mutually_exclusive_group()
    options.add_checkpoint_option(source)
    source.add_argument(
        "--remote",
        metavar="URL",
        help="chat with a running OpenAI-compatible server instead (`scratchllm serve`, "
        "vLLM, Ollama: http://localhost:11434), with or without /v1",
    )
    chat.add_argument(
        "--model",
        metavar="NAME",
        help="with --remote: the model's name there (default: the first the server lists)",
    )
    chat.add_argument(
        "--api-key-env",
        default=DEFAULT_API_KEY_ENV,
        metavar="VAR",
        help="with --remote: the environment variable holding the API key, sent as a Bearer "
        f"token when set (default {DEFAULT_API_KEY_ENV})",
    )
    chat.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="with --remote: how long to wait for the server's next bytes (default 300)",
    )
    chat.add_argument(
        "--system", metavar="TEXT", help="a system message at the start of the conversation"
    )
    add_config_flags(
        chat.add_argument_group("sampling (SamplingConfig fields; /set changes them)"),
        SamplingConfig,
        defaults=CHAT_SAMPLING,
    )
    chat.set_defaults(run=run_chat)


def run_chat(args: argparse.Namespace) -> int:
    from scratchllm.chat.repl import ChatRepl

    settings = SamplingConfig(**{**vars(CHAT_SAMPLING), **given_fields(args, SamplingConfig)})
    if args.remote is not None:
        from scratchllm.chat.remote import RemoteChat, api_key_from

        model = RemoteChat(
            args.remote,
            model=args.model,
            api_key=api_key_from(args.api_key_env),
            timeout=args.timeout,
        )
    else:
        from scratchllm.chat.local import LocalChat

        if args.model is not None:
            options.warn("--model names a server's model; it does nothing without --remote")
        model = LocalChat.from_checkpoint(options.checkpoint_path(args.checkpoint))
    return ChatRepl(model, settings=settings, system=args.system).run()
