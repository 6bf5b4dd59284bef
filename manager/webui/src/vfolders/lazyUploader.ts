// The upload code (tus-js-client and ./uploader) is its own chunk, fetched the first time a vfolder's page needs
// it, so the first page's JS does not carry it. Only types come from there statically.
type Uploader = typeof import("./uploader");

let loading: Promise<Uploader> | undefined;

export function loadUploader(): Promise<Uploader> {
  loading ??= import("./uploader").catch((err: unknown) => {
    loading = undefined; // a failed fetch (e.g. offline, or a new deploy) is retried next time
    throw err;
  });
  return loading;
}
