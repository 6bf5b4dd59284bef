import { useState } from "preact/hooks";
import { listSessions, type Session } from "../api/client";
import { Link, Loading, ProblemView, StatusBadge } from "../components/common";
import { formatAge, formatSlots } from "../format";
import { useNow, usePolled } from "../hooks";

export const POLL_MS = 2000;

export function SessionTable({ sessions, now }: { sessions: Session[]; now: number }) {
  if (sessions.length === 0) {
    return (
      <p class="empty">
        No sessions. <Link href="/launch">Launch one</Link>.
      </p>
    );
  }
  return (
    <table class="sessions responsive" aria-label="Sessions">
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Status</th>
          <th scope="col">Reason</th>
          <th scope="col">Image</th>
          <th scope="col">Resources</th>
          <th scope="col">Age</th>
        </tr>
      </thead>
      <tbody>
        {sessions.map((s) => (
          <tr key={s.id} data-session={s.name}>
            <td data-label="Name">
              <Link href={`/sessions/${encodeURIComponent(s.id)}`}>{s.name || s.id.slice(0, 8)}</Link>
            </td>
            <td data-label="Status">
              <StatusBadge status={s.status} />
            </td>
            <td data-label="Reason" class={s.status === "PENDING" ? "pending-reason" : undefined}>
              {s.status_reason || "—"}
            </td>
            <td data-label="Image">{s.image}</td>
            <td data-label="Resources">{formatSlots(s.requested_slots)}</td>
            <td data-label="Age">
              <time dateTime={s.created_at ?? undefined} title={s.created_at ?? undefined}>
                {formatAge(s.created_at, now)}
              </time>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function SessionsPage() {
  const [showEnded, setShowEnded] = useState(false);
  const sessions = usePolled(() => listSessions(showEnded), POLL_MS, [showEnded]);
  const now = useNow(1000);
  const pending = sessions.data?.items.filter((s) => s.status === "PENDING") ?? [];
  return (
    <main id="main">
      <div class="page-head">
        <h1>Sessions</h1>
        <Link href="/launch" class="button primary">
          Launch
        </Link>
      </div>
      <label class="inline">
        <input type="checkbox" checked={showEnded} onChange={(e) => setShowEnded(e.currentTarget.checked)} /> Show
        ended sessions
      </label>
      {pending.length > 0 && (
        <p class="notice" role="status">
          {pending.length} session{pending.length > 1 ? "s" : ""} waiting: see the Reason column for why.
        </p>
      )}
      <ProblemView error={sessions.error} />
      {sessions.data ? <SessionTable sessions={sessions.data.items} now={now} /> : !sessions.error && <Loading what="sessions" />}
    </main>
  );
}
