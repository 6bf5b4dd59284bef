import { fireEvent, render, screen, waitFor } from "@testing-library/preact";
import type { Session, User } from "./api/client";
import { windowFor } from "./components/Virtual";
import { applyPatches, SessionsPage, SessionTable, VIRTUAL_MIN } from "./pages/Sessions";
import { CreateUserForm, UserTable } from "./pages/Users";

function session(i: number): Session {
  return {
    id: `s${String(i).padStart(5, "0")}`,
    name: `sess-${i}`,
    owner: "admin",
    type: "interactive",
    status: "PENDING",
    status_reason: "waiting",
    image: "corral/python:latest",
    requested_slots: { cpu: "1" },
    created_at: "2025-01-01T11:58:00Z",
  } as unknown as Session;
}

describe("windowFor", () => {
  it("covers the viewport plus overscan, with spacers for the rest", () => {
    expect(windowFor(1000, 40, 0, 400, 5)).toEqual({ start: 0, end: 15, padTop: 0, padBottom: 985 * 40 });
    expect(windowFor(1000, 40, 4000, 400, 5)).toEqual({ start: 95, end: 115, padTop: 95 * 40, padBottom: 885 * 40 });
    expect(windowFor(1000, 40, 1e9, 400, 5).end).toBe(1000);
    expect(windowFor(3, 40, 0, 400, 5)).toEqual({ start: 0, end: 3, padTop: 0, padBottom: 0 });
  });
});

describe("SessionTable with 1,000 sessions", () => {
  const sessions = Array.from({ length: 1000 }, (_, i) => session(i));

  it("puts only a window of rows in the DOM, and moves it on scroll", async () => {
    const started = performance.now();
    const { container } = render(<SessionTable sessions={sessions} now={Date.parse("2025-01-01T12:00:00Z")} />);
    const renderMs = performance.now() - started;
    const rows = () => container.querySelectorAll("tbody tr[data-session]");
    expect(rows().length).toBeGreaterThan(5);
    expect(rows().length).toBeLessThan(100);
    expect(container.querySelector("tr[data-session='sess-0']")).toBeTruthy();
    expect(container.querySelector("tr[data-session='sess-500']")).toBeNull();
    expect(screen.getByRole("table", { name: "Sessions" }).getAttribute("aria-rowcount")).toBe("1001");
    expect(renderMs).toBeLessThan(1000);

    const scroller = screen.getByRole("region", { name: /Sessions \(1000 rows, scrollable\)/ });
    expect(scroller.tabIndex).toBe(0); // keyboard-scrollable
    scroller.scrollTop = 500 * 41;
    fireEvent.scroll(scroller);
    await waitFor(() => expect(container.querySelector("tr[data-session='sess-500']")).toBeTruthy());
    expect(container.querySelector("tr[data-session='sess-0']")).toBeNull();
    expect(rows().length).toBeLessThan(100);
    // The spacers keep the full height: rows above and below the window.
    const spacers = container.querySelectorAll<HTMLTableRowElement>("tr.spacer");
    expect(spacers.length).toBe(2);
  });

  it("renders short lists whole", () => {
    const { container } = render(<SessionTable sessions={sessions.slice(0, VIRTUAL_MIN)} now={0} />);
    expect(container.querySelectorAll("tbody tr[data-session]").length).toBe(VIRTUAL_MIN);
    expect(container.querySelector("tr.spacer")).toBeNull();
  });
});

describe("applyPatches", () => {
  it("lays live changes received after the fetch over the list", () => {
    const items = [session(1), session(2)];
    const patches = new Map([
      [items[0].id, { status: "RUNNING" as Session["status"], reason: "started", received: 200 }],
      [items[1].id, { status: "ERROR" as Session["status"], reason: "old news", received: 50 }],
    ]);
    const out = applyPatches(items, patches, 100);
    expect(out[0].status).toBe("RUNNING");
    expect(out[0].status_reason).toBe("started");
    expect(out[1].status).toBe("PENDING"); // the fetch is newer than that event
  });
});

describe("Users admin", () => {
  const user = {
    id: "u1", username: "alice", role: "user", created_at: null, keypairs: 1, is_active: true, has_password: false,
  } as User;

  afterEach(() => vi.unstubAllGlobals());

  it("labels each row's actions by user", () => {
    render(<UserTable users={[user]} now={0} onChanged={() => {}} />);
    expect(screen.getByRole("button", { name: "Disable alice" })).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Reset password of alice" }));
    expect(screen.getByLabelText("New password for alice")).toBeTruthy();
  });

  it("creates a user with a password", async () => {
    const fetchMock = vi.fn().mockResolvedValue(
      new Response(JSON.stringify({ id: "u2", username: "bob", role: "user", created_at: null, access_key: "AK",
        secret_key: "SK" }), { status: 201 }),
    );
    vi.stubGlobal("fetch", fetchMock);
    const onCreated = vi.fn();
    render(<CreateUserForm onCreated={onCreated} />);
    fireEvent.input(screen.getByLabelText("Username"), { target: { value: "bob" } });
    fireEvent.input(screen.getByLabelText(/^Password/), { target: { value: "a long password" } });
    fireEvent.click(screen.getByRole("button", { name: "Create user" }));
    await waitFor(() => expect(onCreated).toHaveBeenCalled());
    const [url, init] = fetchMock.mock.calls[0] as [string, RequestInit];
    expect(url).toBe("/api/v1/users");
    expect(JSON.parse(String(init.body))).toEqual({ username: "bob", role: "user", password: "a long password" });
  });
});

class FakeEventSource {
  static last: FakeEventSource | undefined;
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  listeners: Record<string, ((e: MessageEvent) => void)[]> = {};
  closed = false;
  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }
  addEventListener(type: string, fn: (e: MessageEvent) => void) {
    (this.listeners[type] ??= []).push(fn);
  }
  emit(type: string, data: unknown) {
    for (const fn of this.listeners[type] ?? []) fn(new MessageEvent(type, { data: JSON.stringify(data) }));
  }
  close() {
    this.closed = true;
  }
}

describe("SessionsPage live updates", () => {
  afterEach(() => vi.unstubAllGlobals());

  it("follows the event stream and updates the row in place", async () => {
    const fetchMock = vi.fn().mockImplementation(() =>
      Promise.resolve(new Response(JSON.stringify({ items: [session(7)], next_cursor: null }), { status: 200 })),
    );
    vi.stubGlobal("fetch", fetchMock);
    vi.stubGlobal("EventSource", FakeEventSource);
    const { container, unmount } = render(<SessionsPage />);
    const row = await waitFor(() => {
      const found = container.querySelector("tr[data-session='sess-7']");
      expect(found).toBeTruthy();
      return found!;
    });
    const source = FakeEventSource.last!;
    expect(source.url).toBe("/api/v1/sessions/events");
    source.onopen?.();
    await waitFor(() => expect(screen.getByTestId("live-state").textContent).toBe("live"));
    const calls = fetchMock.mock.calls.length;
    source.emit("status", { session_id: "s00007", status: "RUNNING", reason: "started", at: null });
    await waitFor(() => expect(row.textContent).toContain("RUNNING"));
    expect(row.textContent).toContain("started");
    expect(fetchMock.mock.calls.length).toBe(calls); // in place: no refetch for a known session
    unmount();
    await waitFor(() => expect(source.closed).toBe(true));
  });
});
