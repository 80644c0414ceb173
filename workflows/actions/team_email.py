"""`team.email`: e-mail members of the back-office team, once per step execution.

Recipients are back-office users only (active users with a role), named by username or e-mail
address, so a workflow cannot mail customers or arbitrary addresses. The message goes through
Django's e-mail backend (`EMAIL_URL`). Its Message-ID is derived from the step's idempotency key,
and the key is recorded in `Delivery`, so executing the step again after a crash or a restart
sends nothing twice (and a mail system that sees the same Message-ID twice can drop it).

SMTP trouble that may pass (connection refused, timeouts, 4xx replies) is a retryable error; a
5xx reply is not. `EMAIL_TIMEOUT` bounds the whole conversation, not each read (`deadline.py`).
A server that has the whole message and then does not answer in time (or drops the
connection) may have accepted it: that is a `timeout` that is not retried by itself, so the
message is not sent twice; restarting the run sends it again, with the same Message-ID.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import smtplib
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.utils import timezone

from backoffice.auth_backend import active_users_named
from backoffice.roles import Role, role_of
from workflows.actions.deadline import Deadline
from workflows.actions.delivery import delivery_send_once
from workflows.actions.registry import Action, ActionContext, ActionError, InputField, register
from workflows.models import Delivery

SUBJECT_LIMIT = 200
DEFAULT_SMTP_TIMEOUT = 30.0


def _as_names(recipients: object) -> list[str]:
    """Recipients as a list of names: a list, or one string separated by commas."""
    if isinstance(recipients, str):
        items = recipients.split(",")
    elif isinstance(recipients, list | tuple):
        items = [str(item) for item in recipients]
    else:
        items = []
    return [item.strip() for item in items if item and item.strip()]


def recipients_resolve(recipients: object) -> list[str]:
    """The e-mail addresses of the named back-office users; anything else is an ActionError."""
    names = _as_names(recipients)
    if not names:
        raise ActionError(
            "Add at least one recipient.", type="invalid_request_error", param="recipients"
        )
    addresses: list[str] = []
    for name in names:
        user = next((u for u in active_users_named(name) if role_of(u) > Role.NONE), None)
        if user is None:
            raise ActionError(
                f"Recipient {name!r} is not a back-office user with a role.",
                type="invalid_request_error",
                param="recipients",
            )
        if not user.email:
            raise ActionError(
                f"Recipient {name!r} has no e-mail address.",
                type="invalid_request_error",
                param="recipients",
            )
        if user.email not in addresses:
            addresses.append(user.email)
    return addresses


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def team_email_preview(*, params: dict) -> dict:
    """Subject, body and rows as the e-mail will show them, without sending (the builder)."""
    subject = " ".join(_text(params.get("subject") or "").split())[:SUBJECT_LIMIT]
    body = _text(params.get("body") or "").strip()
    rows = [
        {"label": _text(row.get("label", "")), "value": _text(row.get("value"))}
        for row in (params.get("rows") or [])
        if isinstance(row, dict)
    ]
    lines = [body] if body else []
    if rows:
        width = max(len(row["label"]) for row in rows)
        lines.append("")
        lines.extend(f"{row['label'].ljust(width)}  {row['value']}" for row in rows)
    return {
        "subject": subject,
        "body": body,
        "rows": rows,
        "text": "\n".join(lines).strip("\n") + "\n",
        "recipients": _as_names(params.get("recipients")),
    }


def message_id_for(idempotency_key: str) -> str:
    """The same key always gives the same Message-ID, on every worker machine."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = urlsplit(settings.SITE_URL).hostname or "billflow.localhost"
    return f"<billflow.{digest}@{domain}>"


class _DeadlineBackend(SMTPBackend):
    """Django's SMTP backend whose connection a `Deadline` watches (set `deadline` first).

    Its SMTP class registers the connection's socket with the deadline as soon as it exists
    (the greeting is read in the constructor) and notes when the message itself has been
    handed to the server (`handed_over`): from then on the server may have accepted it."""

    deadline: Deadline | None = None

    @property
    def connection_class(self):
        deadline = self.deadline
        base = super().connection_class

        class Watched(base):
            handed_over = False

            def _get_socket(self, host, port, timeout):
                sock = super()._get_socket(host, port, timeout)
                if deadline is not None:
                    # The current socket when the time is up: STARTTLS replaces it.
                    deadline.watch(lambda: self.sock or sock)
                return sock

            def data(self, msg):
                self.sending_data = True
                try:
                    return super().data(msg)
                finally:
                    self.sending_data = False

            def send(self, s):
                super().send(s)
                # In DATA, anything after the command itself is the message (ending "."):
                # once it is out, the server may accept it whether or not we hear the reply.
                if getattr(self, "sending_data", False) and s != "data\r\n":
                    self.handed_over = True

        return Watched


def _handed_over(connection: object) -> bool:
    smtp = getattr(connection, "connection", None) or getattr(
        connection, "_partial_connection", None
    )
    return bool(getattr(smtp, "handed_over", False))


def _smtp_error(exc: Exception) -> ActionError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        retryable = all(400 <= code < 500 for code in codes)
        refused = ", ".join(sorted(exc.recipients))
        return ActionError(
            f"The mail server refused {refused}.", type="email_error", retryable=retryable
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        detail = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        return ActionError(
            f"The mail server answered {exc.smtp_code}: {detail}",
            type="email_error",
            retryable=400 <= exc.smtp_code < 500,
        )
    # Disconnected, connection refused, timeouts: the server may be back soon.
    return ActionError(
        f"Could not send the e-mail: {type(exc).__name__}: {exc}",
        type="email_error",
        retryable=True,
    )


def _send(*, ctx: ActionContext, preview: dict, addresses: list[str], connection) -> dict:
    message_id = message_id_for(ctx.idempotency_key)
    headers = {"Message-ID": message_id, "X-Billflow-Idempotency-Key": ctx.idempotency_key}
    if ctx.run_id is not None:
        headers["X-Billflow-Run"] = str(ctx.run_id)
    message = EmailMessage(
        subject=preview["subject"],
        body=preview["text"],
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=addresses,
        headers=headers,
        connection=connection,
    )
    # Set by `email_send_once` on the SMTP backend: the conversation's total time limit.
    deadline: Deadline | None = getattr(connection, "deadline", None)
    try:
        # Opened here, so sending leaves it open: the caller says goodbye to the server only
        # once the send is recorded (see `execute`).
        connection.open()
        message.send()
    except (smtplib.SMTPException, OSError) as exc:
        answered = isinstance(exc, smtplib.SMTPResponseException)
        expired = deadline is not None and deadline.expired
        limit = deadline.seconds if deadline is not None else float(connection.timeout or 0)
        if _handed_over(connection) and not answered:
            # The whole message is with the server and its answer never came: it may have
            # accepted it. Sending again would likely deliver a second copy.
            cut = (
                f"did not answer within {limit:g} s"
                if expired or isinstance(exc, TimeoutError) or "timed out" in str(exc)
                else f"dropped the connection ({exc})"
            )
            raise ActionError(
                f"The mail server {cut} after the whole message was sent; it may have "
                "accepted it, so it is not sent again by itself. Restart the run to send it "
                "again (with the same Message-ID).",
                type="timeout",
                retryable=False,
            ) from exc
        if expired:
            raise ActionError(
                f"Could not send the e-mail: the mail server did not finish within "
                f"{limit:g} s ({type(exc).__name__}: {exc}).",
                type="email_error",
                retryable=True,
            ) from exc
        raise _smtp_error(exc) from exc
    return {
        "message_id": message_id,
        "recipients": addresses,
        "subject": preview["subject"],
        "sent_at": timezone.now().isoformat(),
    }


def execute(ctx: ActionContext, params: dict) -> dict:
    addresses = recipients_resolve(params.get("recipients"))
    preview = team_email_preview(params=params)
    if not preview["subject"]:
        raise ActionError("subject is required.", type="invalid_request_error", param="subject")
    if ctx.dry_run:
        return {"message_id": "", "recipients": addresses, "subject": preview["subject"]}
    return email_send_once(ctx=ctx, preview=preview, addresses=addresses)


def email_send_once(*, ctx: ActionContext, preview: dict, addresses: list[str]) -> dict:
    """Send `preview` to `addresses` once per step key (the delivery record, delivery.py)."""
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_SMTP_TIMEOUT
    backend = None
    if settings.EMAIL_BACKEND == "django.core.mail.backends.smtp.EmailBackend":
        # The same backend, with the whole conversation bounded by `timeout` (not each read).
        backend = f"{__name__}._DeadlineBackend"
    connection = get_connection(backend=backend, fail_silently=False, timeout=timeout)
    # One time limit for the whole conversation, greeting to goodbye (other backends open no
    # socket to watch).
    watching: contextlib.AbstractContextManager = contextlib.nullcontext()
    if isinstance(connection, _DeadlineBackend):
        connection.deadline = Deadline(float(timeout))
        watching = connection.deadline
    with watching:
        try:
            return delivery_send_once(
                kind=Delivery.Kind.EMAIL,
                idempotency_key=ctx.idempotency_key,
                in_progress_seconds=float(timeout) * 2,
                send=lambda: _send(
                    ctx=ctx, preview=preview, addresses=addresses, connection=connection
                ),
            )
        finally:
            # QUIT only after the delivery is marked sent: a worker killed between the
            # server's acceptance and that mark is the one way a second copy can go out (with
            # the same Message-ID), and the server's answer to QUIT no longer widens that
            # window. The message is out by then, so a failed goodbye (or one the time limit
            # cuts short) is not the step's failure.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                connection.close()


def validate_params(params: dict) -> list[tuple[str, str]]:
    """Save-time check of literal recipients (dynamic ones are checked when the step runs)."""
    recipients = params.get("recipients")
    literal = [name for name in _as_names(recipients) if "{{" not in name]
    if not literal:
        return []
    try:
        recipients_resolve(literal)
    except ActionError as exc:
        return [("recipients", exc.message)]
    return []


ACTION = register(
    Action(
        key="team.email",
        label="Email a team member",
        description=(
            "Send an e-mail to back-office users: a subject, a body and label/value rows, "
            "each of which may use dynamic fields. Sent once per step execution."
        ),
        group="Notifications",
        inputs=(
            InputField(
                "recipients",
                "user_list",
                required=True,
                help="Usernames or e-mail addresses of back-office users.",
            ),
            InputField("subject", "string", required=True),
            InputField("body", "text"),
            InputField("rows", "rows", help="Label and value pairs shown under the body."),
        ),
        output={
            "message_id": "<billflow.…@billflow.example>",
            "recipients": ["finance@example.com"],
            "subject": "…",
            "sent_at": "2026-01-01T00:00:00+00:00",
        },
        side_effects=True,
        transactional=False,
        execute=execute,
        validate_params=validate_params,
    )
)
