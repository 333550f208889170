"""The exceptions scratchllm raises for user mistakes.

Every error a user can cause (a wrong path, a corrupt file, an unknown word, a corpus that is
too short) is a ``ScratchLLMError`` whose message names the offending value and says what to
do. The CLI prints that message on one line and exits non-zero; it never shows a traceback for
these. Internal invariants use ``assert`` instead.
"""


class ScratchLLMError(Exception):
    """Base class of all user-facing errors: the message is shown to the user as is."""


class CorpusError(ScratchLLMError):
    """A corpus cannot be found, read or decoded."""


class DownloadError(CorpusError):
    """A download failed, was cut off, or did not match its checksum."""


class TokenizerError(ScratchLLMError):
    """A tokenizer cannot be built, loaded or applied."""


class UnknownTokenError(TokenizerError):
    """A strict word-level tokenizer met a word that is not in its vocabulary."""


class DisallowedSpecialTokenError(TokenizerError):
    """The text contains a special token that the caller did not allow."""


class LabelledDataError(ScratchLLMError):
    """A labelled file (texts and their classes) is malformed, or its splits do not fit
    together; the message names the file and line."""


class InstructionDataError(ScratchLLMError):
    """An instruction file (JSON or JSONL entries with ``instruction``, ``input`` and
    ``output``) is missing or malformed, or too small to split; the message names the file and
    the entry."""


class DataFormatError(ScratchLLMError):
    """A token file is corrupt, truncated, or was made with another tokenizer."""


class DataLengthError(ScratchLLMError):
    """A token sequence is too short for the requested window."""


class ConfigError(ScratchLLMError, ValueError):
    """An option is out of range (a negative window length, a split fraction of 1, ...).

    It is also a ``ValueError``, so library callers can catch it as the usual Python error.
    """


class CheckpointError(ScratchLLMError):
    """A checkpoint is missing, corrupt, or does not match its config or tokenizer."""


class TrainingError(ScratchLLMError):
    """Training cannot go on: the loss diverged, or a run cannot be resumed as asked."""


class UnknownWordError(ScratchLLMError):
    """A word is not in a set of word vectors (the message suggests close matches)."""


class VectorsFormatError(ScratchLLMError):
    """A word-vectors folder or file is missing, corrupt, or in a format we do not read."""
