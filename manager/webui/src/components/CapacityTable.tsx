import type { Capacity } from "../api/client";
import { formatBytes, trimNumber } from "../format";

/** The alive nodes of a resource group and what they have free now (the launch form's side table). */
export function CapacityTable({ capacity, highlight = [] }: { capacity: Capacity; highlight?: string[] }) {
  const label = `Free now in ${capacity.resource_group}`;
  if (capacity.nodes.length === 0) {
    return (
      <p class="muted" data-testid="capacity-empty">
        No agent of group “{capacity.resource_group}” is up now.
      </p>
    );
  }
  return (
    <table class="capacity" aria-label={label}>
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">Free GPUs</th>
          <th scope="col">Free share per GPU</th>
          <th scope="col">Free cores</th>
          <th scope="col">Free memory</th>
        </tr>
      </thead>
      <tbody>
        {capacity.nodes.map((node) => (
          <tr key={node.id} data-node={node.id} class={highlight.includes(node.id) ? "fits" : undefined}>
            <th scope="row" title={node.address || undefined}>
              {node.id}
            </th>
            <td data-label="Free GPUs">{node.gpus_total ? `${node.gpus_free} / ${node.gpus_total}` : "—"}</td>
            <td data-label="Free share per GPU" class="gpu-shares">
              {node.gpus.length === 0
                ? "—"
                : node.gpus.map((gpu) => (
                    <span
                      key={gpu.index}
                      class={`gpu-share${Number(gpu.free_share) === 0 ? " taken" : ""}`}
                      data-gpu={gpu.index}
                      data-free={gpu.free_share}
                      title={`GPU ${gpu.index}: ${gpu.model}, ${formatBytes(gpu.memory)}`}
                    >
                      {gpu.index}: {trimNumber(gpu.free_share)}
                    </span>
                  ))}
            </td>
            <td data-label="Free cores">
              {trimNumber(node.cpu_free)} / {trimNumber(node.cpu_total)}
            </td>
            <td data-label="Free memory">
              {formatBytes(node.mem_free)} / {formatBytes(node.mem_total)}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
