import { useRef, useState } from "preact/hooks";
import {
  createSession,
  getCapacity,
  listImages,
  listResourceGroups,
  type Capacity,
  type CreateSessionRequest,
  type Image,
  type Session,
} from "../api/client";
import { checkFit, type Fit, type Need, type NeedField } from "../capacity";
import { CapacityTable } from "../components/CapacityTable";
import { ProblemView } from "../components/common";
import { parseEnv } from "../format";
import { useDebounced, usePolled } from "../hooks";
import { navigate } from "../router";
import { parseSize } from "../vfolders/paths";

/** The capacity table is refetched this often while the form is open (and when the window regains focus). */
export const CAPACITY_POLL_MS = 5000;
/** The group field is looked up once it has stayed unchanged this long. */
const GROUP_DEBOUNCE_MS = 300;
export const DEFAULT_GROUP = "default";

type GpuMode = "none" | "whole" | "share";

export interface LaunchValues {
  name: string;
  image: string;
  type: "interactive" | "batch";
  cpu: string;
  mem: string;
  gpuMode: GpuMode;
  gpus: string;
  share: string;
  env: string;
  command: string;
  group: string;
}

export const DEFAULTS: LaunchValues = {
  name: "",
  image: "",
  type: "interactive",
  cpu: "1",
  mem: "1g",
  gpuMode: "none",
  gpus: "1",
  share: "0.5",
  env: "",
  command: "",
  group: DEFAULT_GROUP,
};

/** The form's values as a POST /sessions body (throws on a malformed env line). */
export function toRequest(v: LaunchValues): Partial<CreateSessionRequest> {
  const resources: Record<string, string> = { cpu: v.cpu.trim(), mem: v.mem.trim() };
  if (v.gpuMode === "whole") resources["cuda.device"] = v.gpus.trim();
  if (v.gpuMode === "share") resources["cuda.shares"] = v.share.trim();
  const body: Partial<CreateSessionRequest> = {
    type: v.type,
    resources: resources as unknown as CreateSessionRequest["resources"],
    env: parseEnv(v.env),
  };
  if (v.name.trim()) body.name = v.name.trim();
  if (v.image) body.image = v.image;
  if (v.command.trim()) body.command = v.command.trim();
  if (v.group.trim()) body.resource_group = v.group.trim();
  return body;
}

/** What the form asks for, in numbers (undefined while a field does not parse: the server then says why). */
export function needOf(v: LaunchValues): Need | undefined {
  const cpu = Number(v.cpu.trim() || "0");
  let mem: number | null;
  try {
    mem = parseSize(v.mem) ?? 0;
  } catch {
    return undefined;
  }
  const gpus = v.gpuMode === "whole" ? Number(v.gpus.trim()) : 0;
  const share = v.gpuMode === "share" ? Number(v.share.trim()) : 0;
  if (![cpu, gpus, share].every((n) => Number.isFinite(n) && n >= 0)) return undefined;
  return { cpu, mem, gpus, share };
}

function FitMessage({ fit, field, refused }: { fit: Fit; field: NeedField; refused: boolean }) {
  if (fit.kind !== "never" || fit.field !== field) return null;
  return (
    <div class="field-error" id={`launch-${field}-fit`} role={refused ? "alert" : undefined} data-testid="fit-never">
      {fit.message}
    </div>
  );
}

export function LaunchForm(props: {
  images: Image[];
  submit: (body: Partial<CreateSessionRequest>) => Promise<Session>;
  onCreated: (session: Session) => void;
  /** What the group has free now; without it the form checks nothing before submitting. */
  loadCapacity?: (group: string) => Promise<Capacity>;
  /** Resource groups to suggest in the group field. */
  groups?: string[];
}) {
  const [v, setV] = useState<LaunchValues>(DEFAULTS);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  const [refused, setRefused] = useState(false);
  const form = useRef<HTMLFormElement>(null);
  const set = <K extends keyof LaunchValues>(key: K) => (e: Event) => {
    setRefused(false);
    setV({ ...v, [key]: (e.currentTarget as HTMLInputElement).value as LaunchValues[K] });
  };

  const group = useDebounced(v.group.trim(), GROUP_DEBOUNCE_MS);
  const { loadCapacity } = props;
  const capacity = usePolled(
    () => (loadCapacity ? loadCapacity(group) : Promise.resolve(undefined)),
    loadCapacity ? CAPACITY_POLL_MS : 0,
    [group, loadCapacity],
  );
  // Only figures for the group in the field count (an empty field: the caller's default group, whichever).
  const current =
    capacity.data && !capacity.error && (!group || capacity.data.resource_group === group) && group === v.group.trim()
      ? capacity.data
      : undefined;
  const need = needOf(v);
  const fit: Fit = need ? checkFit(need, current) : { kind: "unknown" };
  const described = (field: NeedField) => (fit.kind === "never" && fit.field === field ? `launch-${field}-fit` : undefined);
  const invalid = (field: NeedField) => (fit.kind === "never" && fit.field === field ? true : undefined);

  async function onSubmit(event: Event) {
    event.preventDefault();
    setError(undefined);
    if (fit.kind === "never") {
      // Refused here: no agent of the group could ever start it, so the manager would refuse it too.
      setRefused(true);
      form.current?.querySelector<HTMLElement>(`[aria-describedby~="launch-${fit.field}-fit"]`)?.focus();
      return;
    }
    setBusy(true);
    try {
      props.onCreated(await props.submit(toRequest(v)));
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  }

  return (
    <form
      ref={form}
      class="launch card"
      onSubmit={onSubmit}
      aria-describedby={error ? "launch-error" : undefined}
      noValidate
    >
      <div class="grid">
        <div class="field">
          <label for="launch-name">Name (optional)</label>
          <input id="launch-name" value={v.name} onInput={set("name")} placeholder="generated when empty" />
        </div>
        <div class="field">
          <label for="launch-image">Image</label>
          <select id="launch-image" value={v.image} onChange={set("image")}>
            <option value="">Manager default</option>
            {props.images.map((image) => (
              <option key={image.name} value={image.name}>
                {image.name}
                {image.labels?.["ai.corral.python"] ? ` (Python ${image.labels["ai.corral.python"]})` : ""}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="launch-type">Type</label>
          <select id="launch-type" value={v.type} onChange={set("type")}>
            <option value="interactive">interactive</option>
            <option value="batch">batch (runs the command, then ends)</option>
          </select>
        </div>
        <div class="field">
          <label for="launch-cpu">CPU cores</label>
          <input
            id="launch-cpu"
            type="number"
            min="0.1"
            step="0.1"
            value={v.cpu}
            onInput={set("cpu")}
            required
            aria-invalid={invalid("cpu")}
            aria-describedby={described("cpu")}
          />
          <FitMessage fit={fit} field="cpu" refused={refused} />
        </div>
        <div class="field">
          <label for="launch-mem">Memory</label>
          <input
            id="launch-mem"
            value={v.mem}
            onInput={set("mem")}
            aria-describedby={["launch-mem-hint", described("mem")].filter(Boolean).join(" ")}
            aria-invalid={invalid("mem")}
            required
          />
          <small id="launch-mem-hint">e.g. 512m, 4g</small>
          <FitMessage fit={fit} field="mem" refused={refused} />
        </div>
        <fieldset class="field">
          <legend>GPU</legend>
          <label class="inline">
            <input type="radio" name="gpu-mode" value="none" checked={v.gpuMode === "none"} onChange={set("gpuMode")} />{" "}
            None
          </label>
          <label class="inline">
            <input type="radio" name="gpu-mode" value="whole" checked={v.gpuMode === "whole"} onChange={set("gpuMode")} />{" "}
            Whole GPUs
          </label>
          <label class="inline">
            <input type="radio" name="gpu-mode" value="share" checked={v.gpuMode === "share"} onChange={set("gpuMode")} />{" "}
            A GPU share
          </label>
          {v.gpuMode === "whole" && (
            <>
              <label for="launch-gpus">Number of GPUs</label>
              <input
                id="launch-gpus"
                type="number"
                min="1"
                step="1"
                value={v.gpus}
                onInput={set("gpus")}
                aria-invalid={invalid("gpus")}
                aria-describedby={described("gpus")}
              />
              <FitMessage fit={fit} field="gpus" refused={refused} />
            </>
          )}
          {v.gpuMode === "share" && (
            <>
              <label for="launch-share">GPU share (0.01 steps)</label>
              <input
                id="launch-share"
                type="number"
                min="0.01"
                step="0.01"
                value={v.share}
                onInput={set("share")}
                aria-invalid={invalid("share")}
                aria-describedby={described("share")}
              />
              <FitMessage fit={fit} field="share" refused={refused} />
            </>
          )}
        </fieldset>
        <div class="field">
          <label for="launch-group">Resource group</label>
          <input
            id="launch-group"
            value={v.group}
            onInput={set("group")}
            list="launch-group-options"
            spellcheck={false}
            autocomplete="off"
            placeholder="your default group"
          />
          <datalist id="launch-group-options">
            {(props.groups ?? []).map((name) => (
              <option key={name} value={name} />
            ))}
          </datalist>
        </div>
      </div>
      {loadCapacity && (
        <section class="capacity-panel" aria-labelledby="capacity-heading">
          <h2 id="capacity-heading">Free now{current ? ` in ${current.resource_group}` : ""}</h2>
          {capacity.error ? (
            <ProblemView error={capacity.error} />
          ) : current ? (
            <CapacityTable capacity={current} highlight={fit.kind === "fits" ? fit.nodes : []} />
          ) : (
            <p class="muted">Loading…</p>
          )}
        </section>
      )}
      <div class="field">
        <label for="launch-env">Environment (KEY=VALUE, one a line)</label>
        <textarea id="launch-env" rows={3} value={v.env} onInput={set("env")} spellcheck={false} />
      </div>
      <div class="field">
        <label for="launch-command">Command (optional)</label>
        <input id="launch-command" value={v.command} onInput={set("command")} spellcheck={false} />
      </div>
      {fit.kind === "wait" && (
        <p class="notice" role="status" data-testid="fit-wait">
          {fit.message}
        </p>
      )}
      <ProblemView error={error} id="launch-error" />
      <button type="submit" class="primary" disabled={busy}>
        {busy ? "Launching…" : "Launch session"}
      </button>
    </form>
  );
}

export function LaunchPage() {
  const images = usePolled(() => listImages(), 0);
  const groups = usePolled(() => listResourceGroups(), 0);
  return (
    <main id="main">
      <h1>Launch a session</h1>
      <ProblemView error={images.error} />
      <LaunchForm
        images={images.data?.items ?? []}
        submit={createSession}
        loadCapacity={getCapacity}
        groups={groups.data?.items.map((g) => g.name)}
        onCreated={(session) => navigate(`/sessions/${encodeURIComponent(session.id)}`)}
      />
    </main>
  );
}
