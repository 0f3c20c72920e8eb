"""Reading supervised records: formats, field names, and errors that name the file and line."""

import json

import pytest

from lightning_rectlaw.hf.formats import RecordError, read_records


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("row", "prompt", "response"),
    [
        ({"prompt": "Q: 2+2?\nA:", "completion": " 4"}, "Q: 2+2?\nA:", " 4"),
        ({"instruction": "Add.", "input": "2+2", "output": "4"}, "Add.\n\n2+2\n\n", "4"),
        ({"instruction": "Say hi.", "output": "hi"}, "Say hi.\n\n", "hi"),
    ],
)
def test_pair_formats_are_detected_from_the_fields(tmp_path, row, prompt, response):
    (record,) = read_records([_jsonl(tmp_path / "d.jsonl", [row])])
    assert (record.prompt, record.response, record.is_chat) == (prompt, response, False)


def test_chats_and_mapped_fields(tmp_path):
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    (record,) = read_records([_jsonl(tmp_path / "c.jsonl", [chat])])
    assert record.messages == (("user", "hi"), ("assistant", "hello"))
    assert record.response_texts() == ["hello"]
    mapped = read_records(
        [_jsonl(tmp_path / "m.jsonl", [{"question": "why?", "answer": "because"}] * 2)],
        fields={"prompt": "question", "completion": "answer"},
    )
    assert [(r.prompt, r.response) for r in mapped] == [("why?", "because")] * 2  # duplicates kept


def test_csv_and_json_files_name_the_line_of_a_bad_record(tmp_path):
    (tmp_path / "d.csv").write_text('prompt,completion\na,b\n"multi\nline",c\nd,\n')
    with pytest.raises(RecordError, match=r"^d.csv, line 5: no 'completion'"):
        read_records([tmp_path / "d.csv"])
    (tmp_path / "d.json").write_text('[\n  {"prompt": "a", "completion": "b"},\n\n  {"prompt": "c"}\n]\n')
    with pytest.raises(RecordError, match=r"^d.json, line 4: no 'completion'"):
        read_records([tmp_path / "d.json"])


@pytest.mark.parametrize(
    ("content", "name", "match"),
    [
        (
            '{"prompt": "a", "completion": "b"}\n{"prompt": "c"}\n',
            "t.jsonl",
            r"^t.jsonl, line 2: no 'completion'",
        ),
        ('{"prompt": "a", "completion": "b"}\n{oops\n', "t.jsonl", r"^t.jsonl, line 2: not JSON"),
        (
            '{"question": "a", "answer": "b"}\n',
            "t.jsonl",
            r"^t.jsonl, line 1: cannot tell the format.*fields=",
        ),
        ("", "t.jsonl", r"t.jsonl: no records; give a file with at least one example"),
        ("a,b\n", "t.txt", r"unknown file type '.txt'; give .jsonl, .json or .csv"),
        ('{"messages": [{"role": "user", "content": "hi"}]}\n', "t.jsonl", r"line 1: no assistant turn"),
        ('{"prompt": "a", "completion": 3}\n', "t.jsonl", r"line 1: 'completion' should be text, got int"),
    ],
)
def test_bad_records_fail_with_one_line_naming_file_line_and_fix(tmp_path, content, name, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(RecordError, match=match) as err:
        read_records([tmp_path / name])
    assert "\n" not in str(err.value)


def test_unknown_format_and_field_names_are_refused():
    with pytest.raises(ValueError, match=r"`format` should be one of .*'messages'\), got 'sharegpt'"):
        read_records([], format="sharegpt")
    with pytest.raises(ValueError, match=r"`fields` maps unknown field\(s\) \['question'\]"):
        read_records([], fields={"question": "q"})
