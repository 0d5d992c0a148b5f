"""The word-count templates run end to end on the DirectRunner, as a user runs them."""

import collections
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
    subprocess.run([sys.executable, "-m", "apache_beam.examples.wordcount",
                    "--input", str(input_path), "--output", str(output_prefix)],
                   check=True, capture_output=True, timeout=600)
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
    return ({f"{w}: {n}" for w, n in a_to_f.items()},
            {f"{c}: {n}" for c, n in letters.items()})


@pytest.mark.parametrize("text", ["kinglear", "unicode"])
def test_wordcount2_matches_an_independent_count(tmp_path, text):
    source = source_text(text, tmp_path)
    run_template("wordcount2", ["--input", str(source), "--output", str(tmp_path / "words"),
                                "--output2", str(tmp_path / "letters")])
    want_words, want_letters = expected_wordcount2(source.read_text(encoding="utf-8"))
    assert set(read_shards(tmp_path / "words")) == want_words
    assert set(read_shards(tmp_path / "letters")) == want_letters
    if text == "unicode":
        # The independent count itself exercises what matters: Unicode, apostrophes, case.
        assert {"café: 1", "e'en: 1", "apple: 3", "dog: 1", "errand: 1"} <= want_words
        assert not any(line.startswith(("'tis", "éclairs", "ñandú")) for line in want_words)
        assert {"é: 1", "ç: 1", "ñ: 1", "': 1", "東: 1"} <= want_letters


@pytest.mark.parametrize("args, parameter", [
    ([], "--output"),
    (["--output", "gs://bucket/result/"], "--output"),
    (["--output", "s3://bucket/result/out"], "--output"),
    (["--output", "gs://Bad_Bucket!/out"], "--output"),
    (["--input", "does/not/exist-*.txt", "--output", "OUT"], "--input"),
])
def test_bad_parameters_fail_fast_with_one_line(tmp_path, args, parameter):
    args = [a.replace("OUT", str(tmp_path / "o")) for a in args]
    completed = run_template("wordcount", args, check=False, timeout=120)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("wordcount: error: " + parameter)
    assert not list(tmp_path.iterdir())


def test_wordcount2_rejects_a_local_output_on_dataflow(tmp_path):
    completed = run_template("wordcount2", [
        "--runner", "DataflowRunner", "--input", str(REPO / "data" / "kinglear.txt"),
        "--output", str(tmp_path / "a"), "--output2", "gs://bucket/b"], check=False, timeout=120)
    assert completed.returncode == 2
    assert "--output: expected a gs:// path" in completed.stderr
