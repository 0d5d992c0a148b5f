"""The word-count templates run end to end on the DirectRunner, as a user runs them."""

import collections
import json
import re
import subprocess
import sys

import pytest

from tests.support.processes import REPO, read_shards, run_template

UNICODE_TEXT = """\
The king's fool and THE King; 'tis a fool's errand.
Naïve café owners in Ελλάδα drink ÇAY; éclairs, Ärger, and a Ñandú!
Apple apple APPLE; dog-days; e'en 東京 and 42 fish_fingers.
"""


def source_text(name, tmp_path):
    if name == "kinglear":
        return REPO / "data" / "kinglear.txt"
    source = tmp_path / "unicode.txt"
    source.write_text(UNICODE_TEXT, encoding="utf-8")
    return source


def beams_own_wordcount(input_path, output_prefix):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "apache_beam.examples.wordcount",
            "--input",
            str(input_path),
            "--output",
            str(output_prefix),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return read_shards(output_prefix)


@pytest.mark.parametrize("text", ["kinglear", "unicode"])
def test_wordcount_matches_beams_example(tmp_path, text):
    source = source_text(text, tmp_path)
    run_template("wordcount", ["--input", str(source), "--output", str(tmp_path / "ours")])
    ours = read_shards(tmp_path / "ours")
    theirs = beams_own_wordcount(source, tmp_path / "beam")
    assert len(ours) == len(set(ours)) > 10
    assert set(ours) == set(theirs)


def expected_wordcount2(text):
    """SPEC's rules, computed without Beam or the pipelines package."""
    words = [w.lower() for w in re.findall(r"[\w']+", text)]
    a_to_f = collections.Counter(w for w in words if "a" <= w[0] <= "f")
    letters = collections.Counter(w[0] for w in words)
    return ({f"{w}: {n}" for w, n in a_to_f.items()}, {f"{c}: {n}" for c, n in letters.items()})


@pytest.mark.parametrize("text", ["kinglear", "unicode"])
def test_wordcount2_matches_an_independent_count(tmp_path, text):
    source = source_text(text, tmp_path)
    run_template(
        "wordcount2",
        [
            "--input",
            str(source),
            "--output",
            str(tmp_path / "words"),
            "--output2",
            str(tmp_path / "letters"),
        ],
    )
    want_words, want_letters = expected_wordcount2(source.read_text(encoding="utf-8"))
    assert set(read_shards(tmp_path / "words")) == want_words
    assert set(read_shards(tmp_path / "letters")) == want_letters
    if text == "unicode":
        # The independent count itself exercises what matters: Unicode, apostrophes, case.
        assert {"café: 1", "e'en: 1", "apple: 3", "dog: 1", "errand: 1"} <= want_words
        assert not any(line.startswith(("'tis", "éclairs", "ñandú")) for line in want_words)
        assert {"é: 1", "ç: 1", "ñ: 1", "': 1", "東: 1"} <= want_letters


@pytest.mark.parametrize(
    "args, parameter",
    [
        ([], "--output"),
        (["--output", "gs://bucket/result/"], "--output"),
        (["--output", "s3://bucket/result/out"], "--output"),
        (["--output", "gs://Bad_Bucket!/out"], "--output"),
        (["--input", "does/not/exist-*.txt", "--output", "OUT"], "--input"),
    ],
)
def test_bad_parameters_fail_fast_with_one_line(tmp_path, args, parameter):
    args = [a.replace("OUT", str(tmp_path / "o")) for a in args]
    completed = run_template("wordcount", args, check=False, timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("wordcount: error: " + parameter)
    assert not list(tmp_path.iterdir())


def test_wordcount2_rejects_a_local_output_on_dataflow(tmp_path):
    completed = run_template(
        "wordcount2",
        [
            "--runner",
            "DataflowRunner",
            "--input",
            "gs://bucket/in.txt",
            "--output",
            str(tmp_path / "a"),
            "--output2",
            "gs://bucket/b",
        ],
        check=False,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "--output: expected gs://" in completed.stderr
    assert "Dataflow workers cannot use a local path" in completed.stderr


def test_wordcount2_refuses_one_output_spelled_two_ways(tmp_path):
    completed = run_template(
        "wordcount2",
        [
            "--input",
            str(REPO / "data" / "kinglear.txt"),
            "--output",
            str(tmp_path / "x" / "m"),
            "--output2",
            str(tmp_path / "x" / "." / "m"),
        ],
        check=False,
        timeout=120,
    )
    assert completed.returncode == 2
    assert len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert "--output2: must differ from --output" in completed.stderr


# ---- text that is not clean ------------------------------------------------------------------

AWKWARD_FILES = {
    # A Latin-1 é in a line that is otherwise fine, between CRLF lines.
    "latin1": b"The caf\xe9 is open\r\nna\xc3\xafve caf\xc3\xa9 owners\r\nDone\r\n",
    "no_final_newline": b"first line\nlast line without newline",
    "empty": b"",
    "crlf": b"one two\r\ntwo three\r\n\r\nthree\r\n",
}


def independent_lines(data: bytes) -> list[str]:
    """The documented rule, without the pipelines package: lines split at \\n, a trailing \\r
    dropped, each line decoded with errors="replace"."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.removesuffix(b"\r").decode("utf-8", errors="replace") for line in lines]


def dead_letters(prefix) -> list[dict]:
    shards = sorted(prefix.parent.glob(prefix.name + "_errors-*-of-*.json"))
    return [json.loads(line) for shard in shards for line in shard.read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(AWKWARD_FILES))
def test_wordcount_counts_awkward_text_and_dead_letters_bad_lines(tmp_path, name):
    source = tmp_path / f"{name}.txt"
    source.write_bytes(AWKWARD_FILES[name])
    run_template("wordcount", ["--input", str(source), "--output", str(tmp_path / "out")])
    words = collections.Counter(
        w for line in independent_lines(AWKWARD_FILES[name]) for w in re.findall(r"[\w']+", line)
    )
    assert sorted(read_shards(tmp_path / "out")) == sorted(f"{w}: {n}" for w, n in words.items())
    if name == "latin1":
        assert {"caf: 1", "café: 1", "The: 1", "naïve: 1"} <= set(read_shards(tmp_path / "out"))
        assert dead_letters(tmp_path / "out") == [
            {
                "Error": f"not UTF-8: byte 0xE9 at offset 7 of the line starting at byte 0 of "
                f"{source}",
                "Row": "The caf\\xe9 is open",
            }
        ]
    else:
        assert not list(tmp_path.glob("out_errors*")), "no dead-letter file when all is well"


@pytest.mark.parametrize("name", ["latin1", "empty"])
def test_wordcount2_counts_awkward_text_and_dead_letters_bad_lines(tmp_path, name):
    source = tmp_path / f"{name}.txt"
    source.write_bytes(AWKWARD_FILES[name])
    run_template(
        "wordcount2",
        [
            "--input",
            str(source),
            "--output",
            str(tmp_path / "words"),
            "--output2",
            str(tmp_path / "letters"),
        ],
    )
    want_words, want_letters = expected_wordcount2(
        "\n".join(independent_lines(AWKWARD_FILES[name]))
    )
    assert set(read_shards(tmp_path / "words")) == want_words
    assert set(read_shards(tmp_path / "letters")) == want_letters
    errors = dead_letters(tmp_path / "words")
    assert [e["Row"] for e in errors] == (["The caf\\xe9 is open"] if name == "latin1" else [])
    if name == "latin1":
        assert {"caf: 1", "café: 1"} <= want_words and "t: 1" in want_letters
        assert errors[0]["Error"].startswith("not UTF-8: byte 0xE9 at offset 7 of the line")


def test_wordcount_on_a_long_single_line_counts_every_word(tmp_path):
    """A 3 MB line is read in pieces; cutting never splits a word, so counts are exact."""
    text = (REPO / "data" / "kinglear.txt").read_bytes()
    one_line = (text * 13).replace(b"\r\n", b" ").replace(b"\n", b" ")[:3_000_000]
    source = tmp_path / "one_line.txt"
    source.write_bytes(one_line)
    run_template("wordcount", ["--input", str(source), "--output", str(tmp_path / "out")])
    words = collections.Counter(re.findall(r"[\w']+", one_line.decode("utf-8", "replace")))
    assert sorted(read_shards(tmp_path / "out")) == sorted(f"{w}: {n}" for w, n in words.items())


# An earlier run's files that this run's shard names do not overwrite, and neighbours that are
# no run's output of this prefix (kept).
STALE = ["out-00001-of-00003", "out-00002-of-00003", "out_errors-00000-of-00001.json"]
# (Beam itself deletes `<prefix>*-of-<its shard count>` before it writes, so none of those.)
NEIGHBOURS = ["out-notes.txt", "outx-00000-of-00002", "out-1-00000-of-00002", "out_errors.json"]


@pytest.mark.parametrize("template", ["wordcount", "wordcount2"])
def test_a_run_leaves_no_file_of_an_earlier_run_of_its_prefix(tmp_path, template):
    """Issue 18: a clean run into a prefix that holds an earlier run's output keeps none of
    it: not its extra shards, not its dead letters (which would claim bad lines this run never
    saw)."""
    source = tmp_path / "clean.txt"
    source.write_text("to be or not to be\n")
    stale = STALE + (["letters-00005-of-00009"] if template == "wordcount2" else [])
    for name in stale + NEIGHBOURS:
        (tmp_path / name).write_text("an earlier run: the quick brown fox\n")
    outputs = ["--output", str(tmp_path / "out")]
    if template == "wordcount2":
        outputs += ["--output2", str(tmp_path / "letters")]
    run_template(template, ["--input", str(source), *outputs])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not set(stale) & set(left)
    assert set(NEIGHBOURS) <= set(left)
    assert not dead_letters(tmp_path / "out")
    own = sorted(n for n in left if re.fullmatch(r"out-[0-9]+-of-[0-9]+", n))
    assert own == ["out-00000-of-00001"]
    assert "quick" not in (tmp_path / own[0]).read_text()


def test_a_run_with_dead_letters_replaces_the_earlier_runs(tmp_path):
    source = tmp_path / "latin1.txt"
    source.write_bytes(AWKWARD_FILES["latin1"])
    (tmp_path / "out_errors-00003-of-00004.json").write_text('{"Error": "old", "Row": "old"}\n')
    run_template("wordcount", ["--input", str(source), "--output", str(tmp_path / "out")])
    assert [d["Row"] for d in dead_letters(tmp_path / "out")] == ["The caf\\xe9 is open"]
