"""`scratchllm model` and `scratchllm attention`."""

from __future__ import annotations

import struct

from scratchllm.cli import main
from scratchllm.weights.checkpoint import load_checkpoint


def test_model_prints_the_published_parameter_counts(capsys):
    assert main(["model", "--preset", "gpt2-small"]) == 0
    out = capsys.readouterr().out
    assert "163,009,536" in out and "124,412,160" in out
    assert "bf16" in out and "fp32" in out


def test_attention_writes_a_heatmap(untrained_checkpoint, tmp_path, capsys):
    output = tmp_path / "heat.png"
    args = ["attention", "--checkpoint", str(untrained_checkpoint), "--prompt", "The cat sat"]
    assert main([*args, "--layer", "1", "--head", "3", "-o", str(output)]) == 0
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*args, "--layer", "2", "-o", str(output)]) == 2
    assert "layer 2 is out of range" in capsys.readouterr().err


def test_model_save_prints_the_figures_of_the_model_it_saves(tmp_path, corpus_file, capsys):
    tokenizer = tmp_path / "tok"
    train = ["train-tokenizer", "--corpus", str(corpus_file), "--vocab-size", "300"]
    assert main([*train, "-o", str(tokenizer)]) == 0
    capsys.readouterr()
    checkpoint = tmp_path / "ckpt"
    save = [
        "model",
        "--preset",
        "cpu-tiny",
        "--save",
        str(checkpoint),
        "--tokenizer",
        str(tokenizer),
    ]
    assert main(save) == 0
    out = capsys.readouterr().out
    model, _ = load_checkpoint(checkpoint)
    untied = sum(parameter.numel() for parameter in model.parameters())
    assert out.startswith("cpu-tiny: 2 layers") and "vocabulary 300," in out
    assert f"parameters: {untied:,} with its own output head" in out
    assert "50257" not in out  # not the default vocabulary's figures


def test_attention_on_a_long_prompt_is_a_bounded_image_of_the_format_asked(
    untrained_checkpoint, tmp_path, capsys
):
    tokenizer = load_checkpoint(untrained_checkpoint)[1]
    prompt = ""
    while len(tokenizer.encode(prompt)) < 110:  # cpu-tiny's window is 128
        prompt += "The cat sat on the mat. The dog sat on the log. "
    args = ["attention", "--checkpoint", str(untrained_checkpoint), "--prompt", prompt]
    png = tmp_path / "long.png"
    assert main([*args, "-o", str(png)]) == 0
    data = png.read_bytes()
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert 1000 <= width <= 1600 and 1000 <= height <= 1500
    jpeg = tmp_path / "long.jpg"
    assert main([*args, "-o", str(jpeg)]) == 0
    assert jpeg.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG, as the suffix says
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "long.gif")]) == 2
    assert "'.gif' is not an image type we write" in capsys.readouterr().err
