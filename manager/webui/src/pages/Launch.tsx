import { useState } from "preact/hooks";
import { createSession, listImages, type CreateSessionRequest, type Image, type Session } from "../api/client";
import { ProblemView } from "../components/common";
import { parseEnv } from "../format";
import { usePolled } from "../hooks";
import { navigate } from "../router";

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
  return body;
}

export function LaunchForm(props: {
  images: Image[];
  submit: (body: Partial<CreateSessionRequest>) => Promise<Session>;
  onCreated: (session: Session) => void;
}) {
  const [v, setV] = useState<LaunchValues>(DEFAULTS);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error | undefined>();
  const set = <K extends keyof LaunchValues>(key: K) => (e: Event) =>
    setV({ ...v, [key]: (e.currentTarget as HTMLInputElement).value as LaunchValues[K] });

  async function onSubmit(event: Event) {
    event.preventDefault();
    setError(undefined);
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
    <form class="launch card" onSubmit={onSubmit} aria-describedby={error ? "launch-error" : undefined} noValidate>
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
          <input id="launch-cpu" type="number" min="0.1" step="0.1" value={v.cpu} onInput={set("cpu")} required />
        </div>
        <div class="field">
          <label for="launch-mem">Memory</label>
          <input id="launch-mem" value={v.mem} onInput={set("mem")} aria-describedby="launch-mem-hint" required />
          <small id="launch-mem-hint">e.g. 512m, 4g</small>
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
              <input id="launch-gpus" type="number" min="1" step="1" value={v.gpus} onInput={set("gpus")} />
            </>
          )}
          {v.gpuMode === "share" && (
            <>
              <label for="launch-share">GPU share (0.01 steps)</label>
              <input id="launch-share" type="number" min="0.01" step="0.01" value={v.share} onInput={set("share")} />
            </>
          )}
        </fieldset>
      </div>
      <div class="field">
        <label for="launch-env">Environment (KEY=VALUE, one a line)</label>
        <textarea id="launch-env" rows={3} value={v.env} onInput={set("env")} spellcheck={false} />
      </div>
      <div class="field">
        <label for="launch-command">Command (optional)</label>
        <input id="launch-command" value={v.command} onInput={set("command")} spellcheck={false} />
      </div>
      <ProblemView error={error} id="launch-error" />
      <button type="submit" class="primary" disabled={busy}>
        {busy ? "Launching…" : "Launch session"}
      </button>
    </form>
  );
}

export function LaunchPage() {
  const images = usePolled(() => listImages(), 0);
  return (
    <main id="main">
      <h1>Launch a session</h1>
      <ProblemView error={images.error} />
      <LaunchForm
        images={images.data?.items ?? []}
        submit={createSession}
        onCreated={(session) => navigate(`/sessions/${encodeURIComponent(session.id)}`)}
      />
    </main>
  );
}
