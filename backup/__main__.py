import sys

from backup.cli import main

sys.exit(main())
