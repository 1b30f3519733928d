"""Generate a new Alembic revision from the difference between the models and the migrations' schema.

`make migration MSG="what changed"`: upgrades a scratch SQLite database to the newest revision and lets
Alembic's autogenerate write the next one into storage/migrations/versions/. Read what it wrote before
committing it (SQLite rebuilds tables in batch mode; see 0002 for what that needs), and add the rows the
change affects to tests/integration/storage/test_migrations.py.
"""

import os
import sys
import tempfile

from tradewind.storage.migrate import revision, upgrade

message = os.environ.get("MSG") or (sys.argv[1] if len(sys.argv) > 1 else "")
if not message:
    sys.exit('say what the revision changes: make migration MSG="..."')
with tempfile.TemporaryDirectory() as tmp:
    url = f"sqlite+aiosqlite:///{tmp}/regen.db"
    upgrade(url)
    revision(url, message)
