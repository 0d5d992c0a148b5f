"""What the stream jobs' tests check of a dead letter whose original a replay run marked: the
mark travels into the new dead letter, so that run keeps it back and a later run rebuilds the
original with its own mark (tools/replay_dead_letters.py)."""

from __future__ import annotations

from tools.replay_dead_letters import FAILED_AGAIN, Original, to_replay

REPLAY_RUN = "2026-12-07T01:00:00Z 0a1b2c3d"


def marked(attributes: dict) -> dict:
    return {**attributes, "replayed": REPLAY_RUN}


def crowded() -> dict:
    """Marked attributes that leave no room for the dead letter's own: the JSON envelope."""
    return marked({f"a{i:02d}": "v" for i in range(97)})


def replay_view(inputs: dict):
    """outcome -> (its input's id, its stage, FAILED_AGAIN if this run keeps it back, whether a
    later run rebuilds the input exactly with its own mark)."""

    def view(outcome):
        source = inputs[outcome.source_id]
        again = Original(source.data, {**source.attributes, "replayed": "later"})
        return (
            outcome.source_id,
            outcome.message.attributes["error_stage"],
            to_replay(outcome.message, REPLAY_RUN).kind,
            to_replay(outcome.message, "later") == again,
        )

    return view


__all__ = ["FAILED_AGAIN", "REPLAY_RUN", "crowded", "marked", "replay_view"]
