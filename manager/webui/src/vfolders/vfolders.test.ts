import { describe, expect, it } from "vitest";
import { relayBase, TokenCache, tokenStale, type VfolderToken } from "./api";
import { baseName, crumbs, formatMtime, joinPath, parentOf, parseSize, splitPath, uploadTarget, validName } from "./paths";
import { nextToStart, percent, queueTotals, uploadReducer, type UploadItem } from "./uploadQueue";
import { uploadFingerprint } from "./uploader";

describe("paths", () => {
  it("joins and splits", () => {
    expect(joinPath("a/", "/b", "", "c")).toBe("a/b/c");
    expect(joinPath("", "")).toBe("");
    expect(joinPath("./a", ".", "b//c")).toBe("a/b/c");
    expect(splitPath("")).toEqual([]);
    expect(splitPath("/a/b/")).toEqual(["a", "b"]);
    expect(parentOf("a/b/c")).toBe("a/b");
    expect(parentOf("a")).toBe("");
    expect(parentOf("")).toBe("");
    expect(baseName("a/b/c")).toBe("c");
    expect(baseName("")).toBe("");
  });
  it("makes breadcrumbs", () => {
    expect(crumbs("a/b", "data")).toEqual([["data", ""], ["a", "a"], ["b", "a/b"]]);
    expect(crumbs("")).toEqual([["/", ""]]);
  });
  it("places uploads, folder picks keeping their relative path", () => {
    expect(uploadTarget("in", { name: "x.bin" })).toBe("in/x.bin");
    expect(uploadTarget("", { name: "x.bin", webkitRelativePath: "pics/2026/x.bin" })).toBe("pics/2026/x.bin");
    expect(uploadTarget("a", { name: "x", webkitRelativePath: "" })).toBe("a/x");
  });
  it("validates names", () => {
    expect(validName("ok")).toBeNull();
    expect(validName("")).not.toBeNull();
    expect(validName("a/b")).not.toBeNull();
    expect(validName("..")).not.toBeNull();
  });
  it("parses sizes", () => {
    expect(parseSize("")).toBeNull();
    expect(parseSize("1024")).toBe(1024);
    expect(parseSize("10g")).toBe(10 * 1024 ** 3);
    expect(parseSize("1.5 MiB")).toBe(1.5 * 1024 ** 2);
    expect(parseSize("500M")).toBe(500 * 1024 ** 2);
    expect(() => parseSize("lots")).toThrow();
  });
  it("formats mtimes", () => {
    expect(formatMtime(undefined)).toBe("—");
    expect(formatMtime(0)).toMatch(/^19(69|70)-/);
  });
});

describe("upload queue", () => {
  const add = (state: UploadItem[], ...items: [string, number][]) =>
    uploadReducer(state, { type: "add", items: items.map(([path, size]) => ({ id: path, path, size })) });

  it("follows an upload from queued to done", () => {
    let q = add([], ["a", 100], ["b", 50]);
    expect(q.map((i) => i.status)).toEqual(["queued", "queued"]);
    q = uploadReducer(q, { type: "start", id: "a" });
    q = uploadReducer(q, { type: "resumed", id: "a", offset: 40 });
    expect(q[0]).toMatchObject({ status: "uploading", sent: 40, resumedFrom: 40 });
    q = uploadReducer(q, { type: "progress", id: "a", sent: 500 });
    expect(q[0].sent).toBe(100); // never past the size
    expect(queueTotals(q)).toEqual({ sent: 100, size: 150, active: 2, failed: 0 });
    q = uploadReducer(q, { type: "done", id: "a" });
    q = uploadReducer(q, { type: "error", id: "b", error: "quota" });
    expect(queueTotals(q)).toMatchObject({ active: 0, failed: 1 });
    q = uploadReducer(q, { type: "clearFinished" });
    expect(q.map((i) => i.id)).toEqual(["b"]);
    expect(uploadReducer(q, { type: "remove", id: "b" })).toEqual([]);
  });

  it("re-adding a file replaces its entry", () => {
    let q = add([], ["a", 1]);
    q = uploadReducer(q, { type: "error", id: "a", error: "x" });
    q = add(q, ["a", 1]);
    expect(q).toHaveLength(1);
    expect(q[0].status).toBe("queued");
  });

  it("starts at most `parallel` at once", () => {
    let q = add([], ["a", 1], ["b", 1], ["c", 1], ["d", 1]);
    expect(nextToStart(q, 3).map((i) => i.id)).toEqual(["a", "b", "c"]);
    q = uploadReducer(q, { type: "start", id: "a" });
    q = uploadReducer(q, { type: "start", id: "b" });
    expect(nextToStart(q, 3).map((i) => i.id)).toEqual(["c"]);
    q = uploadReducer(q, { type: "start", id: "c" });
    expect(nextToStart(q, 3)).toEqual([]);
  });

  it("computes percentages", () => {
    expect(percent(0, 0)).toBe(100);
    expect(percent(1, 3)).toBe(33);
    expect(percent(5, 3)).toBe(100);
  });

  it("fingerprints by vfolder, destination, size and mtime", () => {
    const f = { size: 10, lastModified: 5 };
    expect(uploadFingerprint("v1", "a/b", f)).toBe(uploadFingerprint("v1", "a/b", { ...f }));
    expect(uploadFingerprint("v1", "a/b", f)).not.toBe(uploadFingerprint("v1", "a/c", f));
    expect(uploadFingerprint("v1", "a/b", f)).not.toBe(uploadFingerprint("v2", "a/b", f));
  });
});

describe("tokens and the relay", () => {
  const token = (expires: number): VfolderToken => ({
    client_url: "http://proxy:6022",
    token: `t${expires}`,
    vfid: "v",
    vfolder_id: "id",
    name: "n",
    permission: "rw",
    quota_bytes: null,
    expires_at: new Date(expires).toISOString(),
  });

  it("builds the relay path from the host's proxy", () => {
    expect(relayBase("local:vol", "abc")).toBe("/api/v1/storage-proxies/local/client/v1/vfolders/abc");
  });

  it("knows when a token is stale", () => {
    expect(tokenStale(new Date(100_000).toISOString(), 0)).toBe(false);
    expect(tokenStale(new Date(100_000).toISOString(), 50_000)).toBe(true);
    expect(tokenStale(null, 0)).toBe(false);
  });

  it("reuses a fresh token and fetches a new one near expiry, once for concurrent callers", async () => {
    let now = 0;
    let fetched = 0;
    const cache = new TokenCache(async () => token(now + 300_000 + fetched++), () => now);
    const [a, b] = await Promise.all([cache.get(), cache.get()]);
    expect(fetched).toBe(1);
    expect(a).toBe(b);
    expect(await cache.get()).toBe(a);
    now = 250_000; // within a minute of expiry
    const c = await cache.get();
    expect(fetched).toBe(2);
    expect(c).not.toBe(a);
    cache.invalidate();
    await cache.get();
    expect(fetched).toBe(3);
  });
});
