import { listVfolders } from "../api/client";
import { Loading, ProblemView } from "../components/common";
import { formatBytes } from "../format";
import { usePolled } from "../hooks";

export function VfoldersPage() {
  const vfolders = usePolled(() => listVfolders(), 10000);
  const items = vfolders.data?.items ?? [];
  return (
    <main id="main">
      <h1>Vfolders</h1>
      <ProblemView error={vfolders.error} />
      {!vfolders.data && !vfolders.error && <Loading what="vfolders" />}
      {vfolders.data && items.length === 0 && <p class="empty">No vfolders. Create one with `corral vfolder create`.</p>}
      {items.length > 0 && (
        <table class="responsive" aria-label="Vfolders">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Owner</th>
              <th scope="col">Host</th>
              <th scope="col">Permission</th>
              <th scope="col">Quota</th>
              <th scope="col">Status</th>
            </tr>
          </thead>
          <tbody>
            {items.map((v) => (
              <tr key={v.id}>
                <td data-label="Name">{v.name}</td>
                <td data-label="Owner">
                  {v.owner_kind === "project" ? `project ${v.project ?? v.owner}` : v.owner}
                </td>
                <td data-label="Host">{v.host}</td>
                <td data-label="Permission">{v.permission}</td>
                <td data-label="Quota">{v.quota_bytes ? formatBytes(v.quota_bytes) : "none"}</td>
                <td data-label="Status">{v.status}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </main>
  );
}
