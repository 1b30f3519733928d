"""Regenerate the initial Alembic migration from the models.

tradewind has not been released, so the schema is one initial migration; after a release, add new
revisions with `alembic revision --autogenerate` instead of running this.
"""

import pathlib
import re
import tempfile

from tradewind.storage.migrate import MIGRATIONS, revision

versions = MIGRATIONS / "versions"
for old in versions.glob("0001_*.py"):
    old.unlink()
with tempfile.TemporaryDirectory() as tmp:
    revision(f"sqlite+aiosqlite:///{tmp}/regen.db", "initial schema")
new = [p for p in versions.glob("*_initial_schema.py") if not p.name.startswith("0001")][0]
text = new.read_text()
rev = re.search(r"^revision = '(\w+)'", text, re.M).group(1)
text = text.replace(f"revision = '{rev}'", "revision = '0001'").replace(
    f"Revision ID: {rev}", "Revision ID: 0001"
)
pathlib.Path(versions / "0001_initial_schema.py").write_text(text)
new.unlink()
print("regenerated", versions / "0001_initial_schema.py")
