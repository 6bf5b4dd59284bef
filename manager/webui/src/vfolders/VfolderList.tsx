// /vfolders: yours, your projects' and those shared with you (or the trash), and a form to create one.
import { useState } from "preact/hooks";
import type { Vfolder } from "../api/client";
import { Link, Loading, ProblemView } from "../components/common";
import { formatBytes } from "../format";
import { usePolled } from "../hooks";
import { vfolderApi } from "./api";
import { parseSize } from "./paths";

function owner(v: Vfolder): string {
  return v.owner_kind === "project" ? `project ${v.project ?? v.owner}` : v.owner;
}

function CreateForm({ onCreated }: { onCreated: () => void }) {
  const hosts = usePolled(() => vfolderApi.hosts(), 0);
  const [name, setName] = useState("");
  const [host, setHost] = useState("");
  const [quota, setQuota] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  const submit = async (event: Event) => {
    event.preventDefault();
    setError(undefined);
    try {
      const quotaBytes = parseSize(quota);
      setBusy(true);
      await vfolderApi.create({ name, host: host || undefined, quota: quotaBytes ?? undefined });
      setName("");
      setQuota("");
      onCreated();
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  const items = hosts.data?.items ?? [];
  return (
    <form class="card" onSubmit={submit} aria-label="Create a vfolder">
      <h2>Create a vfolder</h2>
      <div class="grid">
        <div class="field">
          <label for="vf-name">Name</label>
          <input id="vf-name" required value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="vf-host">Host</label>
          <select id="vf-host" value={host} onChange={(e) => setHost(e.currentTarget.value)}>
            <option value="">default</option>
            {items.map((h) => (
              <option key={h.host} value={h.host} disabled={Boolean(h.error)}>
                {h.host}
                {h.default ? " (default)" : ""}
                {h.error ? ` — ${h.error}` : ""}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="vf-quota">Quota (optional, like 10g)</label>
          <input id="vf-quota" value={quota} placeholder="unlimited" onInput={(e) => setQuota(e.currentTarget.value)} />
        </div>
      </div>
      <ProblemView error={error} />
      <button type="submit" disabled={busy || !name}>
        {busy ? "Creating…" : "Create vfolder"}
      </button>
    </form>
  );
}

export function VfolderListPage() {
  const [trashed, setTrashed] = useState(false);
  const vfolders = usePolled(() => vfolderApi.list(trashed), 10000, [trashed]);
  const [actionError, setActionError] = useState<Error | undefined>();
  const items = vfolders.data?.items ?? [];
  const act = async (what: () => Promise<unknown>, confirmText?: string) => {
    if (confirmText && !window.confirm(confirmText)) return;
    setActionError(undefined);
    try {
      await what();
    } catch (err) {
      setActionError(err as Error);
    }
    vfolders.reload();
  };
  return (
    <main id="main">
      <div class="page-head">
        <h1>{trashed ? "Vfolders in the trash" : "Vfolders"}</h1>
        <button type="button" onClick={() => setTrashed(!trashed)} aria-pressed={trashed}>
          {trashed ? "← Vfolders" : "Trash"}
        </button>
      </div>
      {!trashed && <CreateForm onCreated={vfolders.reload} />}
      <ProblemView error={vfolders.error ?? actionError} />
      {!vfolders.data && !vfolders.error && <Loading what="vfolders" />}
      {vfolders.data && items.length === 0 && (
        <p class="empty">{trashed ? "The trash is empty." : "No vfolders yet: create one above."}</p>
      )}
      {items.length > 0 && (
        <table class="responsive" aria-label={trashed ? "Trashed vfolders" : "Vfolders"}>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Owner</th>
              <th scope="col">Host</th>
              <th scope="col">Permission</th>
              <th scope="col">Usage / quota</th>
              <th scope="col">{trashed ? "Trashed" : "Shared with"}</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {items.map((v) => (
              <tr key={v.id} data-vfolder={v.name}>
                <td data-label="Name">
                  {trashed ? v.name : <Link href={`/vfolders/${encodeURIComponent(v.id)}`}>{v.name}</Link>}
                </td>
                <td data-label="Owner">{owner(v)}</td>
                <td data-label="Host">{v.host}</td>
                <td data-label="Permission">{v.permission}</td>
                <td data-label="Usage / quota">
                  {v.usage?.bytes !== undefined && v.usage?.bytes !== null ? formatBytes(v.usage.bytes) : "—"} /{" "}
                  {v.quota_bytes ? formatBytes(v.quota_bytes) : "no quota"}
                  {v.over_quota ? <strong> (over quota)</strong> : null}
                </td>
                <td data-label={trashed ? "Trashed" : "Shared with"}>
                  {trashed
                    ? (v.trashed_at ?? "").replace("T", " ").slice(0, 16)
                    : (v.shared_with ?? []).map((s) => `${s.username} (${s.permission})`).join(", ") || "—"}
                </td>
                <td data-label="Actions">
                  {trashed ? (
                    <>
                      <button type="button" class="small" onClick={() => act(() => vfolderApi.restore(v.id))}>
                        Restore
                      </button>{" "}
                      <button
                        type="button"
                        class="small danger"
                        onClick={() =>
                          act(() => vfolderApi.purge(v.id), `Delete ${v.name} and all its files for good?`)
                        }
                      >
                        Purge
                      </button>
                    </>
                  ) : v.is_owner ? (
                    <button
                      type="button"
                      class="small"
                      onClick={() => act(() => vfolderApi.trash(v.id), `Move ${v.name} to the trash?`)}
                    >
                      Trash
                    </button>
                  ) : (
                    <span class="muted">shared with you</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
