// Formatting helpers shared by the pages (pure: unit-tested in format.test.ts).

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function formatBytes(value: number | string | null | undefined): string {
  if (value === null || value === undefined || value === "") return "—";
  let n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  let unit = 0;
  while (n >= 1024 && unit < UNITS.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${n >= 10 || unit === 0 ? Math.round(n) : n.toFixed(1)} ${UNITS[unit]}`;
}

/** "3s", "5m", "2h 10m", "4d" since `iso` (or between `iso` and `until`). */
export function formatAge(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "—";
  const start = Date.parse(iso);
  if (Number.isNaN(start)) return "—";
  const s = Math.max(0, Math.floor((now - start) / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** requested_slots as a short line: "2 CPU · 4 GiB · 0.5 GPU". */
export function formatSlots(slots: Record<string, string> | null | undefined): string {
  if (!slots) return "—";
  const parts: string[] = [];
  if (slots.cpu) parts.push(`${trimNumber(slots.cpu)} CPU`);
  if (slots.mem) parts.push(formatBytes(slots.mem));
  if (slots["cuda.device"] && Number(slots["cuda.device"]) > 0) parts.push(`${trimNumber(slots["cuda.device"])} GPU`);
  if (slots["cuda.shares"] && Number(slots["cuda.shares"]) > 0)
    parts.push(`${trimNumber(slots["cuda.shares"])} GPU share`);
  for (const [key, value] of Object.entries(slots)) {
    if (!["cpu", "mem", "cuda.device", "cuda.shares"].includes(key) && Number(value) > 0) parts.push(`${key} ${value}`);
  }
  return parts.join(" · ") || "—";
}

export function trimNumber(value: string | number): string {
  const n = Number(value);
  return Number.isFinite(n) ? String(Math.round(n * 1000) / 1000) : String(value);
}

/** The class of a `nvidia-smi topo -m` cell: NV (any NV#), PIX, PXB, PHB, NODE, SYS, self, or other. */
export function linkClass(cell: string): string {
  const value = cell.trim().toUpperCase();
  if (value === "X") return "self";
  if (/^NV\d+$/.test(value)) return "nv";
  if (["PIX", "PXB", "PHB", "NODE", "SYS"].includes(value)) return value.toLowerCase();
  return "other";
}

/** Parse "KEY=VALUE" lines (blank lines and # comments skipped); throws on a line without "=". */
export function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`env line ${index + 1}: expected KEY=VALUE, got "${line}"`);
    env[line.slice(0, eq).trim()] = line.slice(eq + 1);
  });
  return env;
}

export const FINAL_STATUSES = new Set(["TERMINATED", "ERROR", "CANCELLED"]);
