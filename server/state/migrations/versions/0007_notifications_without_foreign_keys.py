"""notifications without foreign keys: a message to a large team inserts one row per agent, and
PostgreSQL's per-row foreign key triggers tripled that insert's cost (see models.Notification)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Before foreign keys come back: rows whose conversation went while there were none.
_DROP_ORPHANS = (
    "DELETE FROM notifications WHERE conversation_id NOT IN (SELECT id FROM conversations)"
)


def _notifications(*, with_foreign_keys: bool) -> sa.Table:
    """The table's shape, for SQLite's copy-and-rename (its foreign keys have no names)."""

    def ref(target: str) -> list[sa.ForeignKey]:
        return [sa.ForeignKey(target, ondelete="CASCADE")] if with_foreign_keys else []

    return sa.Table(
        "notifications",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), *ref("users.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), *ref("conversations.id"), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Index("ix_notifications_conversation_id", "conversation_id"),
        sa.Index("ix_notifications_user_id_id", "user_id", "id"),
        sqlite_autoincrement=True,
    )


def _recreate(*, with_foreign_keys: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        if with_foreign_keys:
            op.execute(_DROP_ORPHANS)
            op.create_foreign_key(
                "notifications_user_id_fkey",
                "notifications",
                "users",
                ["user_id"],
                ["id"],
                ondelete="CASCADE",
            )
            op.create_foreign_key(
                "notifications_conversation_id_fkey",
                "notifications",
                "conversations",
                ["conversation_id"],
                ["id"],
                ondelete="CASCADE",
            )
        else:
            op.drop_constraint("notifications_user_id_fkey", "notifications", type_="foreignkey")
            op.drop_constraint(
                "notifications_conversation_id_fkey", "notifications", type_="foreignkey"
            )
        return
    if with_foreign_keys:
        op.execute(_DROP_ORPHANS)
    table = _notifications(with_foreign_keys=with_foreign_keys)
    with op.batch_alter_table("notifications", copy_from=table, recreate="always"):
        pass


def upgrade() -> None:
    _recreate(with_foreign_keys=False)


def downgrade() -> None:
    _recreate(with_foreign_keys=True)
