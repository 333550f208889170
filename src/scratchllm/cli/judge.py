"""Scoring a model's responses: ``judge`` (a judge model, 0-100) and ``score`` (no judge)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from scratchllm.cli import options
from scratchllm.cli.config_flags import add_config_flags, given_fields
from scratchllm.judge import DEFAULT_RESPONSE_KEY, EXAMPLE_ENDPOINT, JudgeConfig

RESPONSES_HELP = (
    "a JSON list of objects with instruction, input, output (the reference) and the model's "
    "response, such as the walkthrough's instruction-data-with-response.json"
)


def add_commands(commands: argparse._SubParsersAction) -> None:
    judge = commands.add_parser(
        "judge",
        help="score responses 0-100 with a judge model (Ollama, vLLM, any OpenAI-compatible API)",
        description="Ask a judge model to score each response from 0 to 100 against the "
        "reference answer, with the walkthrough's grading prompt (chapter 7.8), through any "
        "server with OpenAI's chat-completions API; print the average over the usable scores. "
        "A reply that is not a lone integer from 0 to 100 is counted, listed and kept in the "
        "output, never averaged in. Timeouts, connection errors, 429 and 5xx are retried.",
        epilog="Example (Ollama): ollama serve; ollama pull llama3; scratchllm judge "
        "--responses responses.json --endpoint http://localhost:11434/v1 --model llama3 "
        "-o scores.json. See docs/judging-responses.md.",
    )
    add_responses_options(judge)
    judge.add_argument(
        "--endpoint",
        required=True,
        metavar="URL",
        help=f"the server's base URL, with or without /v1 (Ollama: {EXAMPLE_ENDPOINT}/v1)",
    )
    judge.add_argument(
        "--model", required=True, metavar="NAME", help="the judge model's name there (llama3)"
    )
    options.add_output_option(
        judge,
        what="JSON file for each response's score and the judge's raw reply",
        default_text="none: only the summary is printed",
    )
    judge.add_argument(
        "--no-progress", action="store_true", help="no progress bar (there is none off a terminal)"
    )
    add_config_flags(judge.add_argument_group("the judge (JudgeConfig fields)"), JudgeConfig)
    judge.set_defaults(run=run_judge)

    score = commands.add_parser(
        "score",
        help="score responses against their references without a judge (exact match, ROUGE-L)",
        description="Compare each response with its reference answer: exact match (surrounding "
        "whitespace aside), a normalized match (case, spacing and final punctuation aside) and "
        "ROUGE-L (the F1 of the longest common subsequence of their lowercase words); print "
        "the means. Instant and exactly reproducible, but blind to paraphrase: see `judge`.",
    )
    add_responses_options(score)
    options.add_output_option(
        score,
        what="JSON file for each response's scores",
        default_text="none: only the means are printed",
    )
    score.set_defaults(run=run_score)


def add_responses_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--responses", type=Path, required=True, metavar="FILE", help=RESPONSES_HELP
    )
    parser.add_argument(
        "--response-key",
        default=DEFAULT_RESPONSE_KEY,
        metavar="KEY",
        help=f"the entries' key holding the response to score (default {DEFAULT_RESPONSE_KEY})",
    )


def run_judge(args: argparse.Namespace) -> int:
    from scratchllm.judge import ChatClient, JudgeStopped, judge_responses, read_responses

    config = JudgeConfig(**given_fields(args, JudgeConfig))  # --endpoint and --model too
    entries = read_responses(args.responses, response_key=args.response_key)
    if args.output is not None:
        options.check_output_file(args.output, example="scores.json")
    judge = {name: getattr(config, name)
             for name in ("endpoint", "model", "seed", "temperature", "max_tokens")}  # fmt: skip
    try:
        report = judge_responses(
            entries, ChatClient(config), show_progress=not args.no_progress and sys.stderr.isatty()
        )
    except JudgeStopped as stopped:  # keep what was judged: a rerun need not pay for it again
        if args.output is not None and stopped.report.items:
            write_json(args.output, {"responses": str(args.responses), "judge": judge,
                                     "complete": False, "stopped": str(stopped),
                                     **stopped.report.to_dict()})  # fmt: skip
            options.warn(f"wrote the {len(stopped.report.items)} verdicts reached to "
                         f"{args.output} (marked incomplete)")  # fmt: skip
        raise
    for item in report.items:
        if item.score is None:
            reply = " ".join((item.reply or "").split())
            shown = reply[:80] + ("..." if len(reply) > 80 else "")
            options.warn(f"entry {item.index}: no usable score in the judge's reply {shown!r}")
    if args.output is not None:
        write_json(args.output, {"responses": str(args.responses), "judge": judge,
                                 "complete": True, **report.to_dict()})  # fmt: skip
    print(report.summary())
    if args.output is not None:
        print(f"wrote {args.output}")
    return 0 if report.average is not None else 1


def run_score(args: argparse.Namespace) -> None:
    from scratchllm.finetune.text_scores import score_texts
    from scratchllm.judge import read_responses

    entries = read_responses(args.responses, response_key=args.response_key)
    if args.output is not None:
        options.check_output_file(args.output, example="text-scores.json")
    report = score_texts(
        [entry.response for entry in entries],
        [entry.output for entry in entries],
        indices=[entry.index for entry in entries],
    )
    if args.output is not None:
        write_json(args.output, {"responses": str(args.responses), **report.to_dict()})
    print(report.summary())
    if args.output is not None:
        print(f"wrote {args.output}")


def write_json(path: Path, data: dict[str, Any]) -> None:
    from scratchllm.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
