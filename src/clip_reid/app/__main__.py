"""``python -m clip_reid.app``: the search page."""

from clip_reid.app.cli import main

raise SystemExit(main())
