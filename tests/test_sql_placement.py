"""SQL lives in one repository module per table family; rows are mapped by column name."""

from __future__ import annotations

import ast
from pathlib import Path

import vasset

PACKAGE = Path(vasset.__file__).resolve().parent

#: The modules that may run SQL: one per table family, and the migration runner.
SQL_MODULES = {
    "apps/repository.py",  # app, server_secret
    "videos/repository.py",  # video
    "videos/snapshot_repository.py",  # video_snapshot
    "upload/repository.py",  # upload, upload_part
    "upload/replacement_repository.py",  # source_replacement (init ... &replace=)
    "upload/resumable/repository.py",  # resumable_upload, upload_ticket
    "events/repository.py",  # event (the outbox) and its fan-out into webhook_delivery
    "events/webhook_repository.py",  # webhook_endpoint
    "events/delivery_repository.py",  # webhook_delivery (and disabling an endpoint)
    "transcode/repository.py",  # transcode_job
    "templates/repository.py",  # transcode_template, video_transcode_options
    "captions/repository.py",  # video_caption
    "assets/repository.py",  # app_asset
    "db.py",  # schema_migration and the numbered migrations
}


def _sql_uses(tree: ast.AST) -> list[str]:
    """Where a module builds SQL text, runs a statement on a connection, or maps by position."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found += [f"imports {a.name}" for a in node.names if a.name in ("text", "bindparam")]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if node.func.attr in ("execute", "exec_driver_sql") and (
                isinstance(owner, ast.Name) and owner.id == "conn"
            ):
                found.append(f"line {node.lineno}: conn.{node.func.attr}()")
        if isinstance(node, ast.Call) and any(
            isinstance(a, ast.Starred) and isinstance(a.value, ast.Name) and a.value.id == "row"
            for a in node.args
        ):
            found.append(f"line {node.lineno}: a row mapped by position")
    return found


def test_only_the_repository_modules_run_sql():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in SQL_MODULES:
            continue
        uses = _sql_uses(ast.parse(path.read_text(encoding="utf-8")))
        if uses:
            offenders[rel] = uses
    assert offenders == {}


def test_repositories_map_rows_by_name():
    for rel in SQL_MODULES - {"db.py"}:
        tree = ast.parse((PACKAGE / rel).read_text(encoding="utf-8"))
        assert [u for u in _sql_uses(tree) if "position" in u] == [], rel


def test_the_check_sees_sql_where_it_is():
    # The check itself must be able to fail: a handler with inline SQL is caught.
    sample = (
        "from sqlalchemy import text\n"
        "async def handler(conn):\n"
        "    row = (await conn.execute(text('SELECT 1'))).first()\n"
        "    return Video(*row)\n"
    )
    assert len(_sql_uses(ast.parse(sample))) == 3
