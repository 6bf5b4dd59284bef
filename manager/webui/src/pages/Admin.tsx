import { listAgents, type Agent } from "../api/client";
import { LinkMatrix } from "../components/LinkMatrix";
import { Loading, ProblemView } from "../components/common";
import { formatAge, formatBytes, formatSlots, trimNumber } from "../format";
import { useNow, usePolled } from "../hooks";

function FreeShare({ value }: { value: string | null }) {
  if (value === null || value === undefined) return <span class="muted">unknown</span>;
  const share = Math.max(0, Math.min(1, Number(value)));
  return (
    <span class="share">
      <meter min={0} max={1} value={share} aria-label="free share" /> {trimNumber(value)}
    </span>
  );
}

export function AgentCard({ agent, now }: { agent: Agent; now: number }) {
  return (
    <section class="card agent" aria-labelledby={`agent-${agent.id}`}>
      <h2 id={`agent-${agent.id}`}>
        {agent.id} <span class={`badge agent-${agent.status.toLowerCase()}`}>{agent.status}</span>
      </h2>
      <dl class="facts">
        <dt>Address</dt>
        <dd>{agent.address}</dd>
        <dt>Resource group</dt>
        <dd>{agent.resource_group}</dd>
        <dt>Available</dt>
        <dd>{formatSlots(agent.available_slots)}</dd>
        <dt>Occupied</dt>
        <dd>{formatSlots(agent.occupied_slots)}</dd>
        <dt>Last heartbeat</dt>
        <dd>{agent.last_heartbeat ? `${formatAge(agent.last_heartbeat, now)} ago` : "—"}</dd>
        {agent.status_reason && (
          <>
            <dt>Reason</dt>
            <dd>{agent.status_reason}</dd>
          </>
        )}
      </dl>
      {agent.gpus.length > 0 && (
        <>
          <h3>GPUs</h3>
          <table class="gpus" aria-label={`GPUs of ${agent.id}`}>
            <thead>
              <tr>
                <th scope="col">#</th>
                <th scope="col">Model</th>
                <th scope="col">Memory</th>
                <th scope="col">NUMA</th>
                <th scope="col">Free share</th>
              </tr>
            </thead>
            <tbody>
              {agent.gpus.map((gpu) => (
                <tr key={gpu.uuid || gpu.index}>
                  <td>{gpu.index}</td>
                  <td>{gpu.model}</td>
                  <td>{formatBytes(gpu.memory)}</td>
                  <td>{gpu.numa_node ?? "—"}</td>
                  <td>
                    <FreeShare value={gpu.free_share} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>GPU links</h3>
          <LinkMatrix links={agent.gpu_links} gpus={agent.gpus} label={`GPU link matrix of ${agent.id}`} />
        </>
      )}
    </section>
  );
}

export function AdminPage() {
  const agents = usePolled(() => listAgents(), 5000);
  const now = useNow(5000);
  return (
    <main id="main">
      <h1>Agents</h1>
      <ProblemView error={agents.error} />
      {agents.data ? (
        agents.data.items.length ? (
          agents.data.items.map((agent) => <AgentCard key={agent.id} agent={agent} now={now} />)
        ) : (
          <p class="empty">No agents have registered.</p>
        )
      ) : (
        !agents.error && <Loading what="agents" />
      )}
    </main>
  );
}
