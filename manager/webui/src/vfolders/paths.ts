// Paths inside a vfolder: "/"-separated, relative to its root ("" is the root). Pure: unit-tested.

/** Join path pieces, dropping empty parts and stray slashes: joinPath("a/", "/b", "", "c") → "a/b/c". */
export function joinPath(...pieces: string[]): string {
  return pieces
    .flatMap((p) => p.split("/"))
    .filter((p) => p !== "" && p !== ".")
    .join("/");
}

/** The parts of a path: "a/b" → ["a", "b"]; "" → []. */
export function splitPath(path: string): string[] {
  return joinPath(path) === "" ? [] : joinPath(path).split("/");
}

/** "a/b/c" → "a/b"; "a" → ""; "" → "". */
export function parentOf(path: string): string {
  const parts = splitPath(path);
  return parts.slice(0, -1).join("/");
}

/** "a/b/c" → "c". */
export function baseName(path: string): string {
  const parts = splitPath(path);
  return parts[parts.length - 1] ?? "";
}

/** Breadcrumbs for a path: [["(root)", ""], ["a", "a"], ["b", "a/b"]]. */
export function crumbs(path: string, rootLabel = "/"): [string, string][] {
  const out: [string, string][] = [[rootLabel, ""]];
  splitPath(path).forEach((part, index, parts) => out.push([part, parts.slice(0, index + 1).join("/")]));
  return out;
}

/** A name the storage proxy will accept for one path part (no slash, not . or .., no NUL). */
export function validName(name: string): string | null {
  if (!name.trim()) return "a name is required";
  if (name.includes("/")) return "a name cannot contain /";
  if (name === "." || name === "..") return "not . or ..";
  if (name.includes("\0")) return "no NUL characters";
  return null;
}

/** Where an uploaded file goes: the current folder + the file's path inside a picked folder (or its name). */
export function uploadTarget(dir: string, file: { name: string; webkitRelativePath?: string }): string {
  return joinPath(dir, file.webkitRelativePath || file.name);
}

/** A modification time in seconds since the epoch, as "2026-12-01 19:57". */
export function formatMtime(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  const d = new Date(seconds * 1000);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Parse a quota like "10g", "500M", "1.5 TiB", "1024" (bytes) → bytes, or null when blank; throws when bad. */
export function parseSize(text: string): number | null {
  const t = text.trim();
  if (!t) return null;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(t);
  if (!m) throw new Error(`"${text}" is not a size (like 10g or 500m)`);
  const power = " kmgtp".indexOf(m[2].toLowerCase() || " ");
  return Math.round(Number(m[1]) * 1024 ** power);
}
