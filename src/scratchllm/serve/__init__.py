"""`scratchllm serve`: an OpenAI-compatible HTTP server for a checkpoint, and its chat page."""
