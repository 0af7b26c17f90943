"""python -m vasset_client: the vasset-cli command."""

from vasset_client.cli import main

raise SystemExit(main())
