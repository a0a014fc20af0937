"""Request bodies of the users service, validated by the kernel layer (`ContractRoute`).

Each model reproduces its endpoint's upstream checks in upstream's order: "required keys
present" checks that upstream made first are `model_validator(mode="before")`, the field rules
follow in declaration order (the first failure is the one the client sees), and cross-field
rules come last. Every message is sent verbatim (`fields.invalid`). Everything here runs before
a connection is opened and before any password is hashed, so over-long values never reach
Argon2 or the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from services.users import business_settings, validation
from services.users.password_reset import CodeAttempt
from services.users.service import NewUser, UserChanges
from services.users.validation import MISSING_FIELDS, Email, Password, Role, Username
from stockmanager.contracts.fields import check_storable, invalid
from stockmanager.contracts.validation import RequestBody
from stockmanager.errors import ValidationFailed

LOGIN_REQUIRED = "Usuario y contraseña requeridos"
PROFILE_EMAIL_REQUIRED = "Email es requerido"
PROFILE_EMAIL_INVALID = "Email inválido"
ALL_FIELDS_REQUIRED = "Todos los campos son requeridos"
PASSWORDS_DIFFER = "Las contraseñas nuevas no coinciden"
NEW_PASSWORD_TOO_SHORT = "La contraseña debe tener al menos 6 caracteres"
NEW_PASSWORD_TOO_LONG = f"La contraseña debe tener como máximo {validation.PASSWORD_MAX} caracteres"
RESET_EMAIL_INVALID = "Formato de correo inválido"


def _filled_text(value: object, *, strip: bool = True) -> bool:
    """A string with something in it (after trimming, unless `strip` is False)."""
    return isinstance(value, str) and bool(value.strip() if strip else value)


def optional(check: Callable[[object], Any]) -> BeforeValidator:
    """A field that may be absent or null (None), and otherwise must pass `check`."""
    return BeforeValidator(lambda value: None if value is None else check(value))


def nullable(schema: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": [schema, {"type": "null"}]})


# --- gateway login ----------------------------------------------------------------------------


class CredentialsCheck(RequestBody):
    """`POST /internal/auth/verify`: what the gateway's login received."""

    username: str = Field(description="Username or e-mail, matched case-insensitively.")
    password: str

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: object) -> object:
        if isinstance(data, dict):
            username, password = data.get("username"), data.get("password")
            if not isinstance(username, str) or not isinstance(password, str):
                raise invalid(LOGIN_REQUIRED)
            if not username.strip() or not password:
                raise invalid(LOGIN_REQUIRED)
            check_storable(username)
            check_storable(password)
        return data


# --- users (admin) ----------------------------------------------------------------------------


class NewUserRequest(RequestBody):
    """`POST /api/users`: every key is required (null counts as missing)."""

    username: Username
    email: Email
    password: Password
    role: Role

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: object) -> object:
        if isinstance(data, dict) and any(
            data.get(key) is None for key in ("username", "email", "password", "role")
        ):
            raise invalid(MISSING_FIELDS)
        return data

    def new_user(self) -> NewUser:
        return NewUser(self.username, self.email, self.password, self.role)


def _kept_text(message: str) -> Callable[[object], str]:
    def keep(value: object) -> str:
        return validation.text_of(value, message)

    return keep


def _new_password(value: object) -> str | None:
    # Upstream: any non-empty password is re-hashed; an empty one means "keep it".
    return None if value == "" else validation.check_password(value)


KeptUsername = Annotated[
    str | None,
    optional(_kept_text("Usuario: Debe ser texto")),
    nullable(validation.USERNAME_SCHEMA),
]
KeptEmail = Annotated[
    str | None,
    optional(_kept_text("Email: Debe ser texto")),
    nullable(validation.EMAIL_SCHEMA),
]
OptionalRole = Annotated[
    str | None, optional(validation.check_role), nullable(validation.ROLE_SCHEMA)
]
OptionalStatus = Annotated[
    int | None, optional(validation.check_status), nullable(validation.STATUS_SCHEMA)
]
OptionalPassword = Annotated[
    str | None,
    optional(_new_password),
    nullable(
        {
            "type": "string",
            "anyOf": [{"const": ""}, validation.PASSWORD_SCHEMA],
            "description": "6–128 characters; empty keeps the current password.",
        }
    ),
]


class UserChangesRequest(RequestBody):
    """`PUT /api/users/<id>`: every field optional; absent or null means "leave it".

    A username or e-mail that breaks today's rules (but is text) is kept with its error and
    refused only if it differs from the stored value (see `service.UserChanges`).
    """

    username: KeptUsername = None
    email: KeptEmail = None
    role: OptionalRole = None
    status: OptionalStatus = None
    password: OptionalPassword = None

    def changes(self) -> UserChanges:
        problems = (
            (
                "username",
                None if self.username is None else validation.username_error(self.username),
            ),
            ("email", None if self.email is None else validation.email_error(self.email)),
        )
        return UserChanges(
            username=self.username,
            email=self.email,
            role=self.role,
            status=self.status,
            password=self.password,
            errors=tuple(
                (field, ValidationFailed(message)) for field, message in problems if message
            ),
        )


# --- self-registration ------------------------------------------------------------------------


class RegistrationRequest(RequestBody):
    """`POST /api/register`. Upstream's first checks (all present, password long enough, e-mail
    shaped like one) come before the field rules, with upstream's messages."""

    username: Username
    email: Email
    password: Password

    @model_validator(mode="before")
    @classmethod
    def _upstream_checks(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        username, email, password = (data.get(k) for k in ("username", "email", "password"))
        if not (_filled_text(username) and _filled_text(email) and _filled_text(password)):
            raise invalid(MISSING_FIELDS)
        assert isinstance(email, str) and isinstance(password, str)
        if len(password) < validation.PASSWORD_MIN:
            raise invalid(validation.PASSWORD_TOO_SHORT)
        if validation.email_problem(email.strip()) == validation.INVALID_EMAIL_FORMAT:
            raise invalid(f"Email inválido: {validation.INVALID_EMAIL_FORMAT}")
        return data

    def new_user(self) -> NewUser:
        return NewUser(self.username, self.email, self.password, role="vendedor")


# --- own profile and password -----------------------------------------------------------------


def _profile_email(value: object) -> str:
    if not _filled_text(value):
        raise invalid(PROFILE_EMAIL_REQUIRED)
    assert isinstance(value, str)
    email = check_storable(value).strip()
    if validation.email_problem(email) is not None:
        raise invalid(PROFILE_EMAIL_INVALID)
    return email


ProfileEmail = Annotated[
    str, BeforeValidator(_profile_email), WithJsonSchema(validation.EMAIL_SCHEMA)
]


class ProfileRequest(RequestBody):
    """`PUT /api/settings/profile`: the caller's new e-mail."""

    email: ProfileEmail

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: object) -> object:
        if isinstance(data, dict) and "email" not in data:
            raise invalid(PROFILE_EMAIL_REQUIRED)
        return data


class PasswordChangeRequest(RequestBody):
    """`PUT /api/settings/password`: all three present, the new one twice, then its length."""

    current_password: str = Field(description="Checked against the stored hash (401 if wrong).")
    new_password: str = Field(
        min_length=validation.PASSWORD_MIN, max_length=validation.PASSWORD_MAX
    )
    confirm_password: str = Field(description="Must equal new_password.")

    @model_validator(mode="before")
    @classmethod
    def _checks(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data
        values = [data.get(k) for k in ("current_password", "new_password", "confirm_password")]
        if not all(_filled_text(value, strip=False) for value in values):
            raise invalid(ALL_FIELDS_REQUIRED)
        _current, new, confirm = (check_storable(str(value)) for value in values)
        if new != confirm:
            raise invalid(PASSWORDS_DIFFER)
        if len(new) < validation.PASSWORD_MIN:
            raise invalid(NEW_PASSWORD_TOO_SHORT)
        if len(new) > validation.PASSWORD_MAX:
            raise invalid(NEW_PASSWORD_TOO_LONG)
        return data


# --- password reset (public) ------------------------------------------------------------------


def reset_text(value: object) -> str | None:
    """Upstream read these fields loosely: trimmed text, or an integer as its digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return check_storable(value).strip()
    return None


def _required_reset_fields(data: object, keys: tuple[str, ...]) -> object:
    if isinstance(data, dict):
        if any(reset_text(data.get(key)) is None for key in keys):
            raise invalid(MISSING_FIELDS)
        return {**data, **{key: reset_text(data[key]) for key in keys}}
    return data


def _reset_email(value: object) -> str:
    email = str(value)
    if validation.email_problem(email) is not None:
        raise invalid(RESET_EMAIL_INVALID)
    return email


def _attempt_email(value: object) -> str:
    """Only an address that could belong to an account is looked up (no format check here:
    upstream answered 401 for any unknown address)."""
    email = str(value)
    if len(email) > validation.EMAIL_MAX:
        raise invalid(RESET_EMAIL_INVALID)
    return email


def _code(value: object) -> str:
    code = str(value)
    if len(code) > validation.CODE_MAX:
        raise invalid(f"Código: {validation.too_long(validation.CODE_MAX, len(code))}")
    return code


ResetEmail = Annotated[str, BeforeValidator(_reset_email), WithJsonSchema(validation.EMAIL_SCHEMA)]
AttemptEmail = Annotated[
    str,
    BeforeValidator(_attempt_email),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": validation.EMAIL_MAX}),
]
ResetCode = Annotated[
    str,
    BeforeValidator(_code),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1, "maxLength": validation.CODE_MAX},
                {"type": "integer", "minimum": 0},
            ],
            "description": "The 6-digit code from the e-mail (digits may be sent as a number).",
        }
    ),
]


class ResetCodeRequest(RequestBody):
    """`POST /api/users/reset-password`: step 1."""

    email: ResetEmail

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: object) -> object:
        return _required_reset_fields(data, ("email",))


class CodeAttemptRequest(RequestBody):
    """`POST /api/users/validate-code`: step 2."""

    email: AttemptEmail
    code: ResetCode

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: object) -> object:
        return _required_reset_fields(data, ("email", "code"))

    def attempt(self) -> CodeAttempt:
        return CodeAttempt(email=self.email, code=self.code)


class ResetPasswordRequest(CodeAttemptRequest):
    """`POST /api/users/reset-password/change-password`: step 3. An over-long password is
    refused here, before the code is looked up; a short one only once the code is known to be
    verified (the endpoint checks it, as it always did)."""

    new_password: str = Field(max_length=validation.PASSWORD_MAX)

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: object) -> object:
        data = _required_reset_fields(data, ("email", "code"))
        if isinstance(data, dict):
            password = data.get("new_password")
            if not _filled_text(password, strip=False):
                raise invalid(MISSING_FIELDS)
            assert isinstance(password, str)
            if len(password) > validation.PASSWORD_MAX:
                raise invalid(NEW_PASSWORD_TOO_LONG)
            check_storable(password)
        return data


# --- business settings ------------------------------------------------------------------------


class SettingWrite(RequestBody):
    """`PUT /api/settings/actual/<key>`: `{"value": ...}`, typed by the key.

    The key is looked up first (404 for one outside the whitelist), so the value is checked by
    the key's own rule in `business_settings`, not here; a missing or null value is 400
    `El valor es requerido`.
    """

    value: Any = Field(None, json_schema_extra=business_settings.value_json_schema())
