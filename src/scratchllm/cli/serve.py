"""``serve``: an OpenAI-compatible HTTP server with continuous batching, and the chat page."""

from __future__ import annotations

import argparse
import os

from scratchllm.cli import options
from scratchllm.errors import ScratchLLMError

API_KEY_ENV = "SCRATCHLLM_API_KEY"


def add_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve a model over an OpenAI-compatible HTTP API, with a chat page",
        description="Serve a checkpoint: GET /health, GET /v1/models, POST /v1/completions, "
        "POST /v1/chat/completions (the checkpoint's prompt format; a plain User/Assistant "
        "transcript for a base model), POST /tokenize and /detokenize, GET /metrics "
        "(Prometheus), and the chat page at GET /. Concurrent requests are decoded together "
        "(continuous batching: each sequence in its own slot of a preallocated KV cache, "
        "joining and leaving between steps). Any OpenAI client works: base_url "
        "http://HOST:PORT/v1.",
        epilog="Example: scratchllm serve --checkpoint out/runs/NAME, then open "
        "http://127.0.0.1:8000/ or run scratchllm chat --remote http://127.0.0.1:8000. "
        "Needs the serve extra: pip install 'scratchllm[serve]'.",
    )
    options.add_checkpoint_option(serve)
    serve.add_argument(
        "--host", default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the "
        "network, so set --api-key)",
    )  # fmt: skip
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--model-name",
        help="the model's name in the API (default: the checkpoint's folder name, or the "
        "pretrained name)",
    )
    serve.add_argument(
        "--api-key",
        default=os.environ.get(API_KEY_ENV) or None,
        help=f"require 'Authorization: Bearer KEY' on the API (default: ${API_KEY_ENV}; "
        "unset = no key). /health and the page stay open",
    )
    serve.add_argument(
        "--cors-origins", nargs="+", default=(), metavar="ORIGIN",
        help="allow browser pages from these origins to call the API (default: none)",
    )  # fmt: skip
    serve.add_argument(
        "--max-batch", type=int, default=8,
        help="sequences decoded together: the KV cache's slots (default 8)",
    )  # fmt: skip
    serve.add_argument(
        "--max-queue", type=int, default=64,
        help="sequences that may wait for a slot; beyond, requests get 429 (default 64)",
    )  # fmt: skip
    serve.add_argument(
        "--max-body-bytes", type=int, default=1_000_000,
        help="largest request body accepted (default 1,000,000 bytes; larger get 413)",
    )  # fmt: skip
    serve.add_argument(
        "--no-prepack", action="store_true",
        help="on a CPU, keep PyTorch's own linear layers instead of oneDNN's prepacked copies "
        "(which make batched decode steps ~1.5x faster; generate/prepack.py)",
    )  # fmt: skip
    options.add_device_option(serve)
    serve.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> None:
    if not 0 < args.port < 65536:
        raise ScratchLLMError(f"--port must be a port number from 1 to 65535, got {args.port}")
    for name in ("max_batch", "max_queue", "max_body_bytes"):
        if getattr(args, name) < 1:
            raise ScratchLLMError(f"{options.flags([name])} must be at least 1, got "
                                  f"{getattr(args, name)}")  # fmt: skip
    try:
        import uvicorn

        from scratchllm.serve.app import ServedModel, ServerOptions, create_app
    except ModuleNotFoundError as error:
        raise ScratchLLMError(
            f"serving needs {error.name}: pip install 'scratchllm[serve]' (FastAPI and uvicorn)"
        ) from None
    from scratchllm.finetune.prompts import get_prompt_format
    from scratchllm.runtime import choose_device
    from scratchllm.weights.checkpoint import read_checkpoint

    path = options.checkpoint_path(args.checkpoint)
    checkpoint = read_checkpoint(path, device=choose_device(args.device))
    name = args.model_name or (
        args.checkpoint if args.checkpoint in options.PRETRAINED_NAMES else _folder_name(path)
    )
    prompt_format = (
        get_prompt_format(checkpoint.prompt_format) if checkpoint.prompt_format else None
    )
    served = ServedModel(name, checkpoint.model, checkpoint.tokenizer, prompt_format)
    server_options = ServerOptions(
        max_batch=args.max_batch, max_queue=args.max_queue, api_key=args.api_key,
        cors_origins=tuple(args.cors_origins), max_body_bytes=args.max_body_bytes,
        prepack=not args.no_prepack,
    )  # fmt: skip
    app = create_app(served, server_options)
    url = f"http://{args.host}:{args.port}"
    print(
        f"serving {path} as {name!r} ({served.context_length}-token window, prompt format "
        f"{prompt_format.name if prompt_format else 'none: a plain transcript'}) on {url}/ "
        f"(API: {url}/v1){'; API key required' if args.api_key else ''}",
        flush=True,
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", lifespan="off")
    finally:
        app.state.worker.stop()
    print("stopped", flush=True)


def _folder_name(path) -> str:
    """A checkpoint's name: its run's folder for ``RUN/checkpoints/step-N``, else its own."""
    if path.parent.name == "checkpoints":
        return path.parent.parent.name
    return path.name
