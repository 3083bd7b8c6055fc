"""A service process for crash tests: ``python -m tests.ingest.runner [--crash-before-commit]``.

With ``--crash-before-commit`` the process SIGKILLs itself right after its first batch
is stored and before that batch's offsets are committed: the worst moment to die.
Settings come from the LIVESALES_* environment like the real service.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from ground.settings import Settings
from ingest.write_stage import WriteStage
from livesales.runtime import Runtime


async def main(crash: bool) -> None:
    if crash:
        async def die(self: WriteStage, batch: Any) -> None:
            stored = sum(len(r) for r in batch.rows.values())
            if stored:
                print(f"stored {stored} rows; dying before commit", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

        WriteStage._commit = die  # type: ignore[method-assign]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    runtime = Runtime(Settings())
    await runtime.start(api=False)
    print("ready", flush=True)
    await stop.wait()
    await runtime.stop()


if __name__ == "__main__":
    asyncio.run(main("--crash-before-commit" in sys.argv))
