"""The ledger audit: after workers are done, prove that nothing was lost and nothing happened twice.

    from tests.ledger import audit_ledger

    report = audit_ledger(live, smtp=smtp_server)                # raises AssertionError
    report = audit_ledger(live, smtp=smtp_server, expect_failed=Run.objects.filter(workflow=bad))
    report.steps_retried                                           # [(run, step, iteration, n)]

`audit_ledger(environments, *, smtp=None, events=None, expect_failed=(), allow_canceled=False,
expect_runs=None, expect_emails=None) -> LedgerReport` reads the database (and the messages a
real SMTP server received) and checks, for every run of the given environment(s):

1. **Every run is terminal**: succeeded, or failed when listed in `expect_failed` (run ids,
   `Run` objects or a `Run` queryset, read at audit time), or canceled when `allow_canceled`.
   None is pending or running. A run listed in `expect_failed` must have failed.
2. **No event without its runs**: each event (all events of the environments, or only `events`:
   ids or `Event` objects) is dispatched and has exactly one run per active workflow whose
   trigger accepts it (type, account scope, trigger conditions), none missing, none extra.
3. **Every (run, step, iteration) effect exactly once**:
   * no step of a succeeded run is left pending or running; a failed run has exactly one failed
     step; every step records at least one started attempt (`attempts >= 1`);
   * billing events caused by a run carry the key of a *succeeded* step of that run (a step
     rolled back left no event), or the key a succeeded attempt used before a restart from the
     start gave its step a new one (its `attempt_log` entry keeps it; listed in
     `report.keys_superseded`), and no key repeats an event for the same object and type (an
     effect applied twice); each succeeded step that changed an object left at least one event;
   * each object's metadata holds the value the last succeeded step wrote to each key it set;
   * each succeeded step of a non-transactional action (`team.email`, `http.post`) has exactly
     one `Delivery` with its key, status `sent`; with `smtp`, the server received exactly one
     message per sent e-mail delivery (grouped by Message-ID) and none that no delivery claims.
     The one exception is the documented one (docs/guarantees.md): a worker killed after the
     server accepted a message and before its delivery was marked sent leaves the delivery
     `sending`, and the worker that takes the step over sends it again, with the same
     Message-ID. The delivery then counts a second attempt; a copy is allowed per attempt the
     delivery records, no more, and each such copy is listed in `report.emails_resent`.
     A step failed with `timeout` after the server had the whole message (it did not confirm
     it in time, so the step did not send it again) may have left exactly one message, listed
     in `report.emails_unconfirmed`; a second copy is a problem.
4. Optional totals: `expect_runs` (number of runs) and `expect_emails` (sent e-mail deliveries).

Every problem found is listed in plain words in the AssertionError (the first 40 of them, with
run ids, step ids and keys), so a failing fault test says what was lost or doubled. The returned
`LedgerReport` has the counts and the steps that needed more than one attempt, for tests that
also assert where a fault struck.

This module only reads; it is test code and is not imported by the application.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from billing.events import event_envelope
from billing.idempotency import MODELS_BY_OBJECT
from billing.models import Environment, Event
from workflows.actions import registry
from workflows.actions.team_email import message_id_for
from workflows.definition import walk
from workflows.definition.rows import version_definition
from workflows.engine.conditions import evaluate
from workflows.models import Delivery, Run, StepRun, Workflow, WorkflowVersion

TERMINAL = {Run.Status.SUCCEEDED, Run.Status.FAILED, Run.Status.CANCELED}
MAX_LISTED = 40


@dataclass
class LedgerReport:
    runs: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    events: int = 0
    steps: int = 0
    attempts: int = 0
    billing_events_caused: int = 0
    emails_sent: int = 0
    emails_received: int = 0
    # (step key, copies received) where a send taken over after a worker died sent a copy.
    emails_resent: list = field(default_factory=list)
    # Step keys of e-mails the server received whose step failed with `timeout`: the server had
    # the whole message and did not confirm it in time, so the step was not sent again.
    emails_unconfirmed: list[str] = field(default_factory=list)
    # (run id, step id, iteration, attempts) of steps started more than once.
    steps_retried: list[tuple[int, str, str, int]] = field(default_factory=list)
    # (run id, step id, iteration, key) of succeeded attempts whose step got a new key since
    # (a restart from the start): their effects count once each, beside the new key's.
    keys_superseded: list[tuple[int, str, str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.runs} runs {dict(sorted(self.statuses.items()))}, {self.events} events, "
            f"{self.steps} steps ({self.attempts} attempts, {len(self.steps_retried)} retried), "
            f"{self.billing_events_caused} billing events caused by runs, "
            f"{self.emails_sent} e-mails sent / {self.emails_received} received"
        )


def _ids(items: Iterable | None) -> set:
    return {getattr(item, "pk", item) for item in (items or ())}


def _action_steps(definition: dict) -> dict[str, str]:
    """step id -> action key, for every action step at any depth (branches, loops)."""
    return {
        step["id"]: step.get("action", "")
        for step in walk.steps(definition)
        if step.get("type") == "action"
    }


def _scope_accepts(scope: str, event: Event) -> bool:
    if scope == WorkflowVersion.AccountScope.ALL:
        return True
    if scope == WorkflowVersion.AccountScope.CONNECTED:
        return event.account_id is not None
    return event.account_id is None


class _Audit:
    def __init__(self, environments: list[Environment]) -> None:
        self.environments = environments
        self.report = LedgerReport()

    def problem(self, message: str) -> None:
        self.report.problems.append(message)

    # -- 1. runs terminal ---------------------------------------------------------------------

    def check_runs(self, runs: list[Run], expect_failed: set, allow_canceled: bool) -> None:
        self.report.runs = len(runs)
        self.report.statuses = dict(Counter(r.status for r in runs))
        for run in runs:
            if run.status not in TERMINAL:
                self.problem(
                    f"run {run.pk} (workflow {run.workflow_id}) is still {run.status}, "
                    f"lease {run.lease_owner or '-'} until {run.lease_expires_at}"
                )
            elif run.pk in expect_failed:
                if run.status != Run.Status.FAILED:
                    self.problem(f"run {run.pk} was expected to fail but is {run.status}")
            elif run.status == Run.Status.FAILED:
                self.problem(f"run {run.pk} failed: {run.stop_reason or run.error}")
            elif run.status == Run.Status.CANCELED and not allow_canceled:
                self.problem(f"run {run.pk} was canceled")

    # -- 2. events have their runs ------------------------------------------------------------

    def check_event_runs(self, events: list[Event], runs: list[Run]) -> None:
        self.report.events = len(events)
        workflows = list(
            Workflow.objects.filter(
                environment__in=self.environments,
                status=Workflow.Status.ACTIVE,
                deleted_at__isnull=True,
                published_version__trigger_type=WorkflowVersion.TriggerType.EVENT,
            ).select_related("published_version")
        )
        by_type: dict[tuple[int, str], list[Workflow]] = defaultdict(list)
        for workflow in workflows:
            version = workflow.published_version
            by_type[(workflow.environment_id, version.trigger_event)].append(workflow)
        conditions = {
            w.pk: version_definition(w.published_version)["trigger"].get("conditions")
            for w in workflows
        }
        runs_of: dict[str, Counter] = defaultdict(Counter)
        for run in runs:
            if run.event_id:
                runs_of[run.event_id][run.workflow_id] += 1
        for event in events:
            if event.dispatched_at is None:
                self.problem(f"event {event.pk} ({event.type}) was never dispatched")
            candidates = by_type.get((event.environment_id, event.type), [])
            expected = set()
            envelope = event_envelope(event) if candidates else None
            for workflow in candidates:
                if not _scope_accepts(workflow.published_version.trigger_accounts, event):
                    continue
                try:
                    accepted = evaluate(conditions[workflow.pk], {"trigger": envelope})
                except Exception:
                    accepted = False  # the dispatcher treats a broken condition as no match
                if accepted:
                    expected.add(workflow.pk)
            found = runs_of.get(event.pk, Counter())
            for workflow_id in sorted(expected - set(found)):
                self.problem(
                    f"event {event.pk} ({event.type}) has no run of workflow {workflow_id}"
                )
            for workflow_id, count in sorted(found.items()):
                if workflow_id not in expected:
                    self.problem(
                        f"event {event.pk} ({event.type}) has a run of workflow {workflow_id}, "
                        "which does not match it"
                    )
                elif count != 1:
                    self.problem(
                        f"event {event.pk} ({event.type}) has {count} runs of workflow "
                        f"{workflow_id}, not one"
                    )

    # -- 3. effects once ----------------------------------------------------------------------

    def check_steps(self, runs: list[Run], smtp) -> None:
        run_by_id = {r.pk: r for r in runs}
        steps = list(
            StepRun.objects.filter(run_id__in=run_by_id).order_by("finished_at", "pk").iterator()
        )
        self.report.steps = len(steps)
        self.report.attempts = sum(s.attempts for s in steps)
        actions_of_version: dict[int, dict[str, str]] = {}
        succeeded_keys: dict[str, StepRun] = {}
        failed_steps: Counter = Counter()
        external_keys: dict[str, StepRun] = {}
        metadata_written: dict[tuple[str, str], dict[str, object]] = defaultdict(dict)
        changed_steps: list[StepRun] = []
        unconfirmed: dict[str, str] = {}  # Message-ID -> key of an e-mail sent, not confirmed
        for step in steps:
            run = run_by_id[step.run_id]
            where = f"run {run.pk} step {step.step_id!r} iteration {step.iteration!r}"
            if step.attempts < 1:
                self.problem(f"{where}: no started attempt recorded ({step.status})")
            if step.attempts > 1:
                self.report.steps_retried.append(
                    (run.pk, step.step_id, step.iteration, step.attempts)
                )
            if step.status == StepRun.Status.FAILED:
                failed_steps[run.pk] += 1
            if run.status == Run.Status.SUCCEEDED and step.status in (
                StepRun.Status.PENDING,
                StepRun.Status.RUNNING,
            ):
                self.problem(f"{where}: still {step.status} in a succeeded run")
            for attempt in step.attempt_log or []:
                if attempt.get("key") and attempt.get("status") == StepRun.Status.SUCCEEDED:
                    succeeded_keys[attempt["key"]] = step
                    self.report.keys_superseded.append(
                        (run.pk, step.step_id, step.iteration, attempt["key"])
                    )
            if step.status == StepRun.Status.FAILED and (step.error or {}).get("type") == "timeout":
                unconfirmed[message_id_for(step.idempotency_key)] = step.idempotency_key
            if step.status != StepRun.Status.SUCCEEDED:
                continue
            succeeded_keys[step.idempotency_key] = step
            if run.version_id not in actions_of_version:
                actions_of_version[run.version_id] = _action_steps(version_definition(run.version))
            action = registry.get(actions_of_version[run.version_id].get(step.step_id, ""))
            if action is not None and not action.transactional and not run.dry_run:
                external_keys[step.idempotency_key] = step
            for change in step.changed_objects or []:
                changed_steps.append(step)
                meta = (change.get("after") or {}).get("metadata")
                if isinstance(meta, dict):
                    target = metadata_written[(change.get("object"), change.get("id"))]
                    target.update(meta)  # steps are in finishing order: the last write wins
        for run in runs:
            # A run failed at a step has exactly that step failed (a recursion stop has none).
            failed_at_step = (run.error or {}).get("step") is not None
            if run.status == Run.Status.FAILED and failed_at_step and failed_steps[run.pk] != 1:
                self.problem(f"run {run.pk} failed with {failed_steps[run.pk]} failed steps")
        self.check_billing_events(run_by_id, succeeded_keys, changed_steps)
        self.check_metadata(metadata_written)
        self.check_deliveries(external_keys, smtp, unconfirmed)

    def check_billing_events(self, run_by_id: dict, succeeded_keys: dict, changed: list) -> None:
        events = list(
            Event.objects.filter(caused_by_run_id__in=run_by_id).values_list(
                "pk", "caused_by_run_id", "idempotency_key", "type", "object_id"
            )
        )
        self.report.billing_events_caused = len(events)
        per_effect = Counter()
        keys_with_events = set()
        for pk, run_id, key, type_, object_id in events:
            step = succeeded_keys.get(key)
            if step is None or step.run_id != run_id:
                self.problem(
                    f"billing event {pk} ({type_} {object_id}) caused by run {run_id} carries "
                    f"key {key!r}, which is not a succeeded step of that run"
                )
            per_effect[(key, type_, object_id)] += 1
            keys_with_events.add(key)
        for (key, type_, object_id), count in sorted(per_effect.items()):
            if count > 1:
                self.problem(f"step {key}: {count} {type_} events for {object_id}, not one")
        for step in changed:
            if step.idempotency_key not in keys_with_events:
                self.problem(
                    f"step {step.idempotency_key} changed {step.changed_objects[0].get('id')} "
                    "but left no billing event"
                )

    def check_metadata(self, written: dict[tuple[str, str], dict[str, object]]) -> None:
        by_model: dict[str, list[str]] = defaultdict(list)
        for object_type, object_id in written:
            by_model[object_type].append(object_id)
        for object_type, ids in by_model.items():
            model = MODELS_BY_OBJECT.get(object_type)
            if model is None:
                continue
            current = {
                pk: metadata
                for pk, metadata in model.objects.filter(pk__in=ids).values_list("pk", "metadata")
            }
            for object_id in ids:
                if object_id not in current:
                    self.problem(f"{object_type} {object_id} changed by a step no longer exists")
                    continue
                for key, value in written[(object_type, object_id)].items():
                    now = (current[object_id] or {}).get(key)
                    if now != (None if value in ("", None) else value):  # "": key removed
                        self.problem(
                            f"{object_type} {object_id} metadata[{key!r}] is {now!r}, "
                            f"the last step wrote {value!r}"
                        )

    def check_deliveries(
        self, external_keys: dict[str, StepRun], smtp, unconfirmed: dict[str, str]
    ) -> None:
        deliveries = Delivery.objects.filter(idempotency_key__in=list(external_keys))
        per_key: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in deliveries:
            per_key[delivery.idempotency_key].append(delivery)
        email_ids: dict[str, str] = {}
        attempts: dict[str, int] = {}
        for key in sorted(external_keys):
            found = per_key.get(key, [])
            sent = [d for d in found if d.status == Delivery.Status.SENT]
            if len(sent) != 1:
                self.problem(
                    f"step {key} succeeded with {len(sent)} sent deliveries "
                    f"({', '.join(f'{d.kind}:{d.status}' for d in found) or 'none'}), not one"
                )
            for delivery in sent:
                if delivery.kind == Delivery.Kind.EMAIL:
                    email_ids[delivery.message_id] = key
                    attempts[delivery.message_id] = delivery.attempts
        self.report.emails_sent = len(email_ids)
        if smtp is None:
            return
        with smtp.lock:
            received = Counter(message.message_id for message in smtp.messages)
        self.report.emails_received = sum(received.values())
        for message_id, key in sorted(email_ids.items(), key=lambda item: item[1]):
            count = received.get(message_id, 0)
            if count > 1 and count <= attempts[message_id]:
                self.report.emails_resent.append((key, count))  # the documented exception
            elif count != 1:
                self.problem(
                    f"step {key}: the SMTP server received {count} "
                    f"messages with Message-ID {message_id}, not one"
                )
        for message_id, count in sorted(received.items()):
            if message_id in unconfirmed and count == 1 and message_id not in email_ids:
                self.report.emails_unconfirmed.append(unconfirmed[message_id])
            elif message_id not in email_ids:
                self.problem(
                    f"the SMTP server received {count} message(s) with Message-ID {message_id} "
                    "that no sent delivery of a succeeded step claims"
                )


def audit_ledger(
    environments: Environment | Iterable[Environment],
    *,
    smtp=None,
    events: Iterable | None = None,
    expect_failed: Iterable = (),
    allow_canceled: bool = False,
    expect_runs: int | None = None,
    expect_emails: int | None = None,
) -> LedgerReport:
    """Audit every run of `environments`; raise AssertionError listing each problem found.

    See the module docstring for what is checked. `smtp` is the `tests.smtp.SmtpServer` the
    workers sent to (omit it when e-mail went elsewhere).
    """
    if isinstance(environments, Environment):
        environments = [environments]
    audit = _Audit(list(environments))
    runs = list(Run.objects.filter(environment__in=audit.environments).select_related("version"))
    audit.check_runs(runs, _ids(expect_failed), allow_canceled)
    event_rows = Event.objects.filter(environment__in=audit.environments)
    if events is not None:
        event_rows = event_rows.filter(pk__in=list(_ids(events)))
    audit.check_event_runs(list(event_rows.order_by("created", "pk")), runs)
    audit.check_steps(runs, smtp)
    report = audit.report
    if expect_runs is not None and report.runs != expect_runs:
        audit.problem(f"{report.runs} runs, expected {expect_runs}")
    if expect_emails is not None and report.emails_sent != expect_emails:
        audit.problem(f"{report.emails_sent} e-mails sent, expected {expect_emails}")
    if report.problems:
        listed = "\n  ".join(report.problems[:MAX_LISTED])
        more = len(report.problems) - MAX_LISTED
        tail = f"\n  … and {more} more" if more > 0 else ""
        raise AssertionError(
            f"ledger audit found {len(report.problems)} problem(s) in {report.summary()}:\n"
            f"  {listed}{tail}"
        )
    return report
