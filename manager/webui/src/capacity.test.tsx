import { fireEvent, render, screen, waitFor } from "@testing-library/preact";
import type { Capacity, CapacityNode, Session } from "./api/client";
import { checkFit, type Need } from "./capacity";
import { CapacityTable } from "./components/CapacityTable";
import { LaunchForm } from "./pages/Launch";
import { SessionsPage } from "./pages/Sessions";
import { loadUploader } from "./vfolders/lazyUploader";

const GiB = 1024 ** 3;

function node(id: string, shares: string[], extra: Partial<CapacityNode> = {}): CapacityNode {
  const free = shares.filter((s) => s === "1").length;
  return {
    id,
    cpu_total: "16",
    cpu_free: "16",
    mem_total: 64 * GiB,
    mem_free: 64 * GiB,
    gpus_total: shares.length,
    gpus_free: free,
    max_free_share: shares.length ? String(Math.max(...shares.map(Number))) : "0",
    gpus: shares.map((free_share, index) => ({ index, model: "A100", memory: 40 * GiB, free_share })),
    ...extra,
  } as CapacityNode;
}

function capacity(nodes: CapacityNode[], group = "default"): Capacity {
  return {
    resource_group: group,
    nodes,
    max_free_gpus: Math.max(0, ...nodes.map((n) => n.gpus_free)),
    max_free_share: "1",
  } as Capacity;
}

const need = (n: Partial<Need>): Need => ({ cpu: 1, mem: GiB, gpus: 0, share: 0, ...n });

describe("checkFit", () => {
  const cluster = capacity([node("a", ["1", "1", "0.25", "0"]), node("b", [], { cpu_free: "2" })]);

  it("fits where enough is free now", () => {
    expect(checkFit(need({ share: 0.25 }), cluster)).toEqual({ kind: "fits", nodes: ["a"] });
    expect(checkFit(need({ gpus: 2 }), cluster)).toEqual({ kind: "fits", nodes: ["a"] });
    expect(checkFit(need({ cpu: 2 }), cluster)).toEqual({ kind: "fits", nodes: ["a", "b"] });
    expect(checkFit(need({ share: 1.25 }), cluster)).toEqual({ kind: "fits", nodes: ["a"] }); // 1 whole + 0.25
  });

  it("says what no node has free now when it fits a node's total", () => {
    const wait = checkFit(need({ gpus: 3 }), cluster);
    expect(wait).toEqual({ kind: "wait", message: "Will wait in the queue: no node has 3 whole GPUs free now." });
    expect(checkFit(need({ share: 2.5 }), cluster).kind).toBe("wait");
    const busy = capacity([node("a", ["0.5", "0.5"])]);
    expect(checkFit(need({ share: 0.75 }), busy)).toEqual({
      kind: "wait",
      message: "Will wait in the queue: no node has 0.75 of a GPU free now.",
    });
    expect(checkFit(need({ cpu: 10, gpus: 1 }), capacity([node("a", ["1"], { cpu_free: "4" })]))).toEqual({
      kind: "wait",
      message: "Will wait in the queue: no node has 10 CPU cores free now.",
    });
  });

  it("refuses what no node could ever give, blaming the field", () => {
    expect(checkFit(need({ gpus: 64 }), cluster)).toEqual({
      kind: "never",
      field: "gpus",
      message: 'No node of group "default" could ever fit 64 whole GPUs: the largest has 4 GPUs.',
    });
    expect(checkFit(need({ mem: 128 * GiB }), cluster)).toMatchObject({ kind: "never", field: "mem" });
    expect(checkFit(need({ cpu: 32 }), cluster)).toMatchObject({ kind: "never", field: "cpu" });
    const noGpus = capacity([node("b", [])], "cpu");
    expect(checkFit(need({ share: 0.5 }), noGpus)).toEqual({
      kind: "never",
      field: "share",
      message: 'No node of group "cpu" could ever fit 0.5 of a GPU: the largest has no GPU.',
    });
  });

  it("refuses a request each part of which fits some node but no node all of it", () => {
    const split = capacity([node("gpu", ["1"], { cpu_total: "2", cpu_free: "2" }), node("cpu", [])]);
    const fit = checkFit(need({ cpu: 8, gpus: 1 }), split);
    expect(fit).toMatchObject({ kind: "never", field: "gpus" });
    expect((fit as { message: string }).message).toContain("No single node");
  });

  it("says a group without agents makes the session wait, and judges nothing without figures", () => {
    expect(checkFit(need({}), capacity([], "empty"))).toEqual({
      kind: "wait",
      message: 'Will wait in the queue: no agent of group "empty" is up now.',
    });
    expect(checkFit(need({}), undefined)).toEqual({ kind: "unknown" });
  });
});

describe("CapacityTable", () => {
  it("shows each node's free GPUs, free share per device, cores and memory", () => {
    render(<CapacityTable capacity={capacity([node("n1", ["1", "0.75"], { cpu_free: "12.5", mem_free: 32 * GiB })])} />);
    const table = screen.getByRole("table", { name: "Free now in default" });
    const row = table.querySelector("tr[data-node='n1']")!;
    expect(row.textContent).toContain("1 / 2");
    expect(row.querySelector("[data-gpu='1']")!.textContent).toBe("1: 0.75");
    expect(row.querySelector("[data-gpu='1']")!.getAttribute("title")).toBe("GPU 1: A100, 40 GiB");
    expect(row.textContent).toContain("12.5 / 16");
    expect(row.textContent).toContain("32 GiB / 64 GiB");
  });

  it("says when no agent of the group is up", () => {
    render(<CapacityTable capacity={capacity([], "idle")} />);
    expect(screen.getByTestId("capacity-empty").textContent).toContain("idle");
  });
});

describe("LaunchForm with capacity", () => {
  const cluster = capacity([node("n1", ["1", "1", "0.5", "0"])]);

  it("shows the group's table and refuses an impossible request before submitting", async () => {
    const submit = vi.fn();
    const load = vi.fn().mockResolvedValue(cluster);
    render(<LaunchForm images={[]} submit={submit} onCreated={() => {}} loadCapacity={load} />);
    await screen.findByRole("table", { name: "Free now in default" });
    expect(load).toHaveBeenCalledWith("default");
    fireEvent.click(screen.getByLabelText("Whole GPUs"));
    fireEvent.input(screen.getByLabelText("Number of GPUs"), { target: { value: "64" } });
    fireEvent.click(screen.getByRole("button", { name: "Launch session" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("could ever fit 64 whole GPUs: the largest has 4 GPUs");
    expect(alert.id).toBe("launch-gpus-fit");
    const field = screen.getByLabelText("Number of GPUs");
    expect(field.getAttribute("aria-invalid")).toBe("true");
    expect(field.getAttribute("aria-describedby")).toBe("launch-gpus-fit");
    expect(document.activeElement).toBe(field);
    expect(submit).not.toHaveBeenCalled();
  });

  it("warns that the session will wait, and submits anyway", async () => {
    const submit = vi.fn().mockResolvedValue({ id: "x" });
    const onCreated = vi.fn();
    render(
      <LaunchForm images={[]} submit={submit} onCreated={onCreated} loadCapacity={vi.fn().mockResolvedValue(cluster)} />,
    );
    await screen.findByRole("table", { name: "Free now in default" });
    fireEvent.click(screen.getByLabelText("Whole GPUs"));
    fireEvent.input(screen.getByLabelText("Number of GPUs"), { target: { value: "3" } });
    expect((await screen.findByTestId("fit-wait")).textContent).toBe(
      "Will wait in the queue: no node has 3 whole GPUs free now.",
    );
    fireEvent.click(screen.getByRole("button", { name: "Launch session" }));
    await waitFor(() => expect(onCreated).toHaveBeenCalled());
    expect(submit).toHaveBeenCalledWith(expect.objectContaining({ resource_group: "default" }));
  });

  it("looks up the group typed in, and suggests the known groups", async () => {
    const load = vi.fn().mockImplementation((group: string) => Promise.resolve(capacity([node("g", ["1"])], group)));
    render(
      <LaunchForm images={[]} submit={vi.fn()} onCreated={() => {}} loadCapacity={load} groups={["default", "gpu"]} />,
    );
    await screen.findByRole("table", { name: "Free now in default" });
    const options = [...document.querySelectorAll("#launch-group-options option")].map((o) => o.getAttribute("value"));
    expect(options).toEqual(["default", "gpu"]);
    fireEvent.input(screen.getByLabelText("Resource group"), { target: { value: "gpu" } });
    await screen.findByRole("table", { name: "Free now in gpu" });
    expect(load).toHaveBeenLastCalledWith("gpu");
  });
});

class FakeEventSource {
  static all: FakeEventSource[] = [];
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  listeners: Record<string, ((e: MessageEvent) => void)[]> = {};
  closed = false;
  constructor(readonly url: string) {
    FakeEventSource.all.push(this);
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

function session(id: string, name: string, owner: string): Session {
  return {
    id,
    name,
    owner,
    type: "interactive",
    status: "PENDING",
    status_reason: "",
    image: "corral/python:latest",
    requested_slots: { cpu: "1" },
    created_at: null,
  } as unknown as Session;
}

describe("SessionsPage for admins: All users", () => {
  beforeEach(() => {
    FakeEventSource.all = [];
    window.sessionStorage.clear();
  });
  afterEach(() => vi.unstubAllGlobals());

  it("lists every user's sessions with an Owner column, following them live", async () => {
    const fetchMock = vi.fn().mockImplementation((url: string) => {
      const items = url.includes("all_users=1")
        ? [session("s-own", "mine", "admin"), session("s-bob", "bobs", "bob")]
        : [session("s-own", "mine", "admin")];
      return Promise.resolve(new Response(JSON.stringify({ items, next_cursor: null }), { status: 200 }));
    });
    vi.stubGlobal("fetch", fetchMock);
    vi.stubGlobal("EventSource", FakeEventSource);
    const { container } = render(<SessionsPage isAdmin />);
    await waitFor(() => expect(container.querySelector("tr[data-session='mine']")).toBeTruthy());
    expect(screen.queryByRole("columnheader", { name: "Owner" })).toBeNull();
    expect(FakeEventSource.all.map((s) => s.url)).toEqual(["/api/v1/sessions/events"]);

    fireEvent.click(screen.getByLabelText("All users"));
    const row = await waitFor(() => {
      const found = container.querySelector("tr[data-session='bobs']");
      expect(found).toBeTruthy();
      return found!;
    });
    expect(screen.getByRole("columnheader", { name: "Owner" })).toBeTruthy();
    expect(row.querySelector("td[data-label='Owner']")!.textContent).toBe("bob");
    expect(String(fetchMock.mock.calls.at(-1)![0])).toContain("all_users=1");
    // The stream follows every user's sessions now; the first one is closed.
    const [first, second] = FakeEventSource.all;
    expect(first.closed).toBe(true);
    expect(second.url).toBe("/api/v1/sessions/events?all_users=1");
    second.onopen?.();
    second.emit("status", { session_id: "s-bob", status: "CANCELLED", reason: "by bob", at: null });
    await waitFor(() => expect(row.textContent).toContain("CANCELLED"));
    expect(window.sessionStorage.getItem("corral.sessions.allUsers")).toBe("1");
  });

  it("offers no All users toggle to other users", async () => {
    vi.stubGlobal(
      "fetch",
      vi.fn().mockResolvedValue(new Response(JSON.stringify({ items: [], next_cursor: null }), { status: 200 })),
    );
    window.sessionStorage.setItem("corral.sessions.allUsers", "1"); // left by an admin in this tab: ignored
    render(<SessionsPage />);
    await screen.findByText(/No sessions/);
    expect(screen.queryByLabelText("All users")).toBeNull();
    expect(screen.queryByRole("columnheader", { name: "Owner" })).toBeNull();
  });
});

describe("the upload code", () => {
  it("comes in its own chunk, loaded once on demand", async () => {
    const first = loadUploader();
    expect(loadUploader()).toBe(first);
    const uploader = await first;
    expect(typeof uploader.startUpload).toBe("function");
    expect(uploader.uploadFingerprint("v", "a/b", { size: 3, lastModified: 4 })).toBe("corral|v|a/b|3|4");
  });
});
