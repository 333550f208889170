"""Chatting with a model in the terminal: ``scratchllm chat``.

- ``session.py``: the chat's settings (``/set``) and its JSON file (``/save``, ``/load``);
- ``repl.py``: the read-answer loop: input (multi-line, piped), commands, streamed replies,
  Ctrl-C, the stats line, a full window;
- ``local.py``: answers from a checkpoint, through the project's one decoder
  (``generate.generate_text``) and the checkpoint's prompt format
  (``finetune.prompts.render_chat``);
- ``remote.py``: answers from a running OpenAI-compatible server, streamed as server-sent
  events, with the standard library only.

Nothing here imports torch at import time; ``local.py`` does, and is loaded only for a local
model. See docs/chat.md.
"""
