"""``python -m otpsim`` is the ``otpsim`` command."""

from otpsim.cli import main

raise SystemExit(main())
