"""Regexes evaluated by JavaScript itself (node), as the Dataflow console evaluates them."""

from __future__ import annotations

import json
import shutil
import subprocess

_PROGRAM = r"""
const readline = require('readline');
const cache = new Map();
readline.createInterface({input: process.stdin}).on('line', (line) => {
  const [regex, value] = JSON.parse(line);
  let compiled = cache.get(regex);
  if (!compiled) { compiled = new RegExp(regex); cache.set(regex, compiled); }
  process.stdout.write(compiled.test(value) ? '1\n' : '0\n');
});
"""


class JavaScriptRegexes:
    """One node process answering "does this regex accept this value" (`new RegExp(r).test`,
    no flags), one line each way; JSON carries every string, lone surrogates included."""

    def __init__(self):
        node = shutil.which("node")
        if node is None:
            raise FileNotFoundError("node is not installed")
        self._process = subprocess.Popen(
            [node, "-e", _PROGRAM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def accepts(self, regex: str, value: str) -> bool:
        # ensure_ascii: lone surrogates travel as \ud800 escapes, which JSON.parse restores
        self._process.stdin.write(json.dumps([regex, value], ensure_ascii=True) + "\n")
        self._process.stdin.flush()
        return self._process.stdout.readline() == "1\n"

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=10)
