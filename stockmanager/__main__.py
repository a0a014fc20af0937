from stockmanager.cli import main

raise SystemExit(main())
