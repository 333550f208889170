"""Outputs are checked before the work, and OS errors are one `error:` line, never a traceback."""

from __future__ import annotations

import errno
import os

import pytest

import scratchllm.io
from scratchllm.cli import main
from scratchllm.tokenizer import load_tokenizer


def one_error_line(capsys) -> str:
    """The one `error:` line on stderr (after any progress bars), which is its last."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.endswith(errors[0] + "\n")
    return errors[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "taken.txt"
    path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["train-tokenizer", "--corpus", "CORPUS", "-o"],
        ["prepare", "--corpus", "CORPUS", "-o"],
        ["word2vec", "train", "--corpus", "CORPUS", "-o"],
        ["model", "--preset", "cpu-tiny", "--tokenizer", "/no/such/tokenizer", "--save"],
    ],
)
def test_a_file_as_output_folder_is_refused_before_the_work(command, a_file, capsys):
    # the corpus does not exist: an error about the output shows it was checked first
    argv = [
        str(a_file.parent / "no-such-corpus.txt") if arg == "CORPUS" else arg for arg in command
    ]
    assert main([*argv, str(a_file)]) == 2
    err = one_error_line(capsys)
    assert f"{a_file} is a file" in err
    assert a_file.read_text() == "not a folder\n"


def test_a_folder_of_other_files_is_refused(tmp_path, corpus_file, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8")
    assert main(["train-tokenizer", "--corpus", str(corpus_file), "-o", str(folder)]) == 2
    assert "not a tokenizer (no tokenizer.json)" in one_error_line(capsys)
    assert sorted(path.name for path in folder.iterdir()) == ["cat.jpg"]


def test_a_tokenizer_folder_is_replaced(tmp_path, corpus_file, capsys):
    folder = tmp_path / "tok"
    train = ["train-tokenizer", "--corpus", str(corpus_file), "-o", str(folder)]
    assert main([*train, "--vocab-size", "280"]) == 0
    assert main([*train, "--vocab-size", "300"]) == 0
    assert load_tokenizer(folder).vocab_size == 300


def test_an_output_below_a_file_is_refused(a_file, capsys):
    output = a_file / "sub" / "map.png"
    assert main(["embed-plot", "--vectors", str(a_file), "-o", str(output)]) == 2
    assert f"cannot create {output}: {a_file} is a file" in one_error_line(capsys)


def test_a_folder_as_output_file_is_refused(tmp_path, capsys):
    assert main(["embed-plot", "--vectors", "/no/such/vectors", "-o", str(tmp_path)]) == 2
    assert f"{tmp_path} is a folder; give a file name such as" in one_error_line(capsys)


def test_reading_a_folder_as_a_file_is_one_line(tmp_path, capsys):
    assert main(["tokenize", "--file", str(tmp_path)]) == 2
    assert f"cannot read {tmp_path}" in one_error_line(capsys)
    assert main(["train", "--config", str(tmp_path)]) == 2
    assert str(tmp_path) in one_error_line(capsys)


def test_a_full_disk_is_one_line_and_leaves_no_half_written_folder(
    tmp_path, corpus_file, monkeypatch, capsys
):
    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(scratchllm.io.os, "fsync", no_space)
    output = tmp_path / "new" / "tok"
    args = ["train-tokenizer", "--corpus", str(corpus_file), "--vocab-size", "280"]
    assert main([*args, "-o", str(output)]) == 2
    err = one_error_line(capsys)
    assert f"could not write {output}" in err and "No space left on device" in err
    assert not (tmp_path / "new").exists()  # the folders it created are gone again


def test_a_disk_filling_up_midway_leaves_an_empty_folder_empty(
    tmp_path, corpus_file, monkeypatch, capsys
):
    writes = []

    def space_for_one_file(fd):  # the tokenizer copy fits, train.bin does not
        writes.append(fd)
        if len(writes) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(scratchllm.io.os, "fsync", space_for_one_file)
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["prepare", "--corpus", str(corpus_file), "--tokenizer", "bpe:280", "-o", str(empty)]
    assert main(args) == 2
    assert "No space left on device" in one_error_line(capsys)
    assert len(writes) == 2
    assert empty.is_dir() and list(empty.iterdir()) == []  # as empty as it was


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into read-only folders")
def test_an_unwritable_folder_is_refused(tmp_path, corpus_file, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        args = ["train-tokenizer", "--corpus", str(corpus_file), "-o", str(locked / "tok")]
        assert main(args) == 2
        assert f"{locked} is not writable" in one_error_line(capsys)
    finally:
        locked.chmod(0o700)
