// /vfolders/:ref — one vfolder: usage and quota, sharing (owners), a file browser with mkdir, rename/move,
// delete, downloads (files; folders as tar), and resumable uploads of files and folders.
import "./vfolders.css";
import { useEffect, useMemo, useReducer, useRef, useState } from "preact/hooks";
import type { PreviousUpload } from "tus-js-client";
import type { Vfolder } from "../api/client";
import { Link, Loading, ProblemView } from "../components/common";
import { formatBytes } from "../format";
import { usePolled } from "../hooks";
import { TokenCache, VfolderFiles, vfolderApi, type FileEntry, type Permission } from "./api";
import { baseName, crumbs, formatMtime, joinPath, parentOf, uploadTarget, validName } from "./paths";
import { nextToStart, percent, queueTotals, uploadReducer } from "./uploadQueue";
import { loadUploader } from "./lazyUploader";
import type { UploadHandle } from "./uploader";

const PARALLEL_UPLOADS = 3;

function Sharing({ vfolder, onChanged }: { vfolder: Vfolder; onChanged: () => void }) {
  const [username, setUsername] = useState("");
  const [permission, setPermission] = useState<Permission>("ro");
  const [error, setError] = useState<Error | undefined>();
  const run = async (what: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await what();
      onChanged();
    } catch (err) {
      setError(err as Error);
    }
  };
  const shares = vfolder.shared_with ?? [];
  return (
    <section class="card" aria-label="Sharing">
      <h2>Sharing</h2>
      {shares.length === 0 ? (
        <p class="muted">Not shared with anyone.</p>
      ) : (
        <ul aria-label="Shared with">
          {shares.map((s) => (
            <li key={s.username}>
              {s.username} ({s.permission === "rw" ? "read-write" : "read-only"}){" "}
              <button type="button" class="small" onClick={() => run(() => vfolderApi.unshare(vfolder.id, s.username))}>
                Unshare {s.username}
              </button>
            </li>
          ))}
        </ul>
      )}
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void run(async () => {
            await vfolderApi.share(vfolder.id, username.trim(), permission);
            setUsername("");
          });
        }}
      >
        <label for="share-user">Share with user</label>
        <input id="share-user" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />{" "}
        <label class="inline">
          <input type="radio" name="share-perm" checked={permission === "ro"} onChange={() => setPermission("ro")} />
          read-only
        </label>
        <label class="inline">
          <input type="radio" name="share-perm" checked={permission === "rw"} onChange={() => setPermission("rw")} />
          read-write
        </label>
        <button type="submit" disabled={!username.trim()}>
          Share
        </button>
      </form>
      <ProblemView error={error} />
    </section>
  );
}

function UsageLine({ vfolder }: { vfolder: Vfolder }) {
  const used = vfolder.usage?.bytes ?? null;
  const quota = vfolder.quota_bytes;
  return (
    <p data-testid="vfolder-usage">
      {used !== null ? formatBytes(used) : "usage unknown"} used
      {quota ? ` of ${formatBytes(quota)} (${percent(used ?? 0, quota)}%)` : ", no quota"}
      {vfolder.over_quota ? <strong> — over quota: read-only until files are removed</strong> : null}
      {quota && used !== null ? <progress max={quota} value={Math.min(used, quota)} aria-label="Quota used" /> : null}
    </p>
  );
}

export function VfolderPage({ vfolderRef }: { vfolderRef: string }) {
  const info = usePolled(() => vfolderApi.info(vfolderRef), 30000, [vfolderRef]);
  const vfolder = info.data;
  return (
    <main id="main">
      <p>
        <Link href="/vfolders">← Vfolders</Link>
      </p>
      <ProblemView error={info.error} />
      {!vfolder && !info.error && <Loading what="the vfolder" />}
      {vfolder && (
        <>
          <div class="page-head">
            <h1>Vfolder {vfolder.name}</h1>
            <span class="badge" data-testid="vfolder-permission">
              {vfolder.permission === "rw" ? "read-write" : "read-only"}
            </span>
          </div>
          <p class="muted">
            {vfolder.owner_kind === "project" ? `project ${vfolder.project ?? vfolder.owner}` : `owner ${vfolder.owner}`}{" "}
            · {vfolder.host}
          </p>
          <UsageLine vfolder={vfolder} />
          <Browser key={vfolder.id} vfolder={vfolder} onChanged={info.reload} />
          {vfolder.is_owner && <Sharing vfolder={vfolder} onChanged={info.reload} />}
        </>
      )}
    </main>
  );
}

function Browser({ vfolder, onChanged }: { vfolder: Vfolder; onChanged: () => void }) {
  const writable = vfolder.permission === "rw";
  const files = useMemo(
    () => new VfolderFiles(vfolder, new TokenCache(() => vfolderApi.token(vfolder.id, writable ? "rw" : "ro"))),
    [vfolder.id, vfolder.vfid, vfolder.host, writable],
  );
  const [dir, setDir] = useState("");
  const listing = usePolled(() => files.list(dir), 0, [files, dir]);
  const [error, setError] = useState<Error | undefined>();
  const [newDir, setNewDir] = useState("");
  const [queue, dispatch] = useReducer(uploadReducer, []);
  const pending = useRef(new Map<string, { file: File; path: string }>());
  const handles = useRef(new Map<string, UploadHandle>());
  const [interrupted, setInterrupted] = useState<PreviousUpload[]>([]);

  const unmounted = useRef(false);

  const refreshInterrupted = () =>
    void loadUploader()
      .then((uploader) => uploader.interruptedUploads(vfolder.vfid))
      .then(setInterrupted, () => setInterrupted([]));
  useEffect(refreshInterrupted, [vfolder.vfid]);
  useEffect(
    () => () => {
      unmounted.current = true;
      handles.current.forEach((h) => h.abort());
    },
    [],
  );

  const run = async (what: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await what();
    } catch (err) {
      setError(err as Error);
    }
    listing.reload();
    onChanged();
  };

  // Start queued uploads, a few at a time.
  useEffect(() => {
    for (const item of nextToStart(queue, PARALLEL_UPLOADS)) {
      const job = pending.current.get(item.id);
      if (!job) continue;
      pending.current.delete(item.id);
      dispatch({ type: "start", id: item.id });
      void loadUploader().then(
        ({ startUpload }) => {
          if (unmounted.current) return;
          const handle = startUpload(files, job.file, job.path, {
            onResumed: (offset) => dispatch({ type: "resumed", id: item.id, offset }),
            onProgress: (sent) => dispatch({ type: "progress", id: item.id, sent }),
            onDone: () => {
              handles.current.delete(item.id);
              dispatch({ type: "done", id: item.id });
              refreshInterrupted();
              listing.reload();
              onChanged();
            },
            onError: (message) => {
              handles.current.delete(item.id);
              dispatch({ type: "error", id: item.id, error: message });
              refreshInterrupted();
            },
          });
          handles.current.set(item.id, handle);
        },
        (err: unknown) => dispatch({ type: "error", id: item.id, error: `could not load the uploader: ${String(err)}` }),
      );
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [queue, files]);

  const addFiles = (list: FileList | null) => {
    if (!list || list.length === 0) return;
    const items = Array.from(list).map((file) => {
      const path = uploadTarget(dir, file);
      const id = `${path}|${file.size}|${file.lastModified}`;
      pending.current.set(id, { file, path });
      return { id, path, size: file.size };
    });
    dispatch({ type: "add", items });
  };

  const totals = queueTotals(queue);
  const entries = listing.data ?? [];
  const sorted = [...entries].sort((a, b) =>
    a.type === "dir" && b.type !== "dir" ? -1 : b.type === "dir" && a.type !== "dir" ? 1 : a.name.localeCompare(b.name),
  );

  const download = async (path: string, folder: boolean) => {
    const url = folder ? await files.archiveUrl(path) : await files.downloadUrl(path);
    const a = document.createElement("a");
    a.href = url;
    a.download = folder ? `${baseName(path) || vfolder.name}.tar` : baseName(path);
    document.body.appendChild(a);
    a.click();
    a.remove();
  };

  const rename = (entry: FileEntry) => {
    const from = joinPath(dir, entry.name);
    const to = window.prompt(`Move or rename ${from} to (a path inside the vfolder):`, from);
    if (!to || joinPath(to) === from) return;
    void run(() => files.move(from, joinPath(to)));
  };

  const remove = (entry: FileEntry) => {
    const path = joinPath(dir, entry.name);
    const folder = entry.type === "dir";
    if (!window.confirm(`Delete ${path}${folder ? " and everything in it" : ""}?`)) return;
    void run(() => files.remove(path, folder));
  };

  const nameProblem = newDir ? validName(newDir) : null;

  return (
    <section class="card" aria-label="Files">
      <div class="page-head">
        <h2>Files</h2>
        <nav aria-label="Folder path">
          {crumbs(dir, vfolder.name).map(([label, path], index) => (
            <span key={path}>
              {index > 0 && " / "}
              <button type="button" class="small" onClick={() => setDir(path)} aria-current={path === dir ? "page" : undefined}>
                {label}
              </button>
            </span>
          ))}
        </nav>
      </div>
      <div class="toolbar">
        <button type="button" class="small" onClick={() => listing.reload()}>
          Refresh
        </button>{" "}
        <button type="button" class="small" onClick={() => void download(dir, true)}>
          Download folder (tar)
        </button>{" "}
        {writable ? (
          <>
            <label class="inline button-like">
              Upload files
              <input
                type="file"
                multiple
                data-testid="upload-files"
                class="sr-only"
                onChange={(e) => {
                  addFiles(e.currentTarget.files);
                  e.currentTarget.value = "";
                }}
              />
            </label>
            <label class="inline button-like">
              Upload folder
              <input
                type="file"
                data-testid="upload-folder"
                class="sr-only"
                // eslint-disable-next-line @typescript-eslint/no-explicit-any
                {...({ webkitdirectory: "" } as any)}
                onChange={(e) => {
                  addFiles(e.currentTarget.files);
                  e.currentTarget.value = "";
                }}
              />
            </label>
            <form
              class="inline-form"
              onSubmit={(e) => {
                e.preventDefault();
                if (nameProblem) return;
                void run(async () => {
                  await files.mkdir(joinPath(dir, newDir));
                  setNewDir("");
                });
              }}
            >
              <label class="sr-only" for="new-folder">
                New folder name
              </label>
              <input id="new-folder" placeholder="new folder" value={newDir} onInput={(e) => setNewDir(e.currentTarget.value)} />
              <button type="submit" class="small" disabled={!newDir || Boolean(nameProblem)}>
                New folder
              </button>
              {nameProblem && <small> {nameProblem}</small>}
            </form>
          </>
        ) : (
          <span class="muted" data-testid="read-only-note">
            Shared with you read-only: no uploads or changes.
          </span>
        )}
      </div>
      {interrupted.length > 0 && writable && (
        <div class="notice" role="status" aria-label="Interrupted uploads">
          <strong>Interrupted uploads</strong> — pick the same file again (in the same folder) to resume:
          <ul>
            {interrupted.map((u) => (
              <li key={u.urlStorageKey}>
                {u.metadata.path} ({formatBytes(u.size ?? 0)}){" "}
                <button
                  type="button"
                  class="small"
                  onClick={() => void loadUploader().then((uploader) => uploader.forgetUpload(u)).then(refreshInterrupted)}
                >
                  Forget
                </button>
              </li>
            ))}
          </ul>
        </div>
      )}
      {queue.length > 0 && (
        <div class="uploads" aria-label="Uploads">
          <p>
            Uploads: {formatBytes(totals.sent)} of {formatBytes(totals.size)} ({percent(totals.sent, totals.size)}%)
            {totals.active ? ` · ${totals.active} in progress` : ""}
            {totals.failed ? ` · ${totals.failed} failed` : ""}{" "}
            <button type="button" class="small" onClick={() => dispatch({ type: "clearFinished" })}>
              Clear finished
            </button>
          </p>
          <ul class="upload-list">
            {queue.map((item) => (
              <li key={item.id} data-upload={item.path} data-status={item.status}>
                <span>{item.path}</span>{" "}
                <progress max={item.size || 1} value={item.size ? item.sent : 1} aria-label={`Upload of ${item.path}`} />{" "}
                <span data-testid="upload-state">
                  {item.status === "done"
                    ? "done"
                    : item.status === "error"
                      ? `failed: ${item.error}`
                      : `${percent(item.sent, item.size)}%`}
                  {item.resumedFrom ? ` (resumed at ${formatBytes(item.resumedFrom)})` : ""}
                </span>
              </li>
            ))}
          </ul>
        </div>
      )}
      <ProblemView error={listing.error ?? error} />
      {!listing.data && !listing.error && <Loading what="files" />}
      {listing.data && entries.length === 0 && <p class="empty">This folder is empty.</p>}
      {sorted.length > 0 && (
        <table class="responsive" aria-label="Files">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Size</th>
              <th scope="col">Modified</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {dir && (
              <tr>
                <td data-label="Name">
                  <button type="button" class="linkish" onClick={() => setDir(parentOf(dir))}>
                    ..
                  </button>
                </td>
                <td data-label="Size" />
                <td data-label="Modified" />
                <td data-label="Actions" />
              </tr>
            )}
            {sorted.map((entry) => (
              <tr key={entry.name} data-entry={entry.name}>
                <td data-label="Name">
                  {entry.type === "dir" ? (
                    <button type="button" class="linkish" onClick={() => setDir(joinPath(dir, entry.name))}>
                      📁 {entry.name}/
                    </button>
                  ) : (
                    <span>{entry.name}</span>
                  )}
                </td>
                <td data-label="Size">{entry.type === "dir" ? "—" : formatBytes(entry.size)}</td>
                <td data-label="Modified">{formatMtime(entry.mtime)}</td>
                <td data-label="Actions">
                  {entry.type !== "symlink" && (
                    <button
                      type="button"
                      class="small"
                      onClick={() => void download(joinPath(dir, entry.name), entry.type === "dir")}
                    >
                      Download{entry.type === "dir" ? " (tar)" : ""}
                    </button>
                  )}{" "}
                  {writable && (
                    <>
                      <button type="button" class="small" onClick={() => rename(entry)}>
                        Rename/move
                      </button>{" "}
                      <button type="button" class="small danger" onClick={() => remove(entry)}>
                        Delete
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
