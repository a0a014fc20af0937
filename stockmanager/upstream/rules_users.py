"""Rules for upstream users, notifications and audit entries (report.RULES names them)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from stockmanager.identity import ROLE_SELLER, ROLES
from stockmanager.upstream.records import HistoryRecord, NotificationRecord, UserRecord
from stockmanager.upstream.report import Report
from stockmanager.upstream.source import UpstreamFile
from stockmanager.upstream.values import (
    as_int,
    as_text,
    ip_address,
    json_value,
    local_time,
    utc_time,
)

USERNAME_MAX = 30
EMAIL_MAX = 100
APPLICATIONS = ("pending", "accepted", "rejected")
NOTIFICATION_TYPES = ("info", "warning", "success", "error")
AUDIT_ACTION_MAX = 64
AUDIT_ENTITY_MAX = 32

USER_COLUMNS = {
    "id": None,
    "username": "",
    "password": "",
    "email": "",
    "role": ROLE_SELLER,
    "status": 1,
    # Upstream's migration default for databases older than the column.
    "application": "accepted",
    "created_at": None,
}


def with_suffix(text: str, suffix: str, limit: int) -> str:
    return text[: limit - len(suffix)] + suffix


def _valid_email(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    return bool(at and local and "." in domain) and len(email) <= EMAIL_MAX


def email_with_suffix(email: str, tag: str) -> str:
    local, _, domain = email.rpartition("@")
    room = EMAIL_MAX - len(domain) - len(tag) - 2
    return f"{local[:room]}+{tag}@{domain}"


def read_users(file: UpstreamFile, report: Report, now: datetime) -> list[UserRecord]:
    counts = report.counts["users"]
    users: list[UserRecord] = []
    names: set[str] = set()
    emails: set[str] = set()
    for row in file.rows("users", USER_COLUMNS):
        counts.read += 1
        uid = as_int(row[0])
        if uid is None:
            counts.skipped += 1
            continue
        raw_name = (as_text(row[1]) or "").strip()
        name = raw_name.replace("@", "_")[:USERNAME_MAX] or f"user{uid}"
        if name != raw_name:
            report.problem("invalid_username", "users", uid, f"{raw_name!r} -> {name!r}")
        if name.lower() in names:
            renamed = with_suffix(name, f"_{uid}", USERNAME_MAX)
            report.problem("duplicate_username", "users", uid, f"{name!r} -> {renamed!r}")
            name = renamed
        names.add(name.lower())
        raw_email = (as_text(row[3]) or "").strip()
        email = raw_email if _valid_email(raw_email) else f"user{uid}@invalid.local"
        if email != raw_email:
            report.problem("invalid_email", "users", uid, f"{raw_email!r} -> {email!r}")
        if email.lower() in emails:
            renamed = email_with_suffix(email, str(uid))
            report.problem("duplicate_email", "users", uid, f"{email!r} -> {renamed!r}")
            email = renamed
        emails.add(email.lower())
        raw_role = (as_text(row[4]) or "").strip()
        role = raw_role.lower() if raw_role.lower() in ROLES else ROLE_SELLER
        if role != raw_role:
            report.problem("invalid_role", "users", uid, f"{raw_role!r} -> {role!r}")
        status = as_int(row[5])
        application = (as_text(row[6]) or "").strip().lower()
        if status not in (0, 1) or application not in APPLICATIONS:
            report.problem(
                "invalid_status", "users", uid, f"status {row[5]!r}, application {row[6]!r}"
            )
        created = utc_time(row[7])
        if created is None:
            report.problem("invalid_date", "users", uid, f"created_at {row[7]!r} -> now")
        users.append(
            UserRecord(
                upstream_id=uid,
                username=name,
                email=email,
                password_hash=as_text(row[2]) or "",
                role=role,
                status=status if status in (0, 1) else 1,
                application=application if application in APPLICATIONS else "accepted",
                created_at=created or now,
            )
        )
    return users


NOTIFICATION_COLUMNS = {
    "id": None,
    "user_id": None,
    "title": "",
    "message": None,
    "type": "info",
    "action_url": None,
    "is_read": 0,
    "created_at": None,
}


def read_notifications(
    file: UpstreamFile, report: Report, tz: ZoneInfo, user_ids: set[int]
) -> list[NotificationRecord]:
    counts = report.counts["notifications"]
    found: list[NotificationRecord] = []
    for row in file.rows("notifications", NOTIFICATION_COLUMNS):
        counts.read += 1
        nid, user_id = as_int(row[0]), as_int(row[1])
        if nid is None or user_id not in user_ids or user_id is None:
            report.problem("orphan_notification", "notifications", nid, f"user_id {row[1]!r}")
            counts.skipped += 1
            continue
        created = local_time(row[7], tz)
        if created is None:
            report.problem("invalid_date", "notifications", nid, f"created_at {row[7]!r}")
            counts.skipped += 1
            continue
        kind = (as_text(row[4]) or "").strip().lower()
        read_flag = as_int(row[6])
        if kind not in NOTIFICATION_TYPES or read_flag not in (0, 1):
            report.problem(
                "invalid_status", "notifications", nid, f"type {row[4]!r}, is_read {row[6]!r}"
            )
        found.append(
            NotificationRecord(
                upstream_id=nid,
                user_upstream_id=user_id,
                title=as_text(row[2]) or "",
                message=as_text(row[3]),
                type=kind if kind in NOTIFICATION_TYPES else "info",
                action_url=as_text(row[5]),
                is_read=read_flag == 1,
                created_at=created,
            )
        )
    return found


AUDIT_COLUMNS = {
    "id": None,
    "user_id": None,
    "action": "",
    "entity_type": "",
    "entity_id": None,
    "old_value": None,
    "new_value": None,
    "description": "",
    "ip_address": None,
    "timestamp": None,
    "status": "success",
}


def read_history(
    file: UpstreamFile, report: Report, tz: ZoneInfo, user_ids: set[int]
) -> list[HistoryRecord]:
    counts = report.counts["audit_log"]
    found: list[HistoryRecord] = []
    for row in file.rows("audit_log", AUDIT_COLUMNS):
        counts.read += 1
        aid = as_int(row[0])
        occurred = local_time(row[9], tz)
        if aid is None or occurred is None:
            report.problem("invalid_date", "audit_log", aid, f"timestamp {row[9]!r}")
            counts.skipped += 1
            continue
        user_id = as_int(row[1])
        if user_id is not None and user_id not in user_ids:
            report.problem("orphan_audit_user", "audit_log", aid, f"user_id {user_id}")
            user_id = None
        old, old_ok = json_value(row[5])
        new, new_ok = json_value(row[6])
        if not (old_ok and new_ok):
            report.problem("invalid_json", "audit_log", aid, "old_value/new_value")
        ip = ip_address(row[8])
        if ip is None and (as_text(row[8]) or "").strip():
            report.problem("invalid_ip", "audit_log", aid, repr(row[8]))
        status = (as_text(row[10]) or "").strip().lower()
        if status not in ("success", "error"):
            report.problem("invalid_status", "audit_log", aid, f"status {row[10]!r}")
        found.append(
            HistoryRecord(
                upstream_id=aid,
                user_upstream_id=user_id,
                action=(as_text(row[2]) or "").strip().lower()[:AUDIT_ACTION_MAX] or "unknown",
                entity_type=(as_text(row[3]) or "").strip().lower()[:AUDIT_ENTITY_MAX] or "system",
                entity_id=as_int(row[4]),
                old_value=old,
                new_value=new,
                description=as_text(row[7]) or "",
                ip_address=ip,
                occurred_at=occurred,
                status="error" if status == "error" else "success",
            )
        )
    return found
