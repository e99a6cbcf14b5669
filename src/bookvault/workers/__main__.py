"""`python -m bookvault.workers`: one worker process (see bookvault.workers.worker).

SIGTERM or SIGINT finishes the batch in hand, then exits 0.
"""

from __future__ import annotations

import asyncio
import signal

from bookvault.config import load_settings
from bookvault.logs import configure_logging
from bookvault.workers.worker import run


async def _main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, service="workers")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run(settings, stop)


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
