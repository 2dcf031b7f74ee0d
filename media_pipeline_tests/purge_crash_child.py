"""Run a purge in this process and SIGKILL it at its K-th step (the crash test's child).

Usage: python -m media_pipeline_tests.purge_crash_child '{"settings": {...}, "kill_at": K, ...}'
"""

from __future__ import annotations

import json
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from media_pipeline.lifecycle import purge
from media_pipeline.settings import Settings
from media_pipeline.storage import make_client


def main(argv: list[str]) -> None:
    args = json.loads(argv[1])
    fields = dict(args["settings"])
    fields["home"] = Path(fields["home"])
    settings = Settings(**fields)
    steps: list[str] = []

    def on_step(step: str, info: dict[str, Any]) -> None:
        steps.append(step)
        if len(steps) - 1 == args["kill_at"]:
            os.kill(os.getpid(), signal.SIGKILL)

    purge(settings, make_client(settings), enabled_sources=args["sources"],
          now=datetime.fromisoformat(args["now"]), batch_size=args["batch_size"],
          on_step=on_step)
    print(json.dumps(steps))


if __name__ == "__main__":
    main(sys.argv)
