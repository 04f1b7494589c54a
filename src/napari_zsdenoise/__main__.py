from napari_zsdenoise.cli import main

raise SystemExit(main())
