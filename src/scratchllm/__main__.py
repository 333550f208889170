"""``python -m scratchllm`` runs the command-line interface."""

from scratchllm.cli import main

raise SystemExit(main())
