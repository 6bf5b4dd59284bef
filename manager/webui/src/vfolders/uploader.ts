// Resumable uploads with tus-js-client against the storage proxy's tus endpoint (through the manager's relay).
// The upload URL is stored in localStorage under a fingerprint of (vfolder, destination, size, mtime), so after
// a page reload picking the same file again resumes where the proxy left off instead of starting over.
import { Upload, defaultOptions, type PreviousUpload } from "tus-js-client";
import { getCsrfToken } from "../api/client";
import type { VfolderFiles } from "./api";

export const CHUNK_SIZE = 8 * 1024 * 1024; // one PATCH per chunk: each gets a fresh token, a reload loses ≤ 1 chunk

export interface UploadCallbacks {
  onResumed?: (offset: number) => void;
  onProgress: (sent: number, total: number) => void;
  onDone: () => void;
  onError: (message: string) => void;
}

export interface UploadHandle {
  abort: () => void;
}

export function uploadFingerprint(vfid: string, path: string, file: { size: number; lastModified: number }): string {
  return ["corral", vfid, path, file.size, file.lastModified].join("|");
}

export function startUpload(files: VfolderFiles, file: File, path: string, callbacks: UploadCallbacks): UploadHandle {
  const vfid = files.vfolder.vfid;
  const upload = new Upload(file, {
    endpoint: files.uploadEndpoint,
    chunkSize: CHUNK_SIZE,
    retryDelays: [0, 1000, 3000, 5000],
    metadata: { path, filename: file.name, vfid, mtime_ns: String(BigInt(Math.floor(file.lastModified)) * 1_000_000n) },
    fingerprint: async () => uploadFingerprint(vfid, path, file),
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onBeforeRequest: async (req) => {
      const token = await files.tokens.get();
      req.setHeader("Authorization", `Bearer ${token.token}`);
      req.setHeader("X-CSRF-Token", getCsrfToken());
    },
    onAfterResponse: (req, res) => {
      if (req.getMethod() === "HEAD" && res.getStatus() === 200) {
        callbacks.onResumed?.(Number(res.getHeader("Upload-Offset") ?? 0));
      }
      if (res.getStatus() === 401) files.tokens.invalidate();
    },
    onProgress: callbacks.onProgress,
    onSuccess: () => callbacks.onDone(),
    onError: (error) => callbacks.onError(describe(error)),
  });
  let aborted = false;
  upload
    .findPreviousUploads()
    .then((previous) => {
      if (aborted) return;
      if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
      upload.start();
    })
    .catch((err: unknown) => callbacks.onError(describe(err)));
  return {
    abort: () => {
      aborted = true;
      void upload.abort();
    },
  };
}

function describe(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  // tus-js-client's messages carry the whole response; keep the proxy's problem detail when there is one.
  const detail = /"detail"\s*:\s*"([^"]+)"/.exec(text);
  return detail ? detail[1] : text.split(", originated from request")[0];
}

/** Interrupted uploads into this vfolder (a reload, a closed tab): pick the same file again to resume. */
export async function interruptedUploads(vfid: string): Promise<PreviousUpload[]> {
  try {
    const all = await defaultOptions.urlStorage.findAllUploads();
    return all.filter((u) => u.metadata?.vfid === vfid);
  } catch {
    return [];
  }
}

export async function forgetUpload(previous: PreviousUpload): Promise<void> {
  await defaultOptions.urlStorage.removeUpload(previous.urlStorageKey);
}
