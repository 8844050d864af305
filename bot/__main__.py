"""`python -m bot` is `stagebot`."""

from bot.cli import main

raise SystemExit(main())
