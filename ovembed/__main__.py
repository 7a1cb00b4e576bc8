from __future__ import annotations

from ovembed.cli import main

raise SystemExit(main())
