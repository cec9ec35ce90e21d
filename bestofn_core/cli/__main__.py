"""``python -m bestofn_core.cli``: the ``bestofn`` command."""

from bestofn_core.cli import main

raise SystemExit(main())
