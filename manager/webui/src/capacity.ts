// Would a launch request fit the resource group? Pure, from GET /api/v1/capacity (unit-tested in
// capacity.test.ts). The manager stays the judge (it answers 422 for a request no agent could ever fit);
// this only spares the round trip and says, before submitting, whether the session would wait.
import type { Capacity, CapacityNode } from "./api/client";
import { formatBytes, trimNumber } from "./format";

/** What a launch asks for: cores, bytes, whole GPUs, a GPU share (at most one of the last two non-zero). */
export interface Need {
  cpu: number;
  mem: number;
  gpus: number;
  share: number;
}

export type NeedField = "cpu" | "mem" | "gpus" | "share";

export type Fit =
  | { kind: "unknown" }
  | { kind: "fits"; nodes: string[] }
  | { kind: "wait"; message: string }
  | { kind: "never"; field: NeedField; message: string };

/** Shares in hundredths (the API's quantum), so comparisons are exact. */
const cents = (value: string | number): number => Math.round(Number(value) * 100);

function gpuEver(node: CapacityNode, need: Need): boolean {
  if (need.gpus > 0) return node.gpus_total >= need.gpus;
  if (need.share > 0) return node.gpus_total >= Math.max(1, Math.ceil(cents(need.share) / 100));
  return true;
}

function gpuNow(node: CapacityNode, need: Need): boolean {
  if (need.gpus > 0) return node.gpus_free >= need.gpus;
  if (need.share <= 0) return true;
  const share = cents(need.share);
  if (share <= 100) return node.gpus.some((g) => cents(g.free_share) >= share);
  // More than one GPU's worth: that many whole GPUs, and the rest from one more device.
  const whole = Math.floor(share / 100);
  const rest = share - whole * 100;
  if (node.gpus_free < whole) return false;
  if (rest === 0) return true;
  return node.gpus_free > whole || node.gpus.some((g) => cents(g.free_share) < 100 && cents(g.free_share) >= rest);
}

const fieldsOf = (need: Need): NeedField[] =>
  (["cpu", "mem", need.gpus > 0 ? "gpus" : "share"] as NeedField[]).filter((f) => f !== "share" || need.share > 0);

function fitsEverAlone(node: CapacityNode, need: Need, field: NeedField): boolean {
  if (field === "cpu") return need.cpu <= Number(node.cpu_total);
  if (field === "mem") return need.mem <= node.mem_total;
  return gpuEver(node, need);
}

function fitsNowAlone(node: CapacityNode, need: Need, field: NeedField): boolean {
  if (field === "cpu") return need.cpu <= Number(node.cpu_free);
  if (field === "mem") return need.mem <= node.mem_free;
  return gpuNow(node, need);
}

/** "4 CPU cores", "8 GiB of memory", "2 whole GPUs", "0.25 of a GPU": the part of the request `field` names. */
export function describeNeed(need: Need, field: NeedField): string {
  if (field === "cpu") return `${trimNumber(need.cpu)} CPU core${need.cpu === 1 ? "" : "s"}`;
  if (field === "mem") return `${formatBytes(need.mem)} of memory`;
  if (field === "gpus") return need.gpus === 1 ? "a whole GPU" : `${need.gpus} whole GPUs`;
  return need.share <= 1 ? `${trimNumber(need.share)} of a GPU` : `${trimNumber(need.share)} GPUs' worth of shares`;
}

function largest(capacity: Capacity, field: NeedField): string {
  const nodes = capacity.nodes;
  if (field === "cpu") return `${trimNumber(Math.max(...nodes.map((n) => Number(n.cpu_total))))} CPU cores`;
  if (field === "mem") return `${formatBytes(Math.max(...nodes.map((n) => n.mem_total)))} of memory`;
  const most = Math.max(...nodes.map((n) => n.gpus_total));
  return most === 0 ? "no GPU" : `${most} GPU${most === 1 ? "" : "s"}`;
}

/**
 * Whether `need` fits a node of the group now, only later (it would wait in the queue), or never (more than
 * any node has, even empty: the field to blame and why). "unknown" while there is nothing to judge by.
 */
export function checkFit(need: Need, capacity: Capacity | undefined): Fit {
  if (!capacity) return { kind: "unknown" };
  const group = capacity.resource_group;
  if (capacity.nodes.length === 0) {
    return { kind: "wait", message: `Will wait in the queue: no agent of group "${group}" is up now.` };
  }
  const fields = fieldsOf(need);
  const ever = capacity.nodes.filter((node) => fields.every((f) => fitsEverAlone(node, need, f)));
  if (ever.length === 0) {
    const blamed = fields.find((f) => !capacity.nodes.some((node) => fitsEverAlone(node, need, f)));
    if (blamed) {
      return {
        kind: "never",
        field: blamed,
        message: `No node of group "${group}" could ever fit ${describeNeed(need, blamed)}: the largest has ${largest(capacity, blamed)}.`,
      };
    }
    // Each part fits some node, but no node has all of it.
    const field = fields[fields.length - 1];
    return {
      kind: "never",
      field,
      message: `No single node of group "${group}" has ${fields.map((f) => describeNeed(need, f)).join(", ")} at once.`,
    };
  }
  const now = ever.filter((node) => fields.every((f) => fitsNowAlone(node, need, f)));
  if (now.length > 0) return { kind: "fits", nodes: now.map((node) => node.id) };
  const short = fields.filter((f) => !ever.some((node) => fitsNowAlone(node, need, f)));
  const what = short.length > 0 ? short.map((f) => describeNeed(need, f)).join(", ") : "all of this at once";
  return { kind: "wait", message: `Will wait in the queue: no node has ${what} free now.` };
}
