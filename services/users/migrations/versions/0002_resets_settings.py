"""users schema: password reset codes, whitelisted business settings, pending-list index

Revision ID: users_0002
Revises: users_0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

revision: str = "users_0002"
down_revision: str | None = "users_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        -- One row per user: issuing a new code replaces the old one, so only the newest code
        -- is ever valid. The code itself is never stored, only an HMAC of it.
        CREATE TABLE users.password_resets (
            user_id            bigint      PRIMARY KEY
                                   REFERENCES users.users (id) ON DELETE CASCADE,
            code_hash          text        NOT NULL,
            created_at         timestamptz NOT NULL DEFAULT now(),
            expires_at         timestamptz NOT NULL,
            attempts           smallint    NOT NULL DEFAULT 0,
            verified_at        timestamptz,
            -- Issuance throttle (codes sent per window), kept across re-issues.
            window_started_at  timestamptz NOT NULL DEFAULT now(),
            requests_in_window integer     NOT NULL DEFAULT 1
        );

        -- Overrides of the whitelisted settings (GET /api/settings/actual); defaults live in
        -- code, so only keys someone changed have a row.
        CREATE TABLE users.settings (
            key        varchar(100) PRIMARY KEY,
            value      jsonb        NOT NULL,
            updated_at timestamptz  NOT NULL DEFAULT now(),
            updated_by bigint
        );

        -- GET /api/applications: pending registrations, newest first.
        CREATE INDEX ix_users_pending_created ON users.users (created_at, id)
            WHERE application = 'pending';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX users.ix_users_pending_created;
        DROP TABLE users.settings;
        DROP TABLE users.password_resets;
        """
    )
