"""`http.post`: call an external system with a signed JSON body.

Only hosts in `BILLFLOW["HTTP_ALLOWED_HOSTS"]` are called (exact names, `*.example.com` for
subdomains, or `*` for any public host). A host that resolves to a private, loopback or
link-local address is refused unless it is listed by its exact name: a wildcard or a DNS record
must not open the internal network.
The connection goes to the address that was checked (no second DNS lookup to rebind), and a
redirect to another host is refused.

Every request carries `Idempotency-Key` (the step's key) and `Billflow-Signature:
t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>` with `BILLFLOW["HTTP_SIGNING_SECRET"]`, the
scheme Stripe uses for its webhooks, so a receiver can check both origin and freshness.
429, 5xx, timeouts and connection errors are retryable; any other 4xx is not.
`BILLFLOW["HTTP_TIMEOUT_SECONDS"]` bounds the whole call, not each read (`deadline.py`); a
target that began to answer and then did not finish in time has the request, so that timeout
is not retried (`_unfinished`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from django.conf import settings

from workflows.actions.deadline import Deadline, httpx_trace
from workflows.actions.delivery import delivery_send_once
from workflows.actions.registry import Action, ActionContext, ActionError, InputField, register
from workflows.models import Delivery

SIGNATURE_HEADER = "Billflow-Signature"
USER_AGENT = "Billflow-Workflows/1"
# Characters of a response body kept in the step's output and in error messages.
BODY_LIMIT = 4000
ERROR_BODY_LIMIT = 300
MAX_REDIRECTS = 3


def signature_header(*, secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def _allow_entry(host: str, allowed_hosts: list[str]) -> str | None:
    """'exact' when `host` is listed by name, 'wildcard' when a `*.` entry covers it."""
    for entry in allowed_hosts:
        entry = entry.strip().lower().rstrip(".")
        if entry == host:
            return "exact"
    for entry in allowed_hosts:
        entry = entry.strip().lower().rstrip(".")
        if entry == "*" or (entry.startswith("*.") and host.endswith(entry[1:])):
            return "wildcard"
    return None


# IPv6 prefixes whose last 32 bits are an IPv4 address a router or the host's stack may reach:
# IPv4-compatible (::/96, deprecated), IPv4-translated (::ffff:0:0:0/96) and NAT64's well-known
# prefix (64:ff9b::/96). IPv4-mapped, 6to4 and Teredo are read by `ipaddress` itself.
_LAST_32_BITS_IPV4 = tuple(
    ipaddress.ip_network(prefix) for prefix in ("::/96", "::ffff:0:0:0/96", "64:ff9b::/96")
)
# Local-use NAT64 (RFC 8215): the IPv4 address may sit at several places, and the prefix is
# never global, so the whole prefix counts as internal.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo)."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client)
    if any(ip in prefix for prefix in _LAST_32_BITS_IPV4):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF))
    return found


def _is_internal(address: str) -> bool:
    """Private, loopback, link-local, CGNAT, multicast or otherwise not global, in any spelling:
    an IPv6 address that carries an IPv4 address is judged by the IPv4 rules as well."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _LOCAL_NAT64:
            return True
        if any(_is_internal(str(v4)) for v4 in _embedded_ipv4(ip)):
            return True
        if ip.ipv4_mapped is not None:  # judged by its IPv4 address alone, as before
            return False
    return not ip.is_global or ip.is_multicast


def _checked_address(host: str, port: int, *, explicit: bool) -> str:
    """Resolve `host` once and return the address to connect to, refusing internal ones."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ActionError(
            f"Could not resolve host {host!r}: {exc.strerror or exc}",
            type="connection_error",
            retryable=True,
            param="url",
        ) from exc
    addresses = [info[4][0] for info in infos]
    if not explicit and any(_is_internal(address) for address in addresses):
        raise ActionError(
            f"Host {host!r} resolves to a private or loopback address; list it by its exact "
            "name in HTTP_ALLOWED_HOSTS to call it.",
            type="host_not_allowed",
            param="url",
        )
    return addresses[0]


def _target(url: str, allowed_hosts: list[str]) -> tuple[httpx.URL, str, str]:
    """Check `url` and return (URL pinned to the checked address, Host header, host name)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ActionError(
            f"{url!r} is not an http(s) URL.", type="invalid_request_error", param="url"
        )
    host = parts.hostname.lower().rstrip(".")
    match = _allow_entry(host, allowed_hosts)
    if match is None:
        raise ActionError(
            f"Host {host!r} is not in the allowed hosts (HTTP_ALLOWED_HOSTS).",
            type="host_not_allowed",
            param="url",
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = _checked_address(host, port, explicit=match == "exact")
    netloc_host = f"[{address}]" if ":" in address else address
    pinned = urlunsplit((parts.scheme, f"{netloc_host}:{port}", parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return httpx.URL(pinned), host_header, host


def _response_body(response: httpx.Response) -> object:
    text = response.text
    if "json" in response.headers.get("content-type", "") and len(text) <= BODY_LIMIT:
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text[:BODY_LIMIT]


def _unfinished(
    host: str, timeout: float, answered: int | None, exc: Exception, deadline: Deadline
) -> ActionError:
    """The error of a POST that did not get a whole answer.

    No status yet (not connected, or the target kept silent): a timeout or a connection
    error, retryable; a retry sends the same `Idempotency-Key`, which the receiver
    de-duplicates on. A status received and then the answer cut short (it trickled past the
    time limit, or the connection broke): the target has the request and is acting on it, so
    a 2xx-4xx is not sent again by itself; restarting the run sends it again, on purpose.
    429 and 5xx stay retryable: the target said it did not act on it.
    """
    timed_out = isinstance(exc, httpx.TimeoutException) or deadline.expired
    if answered is None:
        if timed_out:
            return ActionError(
                f"POST to {host} timed out after {timeout:g} s.", type="timeout", retryable=True
            )
        return ActionError(f"POST to {host} failed: {exc}", type="connection_error", retryable=True)
    cut = f"timed out after {timeout:g} s" if timed_out else f"was cut short ({exc})"
    if answered == 429 or answered >= 500:
        return ActionError(
            f"{host} answered {answered}, and its answer {cut}.", type="http_error", retryable=True
        )
    return ActionError(
        f"POST to {host} {cut}: the target answered {answered} but did not finish its "
        "answer. It has the request, so it is not sent again by itself; restart the run to "
        "send it again (with the same Idempotency-Key).",
        type="timeout" if timed_out else "connection_error",
        retryable=False,
    )


def http_post_send(
    *,
    url: str,
    payload: object,
    idempotency_key: str,
    allowed_hosts: list[str],
    timeout: float | None = None,
    secret: str | None = None,
) -> dict:
    """POST `payload` as signed JSON; return {"status", "body"} or raise ActionError.

    Shared by `http.post` and custom actions (slack_actions) so every outgoing call has the same
    host checks, signature, timeout and error classes.
    """
    bflow = settings.BILLFLOW
    secret = bflow.get("HTTP_SIGNING_SECRET", "") if secret is None else secret
    timeout = float(bflow.get("HTTP_TIMEOUT_SECONDS", 10.0)) if timeout is None else timeout
    if not secret:
        raise ActionError(
            "HTTP_SIGNING_SECRET is empty; outgoing calls must be signed.", type="configuration"
        )
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    current = url
    # `timeout` bounds the whole call (address check, connect, send, the full answer), not
    # each read: a target trickling its answer must not hold the step past its run's lease.
    # httpx's timeouts are per phase, so a watchdog shuts the connection down when the time
    # is up (deadline.py); each phase's own timeout is what is left of it.
    deadline = Deadline(timeout)
    trace = httpx_trace(deadline)

    with (
        deadline,
        httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client,
    ):
        for _hop in range(MAX_REDIRECTS + 1):
            pinned, host_header, host = _target(current, allowed_hosts)
            headers = {
                "Host": host_header,
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "Idempotency-Key": idempotency_key,
                SIGNATURE_HEADER: signature_header(
                    secret=secret, timestamp=int(time.time()), body=body
                ),
            }
            extensions: dict = {"trace": trace}
            if pinned.scheme == "https":
                extensions["sni_hostname"] = host
            answered: int | None = None  # the status, once the target started to answer
            try:
                if deadline.expired:
                    raise httpx.ConnectTimeout("no time left before connecting")
                with client.stream(
                    "POST",
                    pinned,
                    content=body,
                    headers=headers,
                    extensions=extensions,
                    timeout=deadline.remaining(),
                ) as response:
                    answered = response.status_code
                    response.read()
            except httpx.TransportError as exc:  # timeouts included
                raise _unfinished(host, timeout, answered, exc, deadline) from exc
            if not response.is_redirect:
                break
            location = urljoin(current, response.headers.get("location", ""))
            next_host = (urlsplit(location).hostname or "").lower().rstrip(".")
            if next_host != host or urlsplit(location).scheme != urlsplit(current).scheme:
                raise ActionError(
                    f"{host} redirected to another host ({next_host or location!r}); "
                    "redirects leave the allowed host only by name, so this one is refused.",
                    type="redirect_refused",
                )
            if response.status_code not in (307, 308):
                raise ActionError(
                    f"{host} answered {response.status_code} (a redirect that turns a POST "
                    "into a GET); update the URL instead.",
                    type="redirect_refused",
                )
            current = location
        else:
            raise ActionError(f"Too many redirects from {host}.", type="redirect_refused")

    status = response.status_code
    if status == 429 or status >= 500:
        raise ActionError(
            f"{host} answered {status} {response.reason_phrase}: "
            f"{response.text[:ERROR_BODY_LIMIT]}",
            type="http_error",
            retryable=True,
        )
    if status >= 400:
        raise ActionError(
            f"{host} answered {status} {response.reason_phrase}: "
            f"{response.text[:ERROR_BODY_LIMIT]}",
            type="http_error",
        )
    return {"status": status, "body": _response_body(response)}


def execute(ctx: ActionContext, params: dict) -> dict:
    url = params.get("url")
    if not isinstance(url, str) or not url:
        raise ActionError("url is required.", type="invalid_request_error", param="url")
    payload = params.get("body") or {}
    allowed = list(settings.BILLFLOW.get("HTTP_ALLOWED_HOSTS", []))
    if ctx.dry_run:
        _target(url, allowed)
        return {"status": 0, "body": None, "dry_run": True}
    return delivery_send_once(
        kind=Delivery.Kind.HTTP,
        idempotency_key=ctx.idempotency_key,
        in_progress_seconds=float(settings.BILLFLOW.get("HTTP_TIMEOUT_SECONDS", 10.0)) * 2,
        send=lambda: http_post_send(
            url=url,
            payload=payload,
            idempotency_key=ctx.idempotency_key,
            allowed_hosts=allowed,
        ),
    )


def validate_params(params: dict) -> list[tuple[str, str]]:
    """Save-time check of a literal URL (a dynamic one is checked when the step runs)."""
    url = params.get("url")
    if not isinstance(url, str) or "{{" in url:
        return []
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return [("url", f"{url!r} is not an http(s) URL.")]
    host = parts.hostname.lower().rstrip(".")
    if _allow_entry(host, list(settings.BILLFLOW.get("HTTP_ALLOWED_HOSTS", []))) is None:
        return [("url", f"Host {host!r} is not in the allowed hosts (HTTP_ALLOWED_HOSTS).")]
    return []


ACTION = register(
    Action(
        key="http.post",
        label="Send an HTTP request",
        description=(
            "POST a signed JSON body to an allowed host. The receiver can check the "
            "Billflow-Signature header and de-duplicate on the Idempotency-Key header."
        ),
        group="Integrations",
        inputs=(
            InputField("url", "url", required=True, help="Host must be in HTTP_ALLOWED_HOSTS."),
            InputField("body", "object", help="The JSON object to send."),
        ),
        output={"status": 200, "body": {}},
        side_effects=True,
        transactional=False,
        execute=execute,
        validate_params=validate_params,
    )
)
