import { fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { afterEach, describe, expect, it, vi } from "vitest";
import { VfolderListPage } from "./VfolderList";

const vfolder = {
  id: "id-1", name: "data", owner: "ann", owner_kind: "user", host: "sp1:vol1", permission: "rw", is_owner: true,
  quota_bytes: 1024 ** 3, status: "ready", project: null, creator: "ann", created_at: null, trashed_at: null,
  updated_at: null, vfid: "v1", shared_with: [{ username: "bob", permission: "ro" }],
};

function json(doc: unknown, status = 200): Response {
  return new Response(JSON.stringify(doc), { status, headers: { "Content-Type": "application/json" } });
}

afterEach(() => vi.unstubAllGlobals());

describe("VfolderListPage", () => {
  it("lists vfolders with quota and shares, and creates one with a parsed quota", async () => {
    const calls: [string, RequestInit | undefined][] = [];
    vi.stubGlobal("fetch", vi.fn(async (url: string, init?: RequestInit) => {
      calls.push([url, init]);
      if (url.startsWith("/api/v1/storage/hosts")) return json({ items: [{ host: "sp1:vol1", proxy: "sp1", default: true }] });
      if (url.startsWith("/api/v1/vfolders") && init?.method === "POST") return json(vfolder, 201);
      return json({ items: [vfolder] });
    }));
    render(<VfolderListPage />);
    const row = await screen.findByRole("row", { name: /data/ });
    expect(row.textContent).toContain("1.0 GiB");
    expect(row.textContent).toContain("bob (ro)");
    fireEvent.input(screen.getByLabelText("Name"), { target: { value: "new" } });
    fireEvent.input(screen.getByLabelText("Quota (optional, like 10g)"), { target: { value: "2g" } });
    fireEvent.submit(screen.getByRole("form", { name: "Create a vfolder" }));
    await waitFor(() => expect(calls.some(([, init]) => init?.method === "POST")).toBe(true));
    const post = calls.find(([, init]) => init?.method === "POST")!;
    expect(JSON.parse(String(post[1]!.body))).toEqual({ name: "new", quota: 2 * 1024 ** 3 });
  });

  it("shows the trash with restore and purge", async () => {
    vi.stubGlobal("fetch", vi.fn(async (url: string) =>
      url.includes("trashed=1")
        ? json({ items: [{ ...vfolder, status: "trashed", trashed_at: "2026-12-01T10:00:00Z" }] })
        : json({ items: [] }),
    ));
    render(<VfolderListPage />);
    fireEvent.click(await screen.findByRole("button", { name: "Trash" }));
    expect(await screen.findByRole("button", { name: "Restore" })).toBeTruthy();
    expect(screen.getByRole("button", { name: "Purge" })).toBeTruthy();
  });
});
