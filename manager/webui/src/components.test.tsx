import { fireEvent, render, screen, waitFor } from "@testing-library/preact";
import { ApiError, type Agent, type Session } from "./api/client";
import { LinkMatrix } from "./components/LinkMatrix";
import { ProblemView } from "./components/common";
import { AgentCard } from "./pages/Admin";
import { LaunchForm, toRequest, DEFAULTS } from "./pages/Launch";
import { SessionTable } from "./pages/Sessions";
import { StatusHistory, VscodePanel } from "./pages/SessionPage";

const base: Session = {
  id: "0123456789abcdef",
  name: "demo",
  owner: "admin",
  type: "interactive",
  status: "PENDING",
  status_reason: "waiting for 1 GPU",
  image: "corral/python:latest",
  command: null,
  env: {},
  requested_slots: { cpu: "1", mem: "1073741824" },
  mounts: [],
  resource_group: "default",
  created_at: "2025-01-01T11:58:00Z",
  scheduled_at: null,
  started_at: null,
  terminated_at: null,
  exit_code: null,
  agent_id: null,
  kernels: [],
  ssh: null,
  status_history: [],
} as unknown as Session;

describe("SessionTable", () => {
  it("shows status, reason, image, resources and age", () => {
    render(<SessionTable sessions={[base]} now={Date.parse("2025-01-01T12:00:00Z")} />);
    const row = screen.getByRole("row", { name: /demo/ });
    expect(row.textContent).toContain("PENDING");
    expect(row.textContent).toContain("waiting for 1 GPU");
    expect(row.textContent).toContain("corral/python:latest");
    expect(row.textContent).toContain("1 CPU · 1.0 GiB");
    expect(row.textContent).toContain("2m");
    expect(screen.getByRole("link", { name: "demo" }).getAttribute("href")).toBe("/sessions/0123456789abcdef");
  });
  it("offers a launch link when empty", () => {
    render(<SessionTable sessions={[]} now={0} />);
    expect(screen.getByRole("link", { name: /launch one/i })).toBeTruthy();
  });
});

describe("LaunchForm", () => {
  it("builds the request from the form", () => {
    expect(toRequest({ ...DEFAULTS, gpuMode: "share", share: "0.25", env: "A=1", command: "python -V" })).toEqual({
      type: "interactive",
      resources: { cpu: "1", mem: "1g", "cuda.shares": "0.25" },
      env: { A: "1" },
      command: "python -V",
      resource_group: "default",
    });
    expect(toRequest({ ...DEFAULTS, group: " " }).resource_group).toBeUndefined(); // the owner's default group
    expect(toRequest({ ...DEFAULTS, gpuMode: "whole", gpus: "2", image: "x:1" }).resources).toEqual({
      cpu: "1",
      mem: "1g",
      "cuda.device": "2",
    });
  });

  it("submits and shows a problem+json error next to the form", async () => {
    const submit = vi.fn().mockRejectedValue(
      new ApiError(422, { title: "Unprocessable Entity", status: 422, detail: "no agent could ever fit 64 GPUs" }),
    );
    render(<LaunchForm images={[{ name: "corral/python:latest" } as never]} submit={submit} onCreated={() => {}} />);
    fireEvent.change(screen.getByLabelText("Image"), { target: { value: "corral/python:latest" } });
    fireEvent.click(screen.getByLabelText("Whole GPUs"));
    fireEvent.input(screen.getByLabelText("Number of GPUs"), { target: { value: "64" } });
    fireEvent.click(screen.getByRole("button", { name: "Launch session" }));
    const alert = await screen.findByRole("alert");
    expect(alert.textContent).toContain("no agent could ever fit 64 GPUs");
    expect(submit).toHaveBeenCalledWith(
      expect.objectContaining({ image: "corral/python:latest", resources: expect.objectContaining({ "cuda.device": "64" }) }),
    );
  });

  it("has a share input in 0.01 steps", () => {
    render(<LaunchForm images={[]} submit={vi.fn()} onCreated={() => {}} />);
    fireEvent.click(screen.getByLabelText("A GPU share"));
    expect(screen.getByLabelText("GPU share (0.01 steps)").getAttribute("step")).toBe("0.01");
  });

  it("reports a malformed env line without calling the API", async () => {
    const submit = vi.fn();
    render(<LaunchForm images={[]} submit={submit} onCreated={() => {}} />);
    fireEvent.input(screen.getByLabelText(/Environment/), { target: { value: "oops" } });
    fireEvent.click(screen.getByRole("button", { name: "Launch session" }));
    await waitFor(() => expect(screen.getByRole("alert").textContent).toContain("KEY=VALUE"));
    expect(submit).not.toHaveBeenCalled();
  });
});

describe("LinkMatrix", () => {
  it("colours each cell by its link class", () => {
    const gpus = [0, 1, 2].map((index) => ({ index }) as never);
    render(
      <LinkMatrix
        label="m"
        gpus={gpus}
        links={[
          ["X", "NV12", "SYS"],
          ["NV12", "X", "PHB"],
          ["SYS", "PHB", "X"],
        ]}
      />,
    );
    const table = screen.getByRole("table", { name: "m" });
    const cells = Array.from(table.querySelectorAll("td"));
    expect(cells.map((c) => c.className)).toEqual([
      "link link-self",
      "link link-nv",
      "link link-sys",
      "link link-nv",
      "link link-self",
      "link link-phb",
      "link link-sys",
      "link link-phb",
      "link link-self",
    ]);
    expect(screen.getAllByRole("columnheader").map((h) => h.textContent)).toContain("GPU2");
  });
});

describe("AgentCard", () => {
  it("shows each GPU's free share", () => {
    const agent = {
      id: "node-1",
      status: "ALIVE",
      status_reason: "",
      address: "http://10.0.0.1:6001",
      resource_group: "default",
      available_slots: { cpu: "8", mem: "17179869184" },
      occupied_slots: {},
      cpu_cores: [],
      gpus: [
        { index: 0, uuid: "GPU-a", model: "A100", memory: 85899345920, numa_node: 0, cpu_affinity: "", pci_bus_id: "", free_share: "0.75", mig: [] },
        { index: 1, uuid: "GPU-b", model: "A100", memory: 85899345920, numa_node: 1, cpu_affinity: "", pci_bus_id: "", free_share: null, mig: [] },
      ],
      gpu_links: [
        ["X", "NV12"],
        ["NV12", "X"],
      ],
      images: [],
      first_contact: null,
      last_heartbeat: null,
      version: "",
    } as unknown as Agent;
    render(<AgentCard agent={agent} now={0} />);
    const gpus = screen.getByRole("table", { name: "GPUs of node-1" });
    expect(gpus.textContent).toContain("0.75");
    expect(gpus.textContent).toContain("unknown");
    expect(screen.getByRole("table", { name: "GPU link matrix of node-1" })).toBeTruthy();
  });
});

describe("session page panels", () => {
  it("lists status history with reasons", () => {
    const s = {
      ...base,
      status_history: [
        { status: "PENDING", reason: "waiting for 1 GPU", at: "2025-01-01T12:00:00Z", session_id: base.id },
        { status: "RUNNING", reason: "", at: "2025-01-01T12:01:00Z", session_id: base.id },
      ],
    } as Session;
    render(<StatusHistory session={s} />);
    const items = screen.getAllByRole("listitem");
    expect(items).toHaveLength(2);
    expect(items[0].textContent).toContain("waiting for 1 GPU");
  });
  it("gives the VS Code link and the ssh-config command", () => {
    const s = { ...base, ssh: { user: "work", host_key: "ssh-ed25519 AAAA", host_key_alias: "corral-demo" } } as Session;
    render(<VscodePanel session={s} />);
    expect(screen.getByRole("link", { name: /Open in VS Code/ }).getAttribute("href")).toBe(
      "vscode://vscode-remote/ssh-remote+corral-demo/home/work",
    );
    expect(screen.getByText("corral ssh-config demo --install")).toBeTruthy();
  });
});

describe("ProblemView", () => {
  it("renders title and detail as an alert", () => {
    render(<ProblemView error={new ApiError(409, { title: "Conflict", status: 409, detail: "name in use" })} />);
    expect(screen.getByRole("alert").textContent).toContain("Conflict");
    expect(screen.getByRole("alert").textContent).toContain("name in use");
  });
});
