"""Labelled files: CSV, TSV and JSONL readers, the SMS Spam Collection, and their errors.

Oracles: the data's published counts (5,574 messages, 4,827 ham, 747 spam), the walkthrough's
printed 5,572 rows / 4,825 ham (what a CSV reader with quoting makes of the same file), and
hand-made files with known contents.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchllm.errors import ConfigError, LabelledDataError
from scratchllm.finetune.labelled import (
    LabelledExample,
    label_order,
    load_labelled,
    parse_labelled,
    read_labelled,
    read_sms_spam,
)


@pytest.fixture
def sms_path(shared_data: Path) -> Path:
    return shared_data / "SMSSpamCollection"


# --- the SMS Spam Collection -------------------------------------------------------------------


def test_sms_spam_has_every_message_of_the_file(sms_path: Path) -> None:
    data = read_sms_spam(sms_path)
    assert (data.name, data.path) == ("sms-spam", sms_path)
    assert len(data) == 5_574 == sms_path.read_bytes().count(b"\n")
    assert data.class_counts() == {"ham": 4_827, "spam": 747}
    assert data.labels == ("ham", "spam")  # ham = 0, spam = 1, as the walkthrough maps them
    first = data.examples[0]
    assert first == LabelledExample(
        "Go until jurong point, crazy.. Available only in bugis n great world la e buffet... "
        "Cine there got amore wat...",
        "ham",
        1,
    )
    # the message that opens a quote it never closes is one message, quote and all
    unclosed = data.examples[5_081]
    assert unclosed.line == 5_082 and unclosed.text.startswith('"Keep ur problems')
    assert unclosed.text.endswith("SD..") and "\n" not in unclosed.text
    assert data.examples[5_082].text == "Yeah, give me a call if you've got a minute"
    assert data.examples[-1] == LabelledExample("Rofl. Its true to its name", "ham", 5_574)


def test_a_csv_reader_with_quoting_finds_the_walkthroughs_5572_rows(sms_path: Path) -> None:
    # What pandas.read_csv(sep="\t") shows in the walkthrough, with Python's own CSV reader:
    # line 5,082's unclosed quote swallows the next two lines.
    with sms_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert len(rows) == 5_572
    assert Counter(label for label, _ in rows) == {"ham": 4_825, "spam": 747}
    merged = rows[5_081][1]
    assert "\nham\tYeah, give me a call" in merged
    # ours keeps those three messages apart
    ours = read_sms_spam(sms_path).examples
    assert [example.line for example in ours[5_081:5_084]] == [5_082, 5_083, 5_084]


def test_load_labelled_sms_spam_reads_the_cached_copy(
    sms_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRATCHLLM_CACHE_DIR", str(tmp_path))
    shutil.copy(sms_path, tmp_path / "SMSSpamCollection")  # verified by its sha256, not fetched
    data = load_labelled("sms-spam")
    assert (data.name, data.path, len(data)) == ("sms-spam", tmp_path / "SMSSpamCollection", 5_574)
    # a path of the same name is a file, not the dataset
    with pytest.raises(LabelledDataError, match="no file at"):
        load_labelled(Path("sms-spam"))


# --- CSV, TSV, JSONL ---------------------------------------------------------------------------


def test_csv_quoting_commas_newlines_and_doubled_quotes(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(
        'id,text,label\n1,"Hi, you",ham\n\n2,"two\r\nlines","spam "\n3,"say ""hi""",ham\n',
        encoding="utf-8",
        newline="",
    )
    data = read_labelled(path)
    assert [(e.text, e.label, e.line) for e in data.examples] == [
        ("Hi, you", "ham", 2),
        ("two\r\nlines", "spam", 4),  # the label's spaces go, the text is kept as it is
        ('say "hi"', "ham", 6),  # the record after a two-line one starts on line 6
    ]
    assert (data.name, data.class_counts()) == (str(path), {"ham": 2, "spam": 1})


def test_tsv_has_no_quoting_and_crlf_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.tsv"
    path.write_bytes(b'\xef\xbb\xbflabel\ttext\r\nham\t"quoted" and not\r\n\r\nspam\tWIN\r\n')
    data = read_labelled(path)  # the byte-order mark is dropped, the \r too
    assert [(e.text, e.label, e.line) for e in data.examples] == [
        ('"quoted" and not', "ham", 2),
        ("WIN", "spam", 4),
    ]


def test_jsonl_with_named_keys_and_integer_labels(tmp_path: Path) -> None:
    path = tmp_path / "reviews.jsonl"
    lines = [{"review": "great", "stars": 10}, {"review": "meh", "stars": 2}, {"review": "ok"}]
    lines[2]["stars"] = 2
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    data = read_labelled(path, text_column="review", label_column="stars")
    assert [(e.text, e.label, e.line) for e in data.examples] == [
        ("great", "10", 1),
        ("meh", "2", 2),
        ("ok", "2", 3),
    ]
    assert data.labels == ("2", "10")  # integers in numeric order


def test_format_argument_and_headerless_columns(tmp_path: Path, sms_path: Path) -> None:
    path = tmp_path / "messages.txt"
    path.write_text("text,label\nhello,a\nbye,b\n", encoding="utf-8")
    with pytest.raises(LabelledDataError, match=r"suffix '\.txt'.*\.csv, \.tsv"):
        read_labelled(path)
    assert len(read_labelled(path, format="csv")) == 2
    with pytest.raises(ConfigError, match="format must be one of"):
        read_labelled(path, format="xml")  # type: ignore[arg-type]
    # the SMS file read as a headerless TSV is the named reader's result
    generic = read_labelled(sms_path, format="tsv", columns=("label", "text"))
    assert generic.examples == read_sms_spam(sms_path).examples


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.text(min_size=1).filter(lambda text: text.strip() and "\x00" not in text),
            st.sampled_from(["ham", "spam", "eggs"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_csv_and_jsonl_round_trip_any_text(rows: list[tuple[str, str]]) -> None:
    # Any text survives Python's CSV writer and json.dumps, and comes back as it was.
    import io

    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    from_csv = parse_labelled(buffer.getvalue(), "csv")
    jsonl = "\n".join(json.dumps({"text": t, "label": label}) for t, label in rows)
    from_jsonl = parse_labelled(jsonl, "jsonl")
    assert [(e.text, e.label) for e in from_csv] == rows
    assert [(e.text, e.label) for e in from_jsonl] == rows


def test_label_order_is_sorted_and_numeric_for_integers() -> None:
    assert label_order(["spam", "ham", "spam"]) == ("ham", "spam")
    assert label_order(["b", "B", "a"]) == ("B", "a", "b")
    assert label_order(["10", "9", "-1", "09"]) == ("-1", "09", "9", "10")
    assert label_order(["10", "9", "x"]) == ("10", "9", "x")  # not all integers: as text
    assert label_order([]) == ()


# --- errors: one clear message naming the file and line ----------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.csv", "message,label\nhi,ham\n", r"a\.csv line 1 \(the header\) has no column 'text'"),
        ("a.csv", "text,text,label\nhi,hi,ham\n", "has more than one column 'text'"),
        ("a.csv", "text,label\nhi,ham\n ,spam\n", r"a\.csv line 3 has an empty text"),
        ("a.csv", "text,label\nhi,\n", r"a\.csv line 2 has an empty label"),
        ("a.csv", 'text,label\n"open quote,ham\nnext,spam\n', r"a\.csv line 2: not valid CSV"),
        ("a.csv", 'text,label\n"closed" then more,ham\n', r"a\.csv line 2: not valid CSV"),
        ("a.csv", "text,label\nhi, there,ham\n", r"line 2 has 3 field\(s\) where the header has 2"),
        ("a.tsv", "text\tlabel\nhi\tthere\tham\n", r"a\.tsv line 2 has 3 field\(s\).*cannot"),
        ("a.tsv", "text\tlabel\nonly text\n", r"a\.tsv line 2 has 1 field"),
        ("a.jsonl", '{"text": "hi", "label": "a"}\n{"text": "x",\n', r"line 2 is not valid JSON"),
        ("a.jsonl", '["hi", "a"]\n', r"a\.jsonl line 1 holds a JSON list, not an object"),
        ("a.jsonl", '{"text": "hi"}\n', r"line 1 has no key 'label' \(its keys: 'text'\)"),
        ("a.jsonl", '{"text": 5, "label": "a"}\n', "the text must be a string, got 5"),
        ("a.jsonl", '{"text": "hi", "label": true}\n', "label must be a string or an integer"),
        ("a.jsonl", '{"text": "hi", "label": null}\n', "label must be a string or an integer"),
        ("a.csv", "text,label\n", r"a\.csv holds no examples"),
        ("a.jsonl", "", r"a\.jsonl holds no examples"),
    ],
)
def test_malformed_files_name_the_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(LabelledDataError, match=message):
        read_labelled(path)


def test_invalid_utf8_names_the_line_and_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\nhi,ham\ncafé,ham\n".encode("latin-1"))  # é: 0xe9 at byte 21
    with pytest.raises(LabelledDataError) as raised:
        read_labelled(path)
    message = str(raised.value)
    assert "latin1.csv is not valid UTF-8" in message
    assert "byte 0xe9 on line 3 (byte offset 21)" in message


def test_missing_file_and_same_column_twice(tmp_path: Path) -> None:
    with pytest.raises(LabelledDataError, match="no file at .*nowhere.csv.*sms-spam"):
        load_labelled(tmp_path / "nowhere.csv")
    with pytest.raises(ConfigError, match="must differ"):
        parse_labelled("a\n", "csv", text_column="a", label_column="a")
    with pytest.raises(ConfigError, match="without a header"):
        parse_labelled("{}\n", "jsonl", columns=("text", "label"))
