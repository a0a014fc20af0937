"""audit schema: the append-only audit log and processed events

Revision ID: audit_0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

from alembic import op

from stockmanager.migration_ddl import event_tables_ddl

revision: str = "audit_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE audit.audit_log (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id     uuid        NOT NULL CONSTRAINT ux_audit_log_event_id UNIQUE,
            event_type   varchar(64) NOT NULL,
            occurred_at  timestamptz NOT NULL,
            recorded_at  timestamptz NOT NULL DEFAULT now(),
            user_id      bigint,
            username     text,
            role         varchar(20),
            action       varchar(64) NOT NULL
                             CONSTRAINT ck_audit_log_action_lower CHECK (action = lower(action)),
            entity_type  varchar(32) NOT NULL
                             CONSTRAINT ck_audit_log_entity_type_lower
                             CHECK (entity_type = lower(entity_type)),
            entity_id    bigint,
            old_value    jsonb,
            new_value    jsonb,
            description  text        NOT NULL,
            ip_address   inet,
            request_id   text,
            status       varchar(10) NOT NULL
                             CONSTRAINT ck_audit_log_status CHECK (status IN ('success','error'))
        );
        COMMENT ON TABLE audit.audit_log IS
            'Append-only audit trail, one row per domain event (event_id unique). '
            'UPDATE, DELETE and TRUNCATE are refused by trigger audit_log_append_only.';

        -- One index per list filter/sort of the API (docs/api/audit.md).
        CREATE INDEX ix_audit_log_time ON audit.audit_log (occurred_at DESC, id DESC);
        CREATE INDEX ix_audit_log_user_time
            ON audit.audit_log (user_id, occurred_at DESC, id DESC);
        CREATE INDEX ix_audit_log_action_time
            ON audit.audit_log (action, occurred_at DESC, id DESC);
        CREATE INDEX ix_audit_log_entity_time
            ON audit.audit_log (entity_type, entity_id, occurred_at, id);
        -- Bulk product changes have no single entity id; the entity trail finds them by the
        -- product ids listed in new_value ({"products": [{"id": ...}, ...]}).
        CREATE INDEX ix_audit_log_bulk_items
            ON audit.audit_log USING gin (new_value jsonb_path_ops) WHERE entity_id IS NULL;

        -- Append-only for every role, the owner and superusers included. A statement-level
        -- trigger fires even when no row matches, so any attempt fails loudly; ENABLE ALWAYS
        -- keeps it active under session_replication_role = replica. (INSERT ... ON CONFLICT
        -- DO UPDATE fires the UPDATE statement trigger too.)
        CREATE FUNCTION audit.refuse_audit_log_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit.audit_log is append-only: % is not allowed', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$;
        CREATE TRIGGER audit_log_append_only
            BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_audit_log_change();
        ALTER TABLE audit.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
        REVOKE UPDATE, DELETE, TRUNCATE ON audit.audit_log FROM PUBLIC;
        """
    )
    op.execute(event_tables_ddl("audit"))


def downgrade() -> None:
    op.execute("DROP SCHEMA audit CASCADE")
