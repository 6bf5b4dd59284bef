// The upload queue's state (pure: unit-tested). Each item is one file on its way to a vfolder path.

export type UploadStatus = "queued" | "uploading" | "paused" | "done" | "error";

export interface UploadItem {
  id: string;
  path: string; // destination inside the vfolder
  size: number;
  sent: number;
  status: UploadStatus;
  resumedFrom?: number; // bytes the server already had when this upload resumed
  error?: string;
}

export type UploadAction =
  | { type: "add"; items: { id: string; path: string; size: number }[] }
  | { type: "start"; id: string }
  | { type: "resumed"; id: string; offset: number }
  | { type: "progress"; id: string; sent: number }
  | { type: "done"; id: string }
  | { type: "error"; id: string; error: string }
  | { type: "pause"; id: string }
  | { type: "remove"; id: string }
  | { type: "clearFinished" };

export function uploadReducer(state: UploadItem[], action: UploadAction): UploadItem[] {
  const update = (id: string, change: (item: UploadItem) => UploadItem) =>
    state.map((item) => (item.id === id ? change(item) : item));
  switch (action.type) {
    case "add":
      return [
        ...state.filter((item) => !action.items.some((n) => n.id === item.id)),
        ...action.items.map((n) => ({ ...n, sent: 0, status: "queued" as const })),
      ];
    case "start":
      return update(action.id, (item) => ({ ...item, status: "uploading", error: undefined }));
    case "resumed":
      return update(action.id, (item) => ({ ...item, resumedFrom: action.offset, sent: Math.max(item.sent, action.offset) }));
    case "progress":
      return update(action.id, (item) => ({ ...item, sent: Math.min(action.sent, item.size) }));
    case "done":
      return update(action.id, (item) => ({ ...item, sent: item.size, status: "done" }));
    case "error":
      return update(action.id, (item) => ({ ...item, status: "error", error: action.error }));
    case "pause":
      return update(action.id, (item) => (item.status === "uploading" ? { ...item, status: "paused" } : item));
    case "remove":
      return state.filter((item) => item.id !== action.id);
    case "clearFinished":
      return state.filter((item) => item.status !== "done");
  }
}

/** Totals over the queue, for one progress bar: bytes sent of bytes to send, and how many are active. */
export function queueTotals(items: UploadItem[]): { sent: number; size: number; active: number; failed: number } {
  let sent = 0;
  let size = 0;
  let active = 0;
  let failed = 0;
  for (const item of items) {
    sent += item.sent;
    size += item.size;
    if (item.status === "uploading" || item.status === "queued") active++;
    if (item.status === "error") failed++;
  }
  return { sent, size, active, failed };
}

/** The next items to start, keeping at most `parallel` uploading at once. */
export function nextToStart(items: UploadItem[], parallel: number): UploadItem[] {
  const running = items.filter((item) => item.status === "uploading").length;
  return items.filter((item) => item.status === "queued").slice(0, Math.max(0, parallel - running));
}

/** Percent 0–100 (100 for an empty file). */
export function percent(sent: number, size: number): number {
  if (size <= 0) return 100;
  return Math.min(100, Math.floor((sent / size) * 100));
}
