import { Fragment, type ComponentType } from "preact";
import { useEffect, useState } from "preact/hooks";
import {
  appToken,
  destroySession,
  getSession,
  listServices,
  sessionEventsUrl,
  sessionLogs,
  type Session,
  type SessionService,
} from "../api/client";
import { Link, Loading, ProblemView, StatusBadge } from "../components/common";
import { FINAL_STATUSES, formatAge, formatBytes, formatSlots, trimNumber } from "../format";
import { useNow, usePolled } from "../hooks";
import type { TerminalProps } from "../terminal/Terminal";

/** Status changes as server-sent events; calls `onStatus` for each `status` event, returns the latest progress line. */
function useSessionEvents(ref: string, onStatus: () => void, enabled: boolean): string {
  const [progress, setProgress] = useState("");
  useEffect(() => {
    if (!enabled || typeof EventSource === "undefined") return;
    const source = new EventSource(sessionEventsUrl(ref));
    source.addEventListener("status", (event) => {
      setProgress("");
      onStatus();
      try {
        const data = JSON.parse((event as MessageEvent<string>).data) as { status?: string };
        if (data.status && FINAL_STATUSES.has(data.status)) source.close();
      } catch {
        /* not JSON: ignore */
      }
    });
    source.addEventListener("progress", (event) => {
      try {
        const data = JSON.parse((event as MessageEvent<string>).data) as { reason?: string };
        setProgress(data.reason ?? "");
      } catch {
        /* ignore */
      }
    });
    return () => source.close();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ref, enabled]);
  return progress;
}

export function StatusHistory({ session }: { session: Session }) {
  const history = session.status_history ?? [];
  if (history.length === 0) return <p class="muted">No history yet.</p>;
  return (
    <ol class="history" aria-label="Status history">
      {history.map((change, i) => (
        <li key={i}>
          <StatusBadge status={change.status} />{" "}
          <time dateTime={change.at ?? undefined}>{change.at ? new Date(change.at).toLocaleTimeString() : ""}</time>
          {change.reason ? <span class="reason"> — {change.reason}</span> : null}
        </li>
      ))}
    </ol>
  );
}

export function Allocation({ session }: { session: Session }) {
  return (
    <dl class="facts">
      <dt>Requested</dt>
      <dd>{formatSlots(session.requested_slots)}</dd>
      <dt>Agent</dt>
      <dd>{session.agent_id ?? "—"}</dd>
      {(session.cluster_size ?? 1) > 1 ? (
        <>
          <dt>Cluster</dt>
          <dd>
            {session.cluster_size} kernels, {session.cluster_mode}
          </dd>
        </>
      ) : null}
      {session.kernels.map((kernel) => {
        const a = kernel.allocation;
        if (!a) return null;
        return (
          <Fragment key={kernel.id}>
            <dt>Kernel {kernel.name ?? kernel.cluster_idx}</dt>
            <dd>
              {a.cpu ? `${trimNumber(a.cpu)} CPU` : ""}
              {a.cpu_cores?.length ? ` on cores ${a.cpu_cores.join(",")}` : ""}
              {a.numa_nodes?.length ? ` (NUMA ${a.numa_nodes.join(",")})` : ""}
              {a.mem ? ` · ${formatBytes(a.mem)}` : ""}
              {a.gpus?.length
                ? ` · GPUs ${a.gpus.map((g) => `${g.index} ${g.model}${g.share && g.share !== "1" ? ` ×${g.share}` : ""}`).join(", ")}`
                : ""}
            </dd>
          </Fragment>
        );
      })}
    </dl>
  );
}

export function ServicesPanel({ sessionId, services }: { sessionId: string; services: SessionService[] }) {
  const [error, setError] = useState<Error | undefined>();
  async function open(name: string) {
    setError(undefined);
    // Open the tab in the click (popup blockers), then point it at the one-time link.
    const tab = window.open("about:blank", "_blank");
    try {
      const { url } = await appToken(sessionId, name);
      if (tab) {
        tab.opener = null;
        tab.location.href = url;
      } else {
        window.location.assign(url);
      }
    } catch (err) {
      tab?.close();
      setError(err as Error);
    }
  }
  const shown = services.filter((s) => s.protocol !== "pty");
  return (
    <>
      {shown.length === 0 ? (
        <p class="muted">This image declares no services.</p>
      ) : (
        <ul class="services">
          {shown.map((service) => (
            <li key={service.name}>
              <strong>{service.name}</strong> <span class="muted">{service.protocol}</span>{" "}
              <span class={`badge svc-${service.state}`}>{service.state}</span>
              {service.protocol === "http" && (
                <button type="button" onClick={() => open(service.name)} aria-label={`Open ${service.name}`}>
                  Open
                </button>
              )}
              {service.error && <div class="problem-detail">{service.error}</div>}
            </li>
          ))}
        </ul>
      )}
      <ProblemView error={error} />
    </>
  );
}

export function VscodePanel({ session }: { session: Session }) {
  const [copied, setCopied] = useState(false);
  if (!session.ssh) return <p class="muted">No SSH access for this session.</p>;
  const host = `corral-${session.name}`;
  const command = `corral ssh-config ${session.name} --install`;
  return (
    <div class="vscode">
      <p>
        1. Add the session to your SSH config (once per session):
        <br />
        <code class="copyable">{command}</code>{" "}
        <button
          type="button"
          onClick={() => {
            void navigator.clipboard?.writeText(command).then(() => setCopied(true));
          }}
        >
          {copied ? "Copied" : "Copy"}
        </button>
      </p>
      <p>
        2. <a href={`vscode://vscode-remote/ssh-remote+${host}/home/work`}>Open in VS Code</a> (Remote - SSH; user{" "}
        <code>{session.ssh.user}</code>)
      </p>
    </div>
  );
}

function TerminalLoader(props: TerminalProps) {
  const [Comp, setComp] = useState<ComponentType<TerminalProps> | null>(null);
  const [error, setError] = useState<Error | undefined>();
  useEffect(() => {
    import("../terminal/Terminal").then((m) => setComp(() => m.Terminal)).catch(setError);
  }, []);
  if (error) return <ProblemView error={error} />;
  return Comp ? <Comp {...props} /> : <Loading what="the terminal" />;
}

export function SessionPage({ sessionRef }: { sessionRef: string }) {
  const session = usePolled(() => getSession(sessionRef), 5000, [sessionRef]);
  const s = session.data;
  const final = s ? FINAL_STATUSES.has(s.status) : false;
  const running = s?.status === "RUNNING";
  const progress = useSessionEvents(sessionRef, session.reload, !!s && !final);
  const logs = usePolled(() => sessionLogs(sessionRef), running ? 5000 : 0, [sessionRef, s?.status]);
  const services = usePolled(
    () => (running ? listServices(sessionRef) : Promise.resolve({ services: [] })),
    0,
    [sessionRef, running],
  );
  const now = useNow(5000);
  const [destroyError, setDestroyError] = useState<Error | undefined>();
  const [destroying, setDestroying] = useState(false);

  async function destroy() {
    if (!s || !window.confirm(`Destroy session ${s.name}?`)) return;
    setDestroying(true);
    setDestroyError(undefined);
    try {
      await destroySession(s.id);
      session.reload();
    } catch (err) {
      setDestroyError(err as Error);
    } finally {
      setDestroying(false);
    }
  }

  if (!s) {
    return (
      <main id="main">
        <p>
          <Link href="/">← Sessions</Link>
        </p>
        <ProblemView error={session.error} />
        {!session.error && <Loading what="the session" />}
      </main>
    );
  }
  return (
    <main id="main" class="session-page">
      <p>
        <Link href="/">← Sessions</Link>
      </p>
      <div class="page-head">
        <h1>
          {s.name} <StatusBadge status={s.status} />
        </h1>
        {!final && (
          <button type="button" class="danger" onClick={destroy} disabled={destroying || s.status === "TERMINATING"}>
            {destroying ? "Destroying…" : "Destroy"}
          </button>
        )}
      </div>
      <p class="summary" aria-live="polite">
        <span data-testid="session-status">{s.status}</span>
        {s.status_reason ? ` — ${s.status_reason}` : ""}
        {progress ? ` — ${progress}` : ""} · {s.image} · {s.type} · created {formatAge(s.created_at, now)} ago
        {s.exit_code !== null && s.exit_code !== undefined ? ` · exit code ${s.exit_code}` : ""}
      </p>
      <ProblemView error={destroyError ?? session.error} />
      <div class="columns">
        <section aria-labelledby="h-terminal" class="wide">
          <h2 id="h-terminal">Terminal</h2>
          {running ? (
            <TerminalLoader sessionRef={s.id} />
          ) : (
            <p class="muted">The terminal opens once the session is RUNNING.</p>
          )}
        </section>
        <section aria-labelledby="h-history">
          <h2 id="h-history">Status history</h2>
          <StatusHistory session={s} />
        </section>
        <section aria-labelledby="h-alloc">
          <h2 id="h-alloc">Allocation</h2>
          <Allocation session={s} />
        </section>
        <section aria-labelledby="h-services">
          <h2 id="h-services">Services</h2>
          {running ? (
            <>
              <ProblemView error={services.error} />
              <ServicesPanel sessionId={s.id} services={services.data?.services ?? []} />
            </>
          ) : (
            <p class="muted">Services are listed while the session is RUNNING.</p>
          )}
        </section>
        <section aria-labelledby="h-vscode">
          <h2 id="h-vscode">VS Code</h2>
          <VscodePanel session={s} />
        </section>
        <section aria-labelledby="h-logs" class="wide">
          <h2 id="h-logs">
            Logs{" "}
            <button type="button" onClick={logs.reload} class="small">
              Refresh
            </button>
          </h2>
          <ProblemView error={logs.error} />
          <pre class="logs" tabIndex={0} aria-label="Container output">
            {logs.data?.logs || "(no output)"}
          </pre>
        </section>
      </div>
    </main>
  );
}
