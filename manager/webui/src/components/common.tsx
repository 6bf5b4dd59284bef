import type { ComponentChildren } from "preact";
import { ApiError } from "../api/client";
import { onLinkClick } from "../router";

export function Link(props: { href: string; class?: string; children: ComponentChildren; "aria-current"?: "page" }) {
  return (
    <a href={props.href} class={props.class} onClick={onLinkClick} aria-current={props["aria-current"]}>
      {props.children}
    </a>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge status-${status.toLowerCase()}`}>{status || "?"}</span>;
}

interface FieldError {
  loc?: unknown[];
  msg?: string;
  message?: string;
}

/** An error, with its problem+json title, detail and field errors when the API sent them. */
export function ProblemView({ error, id }: { error: Error | undefined; id?: string }) {
  if (!error) return null;
  const problem = error instanceof ApiError ? error.problem : undefined;
  const fieldErrors = (problem?.errors ?? problem?.invalid_params) as FieldError[] | undefined;
  return (
    <div class="problem" role="alert" id={id}>
      {problem?.title ? <strong>{String(problem.title)}</strong> : <strong>Error</strong>}
      {problem?.status ? <span class="muted"> ({String(problem.status)})</span> : null}
      <div class="problem-detail">{error.message}</div>
      {Array.isArray(fieldErrors) && fieldErrors.length > 0 && (
        <ul>
          {fieldErrors.map((item, i) => (
            <li key={i}>
              {Array.isArray(item.loc) ? `${item.loc.join(".")}: ` : ""}
              {item.msg ?? item.message ?? JSON.stringify(item)}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}
