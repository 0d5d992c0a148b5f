"""How a local run pulls and acknowledges Pub/Sub messages: sizes and timeouts, in one place.

No Beam and no Pub/Sub client at import: any local puller (tools/replay_dead_letters.py,
say) can take the same limits. The channel limit every client has is
pipelines/io/pubsub_clients.py.
"""

from __future__ import annotations

# A bundle is a pull: the DirectRunner's fixed cost per bundle (each of the job's steps set up,
# run and torn down, empty bundles included: about 25 ms of CPU) is paid per this many
# messages. 1,000 (the most a batch takes, mnist/transforms.MAX_BATCH_MESSAGES) drained a
# backlog 1.03-1.23x faster than 500 (bench/mnist_stream_bench.py, 12,000 messages, 3 rounds).
PULL_MAX_MESSAGES = 1000
# A pull asks for no more than this many bytes, by the size of the last pull's largest message.
PULL_TARGET_BYTES = 16 * 2**20
FULL_PAGE = 100  # a pull that brings this many (the emulator's most) is followed by another

# Pulled messages held unanswered at most: pulls pause above either.
MAX_HELD = 2000
MAX_HELD_BYTES = 256 * 2**20  # camera frames are megabytes each
LEASE_SECONDS = 60
ACK_CHUNK = 500  # ack ids per acknowledge / modify request, well under its size limit
CALL_TIMEOUT_SECONDS = 30
