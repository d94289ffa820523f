from sentimon.cli import main

raise SystemExit(main())
