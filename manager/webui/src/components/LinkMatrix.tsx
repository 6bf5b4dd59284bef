import type { AgentGpu } from "../api/client";
import { linkClass } from "../format";

export const LINK_LEGEND: [string, string, string][] = [
  ["nv", "NV#", "NVLink (# bonded links)"],
  ["pix", "PIX", "at most one PCIe bridge"],
  ["pxb", "PXB", "several PCIe bridges, no host bridge"],
  ["phb", "PHB", "through a PCIe host bridge (CPU)"],
  ["node", "NODE", "across host bridges within a NUMA node"],
  ["sys", "SYS", "across NUMA nodes (SMP interconnect)"],
];

/** The `nvidia-smi topo -m` matrix between an agent's GPUs, each cell coloured by its link class. */
export function LinkMatrix({ links, gpus, label }: { links: string[][]; gpus: AgentGpu[]; label: string }) {
  if (!links.length) return <p class="muted">No GPU link information.</p>;
  const name = (i: number) => `GPU${gpus[i]?.index ?? i}`;
  return (
    <div class="matrix-wrap">
      <table class="matrix" aria-label={label}>
        <thead>
          <tr>
            <th scope="col">
              <span class="sr-only">from / to</span>
            </th>
            {links.map((_, i) => (
              <th scope="col" key={i}>
                {name(i)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {links.map((row, i) => (
            <tr key={i}>
              <th scope="row">{name(i)}</th>
              {row.map((cell, j) => (
                <td key={j} class={`link link-${linkClass(cell)}`} title={`${name(i)} ↔ ${name(j)}: ${cell}`}>
                  {cell}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      <ul class="legend" aria-label="Link classes">
        {LINK_LEGEND.map(([cls, short, text]) => (
          <li key={cls}>
            <span class={`link link-${cls} swatch`}>{short}</span> {text}
          </li>
        ))}
      </ul>
    </div>
  );
}
