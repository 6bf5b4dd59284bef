import { useEffect, useRef, useState } from "preact/hooks";
import { listSessions, sessionsEventsUrl, type Session, type StatusChange } from "../api/client";
import { Link, Loading, ProblemView, StatusBadge } from "../components/common";
import { VirtualTable } from "../components/Virtual";
import { formatAge, formatSlots } from "../format";
import { useNow, usePolled } from "../hooks";

/** Without EventSource (or while its stream is down) the list is refetched this often. */
export const POLL_MS = 2000;
/** With the live stream up, a refetch this often anyway (new sessions' details, anything missed). */
export const SAFETY_POLL_MS = 15000;
/** Above this many rows only a window of them is in the DOM. */
export const VIRTUAL_MIN = 100;
const ENDED_LINGER_MS = 1500;
const TERMINAL = new Set(["TERMINATED", "CANCELLED", "ERROR"]);

function SessionRow({ s, now, index, showOwner }: { s: Session; now: number; index?: number; showOwner?: boolean }) {
  return (
    <tr key={s.id} data-session={s.name} data-row={index === undefined ? undefined : ""} aria-rowindex={index === undefined ? undefined : index + 2}>
      <td data-label="Name">
        <Link href={`/sessions/${encodeURIComponent(s.id)}`}>{s.name || s.id.slice(0, 8)}</Link>
      </td>
      {showOwner && <td data-label="Owner">{s.owner ?? "—"}</td>}
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
  );
}

const head = (showOwner: boolean) => (
  <thead>
    <tr>
      <th scope="col">Name</th>
      {showOwner && <th scope="col">Owner</th>}
      <th scope="col">Status</th>
      <th scope="col">Reason</th>
      <th scope="col">Image</th>
      <th scope="col">Resources</th>
      <th scope="col">Age</th>
    </tr>
  </thead>
);

/** The list; `showOwner` adds an Owner column (an admin's view of every user's sessions). */
export function SessionTable({ sessions, now, showOwner = false }: { sessions: Session[]; now: number; showOwner?: boolean }) {
  const HEAD = head(showOwner);
  if (sessions.length === 0) {
    return (
      <p class="empty">
        No sessions. <Link href="/launch">Launch one</Link>.
      </p>
    );
  }
  if (sessions.length > VIRTUAL_MIN) {
    return (
      <VirtualTable
        count={sessions.length}
        columns={showOwner ? 7 : 6}
        label="Sessions"
        tableClass="sessions responsive"
        head={HEAD}
        renderRow={(i) => <SessionRow key={sessions[i].id} s={sessions[i]} now={now} index={i} showOwner={showOwner} />}
      />
    );
  }
  return (
    <table class="sessions responsive" aria-label="Sessions">
      {HEAD}
      <tbody>
        {sessions.map((s) => (
          <SessionRow key={s.id} s={s} now={now} showOwner={showOwner} />
        ))}
      </tbody>
    </table>
  );
}

/** Up to this many sessions are listed (pages of 1,000, the API's largest). */
export const LIST_MAX = 5000;

/** Every page of the list, up to LIST_MAX sessions (every user's with `allUsers`: admins only). */
export async function listAllSessions(all: boolean, allUsers = false): Promise<Session[]> {
  const items: Session[] = [];
  let cursor: string | undefined;
  do {
    const page = await listSessions(all, cursor, 1000, allUsers);
    items.push(...page.items);
    cursor = page.next_cursor ?? undefined;
  } while (cursor && items.length < LIST_MAX);
  return items;
}

interface Patch {
  status: Session["status"];
  reason: string;
  received: number;
}

/** The list with the live status changes received after it was fetched laid over it. */
export function applyPatches(items: Session[], patches: Map<string, Patch>, fetchedAt: number): Session[] {
  if (patches.size === 0) return items;
  return items.map((s) => {
    const patch = patches.get(s.id);
    return patch && patch.received >= fetchedAt ? { ...s, status: patch.status, status_reason: patch.reason } : s;
  });
}

/**
 * Follow GET /api/v1/sessions/events (every user's sessions with `allUsers`, admins only): `onChange` for
 * each status change; the answer says whether the stream is up (false: no EventSource, or reconnecting —
 * EventSource retries by itself, resuming from the last event id). A new `allUsers` opens a new stream.
 */
export function useSessionEvents(
  onChange: (change: StatusChange) => void,
  onReconnect: () => void,
  allUsers = false,
): boolean {
  const [live, setLive] = useState(false);
  const handler = useRef(onChange);
  handler.current = onChange;
  const reconnected = useRef(onReconnect);
  reconnected.current = onReconnect;
  useEffect(() => {
    if (typeof EventSource === "undefined") return;
    setLive(false);
    const source = new EventSource(sessionsEventsUrl(allUsers), { withCredentials: true });
    let wasDown = false;
    source.onopen = () => {
      setLive(true);
      if (wasDown) reconnected.current();
    };
    source.onerror = () => {
      wasDown = true;
      setLive(false);
    };
    source.addEventListener("status", (event) => {
      try {
        handler.current(JSON.parse((event as MessageEvent<string>).data) as StatusChange);
      } catch {
        /* not JSON: ignore */
      }
    });
    return () => source.close();
  }, [allUsers]);
  return live;
}

const ALL_USERS_KEY = "corral.sessions.allUsers";

function rememberedAllUsers(): boolean {
  try {
    return window.sessionStorage.getItem(ALL_USERS_KEY) === "1";
  } catch {
    return false;
  }
}

export function SessionsPage({ isAdmin = false }: { isAdmin?: boolean }) {
  const [showEnded, setShowEnded] = useState(false);
  // Admins may list every user's sessions; the choice lasts for the tab (back from a session's page too).
  const [allUsersChosen, setAllUsersChosen] = useState(rememberedAllUsers);
  const allUsers = isAdmin && allUsersChosen;
  const chooseAllUsers = (on: boolean) => {
    setAllUsersChosen(on);
    try {
      window.sessionStorage.setItem(ALL_USERS_KEY, on ? "1" : "0");
    } catch {
      /* storage disabled: the choice lasts until the page changes */
    }
  };
  const [patches, setPatches] = useState<Map<string, Patch>>(new Map());
  // No timer in usePolled (a changed interval would refetch at once): the one below follows the stream.
  const sessions = usePolled(
    () => {
      const fetchedAt = Date.now();
      return listAllSessions(showEnded, allUsers).then((items) => ({ items, fetchedAt }));
    },
    0,
    [showEnded, allUsers],
  );
  // Changes older than the list just fetched are in it already: drop them.
  const fetchedAt = sessions.data?.fetchedAt;
  useEffect(() => {
    if (fetchedAt === undefined) return;
    setPatches((old) => {
      const kept = new Map([...old].filter(([, patch]) => patch.received >= fetchedAt));
      return kept.size === old.size ? old : kept;
    });
  }, [fetchedAt]);
  const known = useRef<Set<string>>(new Set());
  known.current = new Set(sessions.data?.items.map((s) => s.id) ?? []);
  const reloadSoon = useRef<number | undefined>(undefined);
  const scheduleReload = (delayMs: number) => {
    if (reloadSoon.current !== undefined) return;
    reloadSoon.current = window.setTimeout(() => {
      reloadSoon.current = undefined;
      sessions.reload();
    }, delayMs);
  };
  useEffect(() => () => window.clearTimeout(reloadSoon.current), []);
  const streamUp = useSessionEvents(
    (change) => {
      setPatches((old) => new Map(old).set(change.session_id, {
        status: change.status as Session["status"],
        reason: change.reason,
        received: Date.now(),
      }));
      // A session not in the list (new): fetch it soon. One that ended while ended ones are hidden: its
      // final status shows for a moment, then the refetch drops it.
      if (!known.current.has(change.session_id)) scheduleReload(300);
      else if (!showEnded && TERMINAL.has(change.status)) scheduleReload(ENDED_LINGER_MS);
    },
    () => sessions.reload(),
    allUsers,
  );
  useEffect(() => {
    const timer = window.setInterval(() => {
      if (document.visibilityState !== "hidden") sessions.reload();
    }, streamUp ? SAFETY_POLL_MS : POLL_MS);
    return () => window.clearInterval(timer);
  }, [streamUp, sessions.reload]);
  const now = useNow(1000);
  const items = sessions.data ? applyPatches(sessions.data.items, patches, sessions.data.fetchedAt) : undefined;
  const pending = items?.filter((s) => s.status === "PENDING") ?? [];
  return (
    <main id="main">
      <div class="page-head">
        <h1>Sessions</h1>
        <span class="muted live-state" data-testid="live-state">
          {streamUp ? "live" : "refreshing every few seconds"}
        </span>
        <Link href="/launch" class="button primary">
          Launch
        </Link>
      </div>
      <label class="inline">
        <input type="checkbox" checked={showEnded} onChange={(e) => setShowEnded(e.currentTarget.checked)} /> Show
        ended sessions
      </label>
      {isAdmin && (
        <label class="inline">
          <input type="checkbox" checked={allUsers} onChange={(e) => chooseAllUsers(e.currentTarget.checked)} /> All
          users
        </label>
      )}
      {pending.length > 0 && (
        <p class="notice" role="status">
          {pending.length} session{pending.length > 1 ? "s" : ""} waiting: see the Reason column for why.
        </p>
      )}
      <ProblemView error={sessions.error} />
      {items ? (
        <SessionTable sessions={items} now={now} showOwner={allUsers} />
      ) : (
        !sessions.error && <Loading what="sessions" />
      )}
    </main>
  );
}
