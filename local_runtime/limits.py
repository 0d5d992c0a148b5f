"""How a local run pulls and acknowledges Pub/Sub messages: sizes and timeouts, in one place.

No Beam and no Pub/Sub client at import: any local puller (tools/replay_dead_letters.py,
say) can take the same limits. The channel limit every client has is
pipelines/io/pubsub_clients.py.
"""

from __future__ import annotations

# A bundle is a pull: the DirectRunner's fixed cost per bundle (each of the job's steps set up,
# run and torn down, empty bundles included) is paid per this many messages. 1,000 drained a
# backlog 1.03-1.23x faster than 500 (bench/mnist_stream_bench.py, 12,000 messages, 3
# rounds); 2,000 (two batches of mnist/transforms.MAX_BATCH_MESSAGES) 1.13-2.48x faster than
# 1,000 (20,000 messages, 3 rounds: 0.105 against 0.119 ms of the job's CPU a message). Only a
# backlog fills a bundle: at a low rate a pull that brings less than FULL_PAGE ends it.
PULL_MAX_MESSAGES = 2000
# A pull asks for no more than this many bytes, by the size of the last pull's largest message.
PULL_TARGET_BYTES = 16 * 2**20
FULL_PAGE = 100  # a pull that brings this many (the emulator's most) is followed by another
# A pull ahead of the runner waits at most this for messages, then asks again: a stop waits for
# it to end (run.PULL_WAIT_SECONDS) before handing back what is held, or the server would
# hand those messages straight to it, leased to a process about to exit.
PREFETCH_PULL_SECONDS = 2

# Pulled messages held unanswered at most: pulls pause above either. A backlog holds up to
# four bundles: one being published, one queued to be, one the runner works on, and the one
# pulled ahead (subscriber.py, publish.py).
MAX_HELD = 4 * PULL_MAX_MESSAGES
MAX_HELD_BYTES = 256 * 2**20  # camera frames are megabytes each
LEASE_SECONDS = 60
ACK_CHUNK = 500  # ack ids per acknowledge / modify request, well under its size limit
CALL_TIMEOUT_SECONDS = 30
