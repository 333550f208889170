"""Serving a model: an OpenAI-compatible HTTP API over the continuous-batching engine
(``app.py``, ``protocol.py``, ``worker.py``), and the chat page (``static/index.html``)."""
