// Vfolder calls: the manager's /api/v1/vfolders (typed by the OpenAPI document) and the storage proxy's
// file API, reached through the manager's relay /api/v1/storage-proxies/{proxy}/client/v1/… (same origin:
// the UI's CSP allows no other). A short-lived vfolder token authorizes the file calls; TokenCache asks
// the manager for a fresh one whenever the cached one is close to expiry, so every batch of requests
// (a listing, each tus request of an upload) carries a valid token.
import type { paths } from "../api/schema";
import {
  ApiError,
  fillPath,
  getCsrfToken,
  request,
  type BodyOf,
  type JsonOf,
  type Vfolder,
} from "../api/client";

export type VfolderToken = JsonOf<"/api/v1/vfolders/{ref}/token", "post">;
export type StorageHost = JsonOf<"/api/v1/storage/hosts", "get">["items"][number];
export type Permission = "ro" | "rw";

const VF = "/api/v1/vfolders/{ref}" satisfies keyof paths;
const ref = (r: string) => fillPath(VF, { ref: r });

export const vfolderApi = {
  list: (trashed = false) =>
    request<JsonOf<"/api/v1/vfolders", "get">>("GET", "/api/v1/vfolders", { query: { trashed: trashed ? "1" : undefined } }),
  hosts: () => request<JsonOf<"/api/v1/storage/hosts", "get">>("GET", "/api/v1/storage/hosts"),
  info: (r: string) => request<Vfolder>("GET", ref(r)),
  create: (body: Partial<BodyOf<"/api/v1/vfolders", "post">>) =>
    request<Vfolder>("POST", "/api/v1/vfolders", { body }),
  trash: (r: string) => request<Vfolder>("DELETE", ref(r)),
  restore: (r: string) => request<Vfolder>("POST", `${ref(r)}/restore`),
  purge: (r: string) => request<Vfolder>("POST", `${ref(r)}/purge`),
  share: (r: string, username: string, permission: Permission) =>
    request<Vfolder>("POST", `${ref(r)}/shares`, { body: { username, permission } }),
  unshare: (r: string, username: string) =>
    request<Vfolder | undefined>("DELETE", `${ref(r)}/shares/${encodeURIComponent(username)}`),
  token: (r: string, permission: Permission) =>
    request<VfolderToken>("POST", `${ref(r)}/token`, { body: { permission } }),
};

/** The relay's base for a vfolder: `host` is "PROXY:VOLUME". */
export function relayBase(host: string, vfid: string): string {
  const proxy = host.split(":")[0];
  return `/api/v1/storage-proxies/${encodeURIComponent(proxy)}/client/v1/vfolders/${encodeURIComponent(vfid)}`;
}

/** Whether a token expiring at `expiresAt` (ISO) should be replaced at `now` (1 minute of margin). */
export function tokenStale(expiresAt: string | null | undefined, now = Date.now(), marginMs = 60_000): boolean {
  if (!expiresAt) return false;
  const at = Date.parse(expiresAt);
  return Number.isNaN(at) || at - now < marginMs;
}

export class TokenCache {
  private cached: VfolderToken | undefined;
  private pending: Promise<VfolderToken> | undefined;
  constructor(
    private readonly fetchToken: () => Promise<VfolderToken>,
    private readonly now: () => number = Date.now,
  ) {}

  async get(): Promise<VfolderToken> {
    if (this.cached && !tokenStale(this.cached.expires_at, this.now())) return this.cached;
    this.pending ??= this.fetchToken().finally(() => (this.pending = undefined));
    this.cached = await this.pending;
    return this.cached;
  }

  invalidate(): void {
    this.cached = undefined;
  }
}

export interface FileEntry {
  name: string;
  type: "file" | "dir" | "symlink" | "other";
  size: number;
  mtime: number;
  mode: number;
  target?: string;
}

/** The file API of one vfolder, through the relay. */
export class VfolderFiles {
  readonly base: string;
  constructor(
    readonly vfolder: Pick<Vfolder, "id" | "host" | "vfid">,
    readonly tokens: TokenCache,
  ) {
    this.base = relayBase(vfolder.host, vfolder.vfid);
  }

  private async call<T>(method: string, path: string, init: { query?: Record<string, string>; body?: unknown } = {}): Promise<T> {
    const retry = async (again: boolean): Promise<T> => {
      const token = await this.tokens.get();
      const query = new URLSearchParams(init.query ?? {});
      const headers: Record<string, string> = { Authorization: `Bearer ${token.token}`, Accept: "application/json" };
      if (method !== "GET") headers["X-CSRF-Token"] = getCsrfToken();
      if (init.body !== undefined) headers["Content-Type"] = "application/json";
      const response = await fetch(`${this.base}/${path}${query.size ? `?${query}` : ""}`, {
        method,
        headers,
        credentials: "same-origin",
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
      });
      if (response.status === 401 && again) {
        this.tokens.invalidate(); // expired meanwhile: one more try with a fresh token
        return retry(false);
      }
      if (response.status === 204) return undefined as T;
      const text = await response.text();
      let doc: unknown;
      try {
        doc = text ? JSON.parse(text) : undefined;
      } catch {
        doc = undefined;
      }
      if (!response.ok) {
        const problem = doc && typeof doc === "object" ? (doc as ApiError["problem"]) : { title: response.statusText, detail: text };
        throw new ApiError(response.status, { status: response.status, ...problem });
      }
      return doc as T;
    };
    return retry(true);
  }

  async list(path: string): Promise<FileEntry[]> {
    const entries: FileEntry[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string> = { path, limit: "1000" };
      if (cursor) query.cursor = cursor;
      const page: { entries: FileEntry[]; next_cursor: string | null } = await this.call("GET", "files", { query });
      entries.push(...page.entries);
      cursor = page.next_cursor;
    } while (cursor);
    return entries;
  }

  mkdir(path: string): Promise<unknown> {
    return this.call("POST", "mkdir", { body: { path, parents: true, exist_ok: false } });
  }

  move(src: string, dst: string): Promise<unknown> {
    return this.call("POST", "move", { body: { src, dst, overwrite: false } });
  }

  remove(path: string, recursive: boolean): Promise<unknown> {
    return this.call("DELETE", "files", { query: { path, recursive: recursive ? "1" : "0" } });
  }

  /** A link that downloads a file (the token rides in the query: a plain link cannot send headers). */
  async downloadUrl(path: string): Promise<string> {
    const token = await this.tokens.get();
    return `${this.base}/download?${new URLSearchParams({ path, token: token.token })}`;
  }

  /** A link to a folder as a tar archive. */
  async archiveUrl(path: string): Promise<string> {
    const token = await this.tokens.get();
    return `${this.base}/archive?${new URLSearchParams({ path, token: token.token })}`;
  }

  get uploadEndpoint(): string {
    return `${window.location.origin}${this.base}/uploads`;
  }
}
