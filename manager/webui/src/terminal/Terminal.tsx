// The session's shell over the terminal websocket (loaded lazily: xterm is most of the JS).
// Binary messages are terminal bytes both ways; text messages are JSON control:
// we send {"type":"resize"}, we get {"type":"attached","pty"}, {"type":"exit"}, {"type":"error"}.
// A dropped connection re-attaches to the same shell with ?attach=<pty>.
import { FitAddon } from "@xterm/addon-fit";
import { Terminal as XTerm } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "preact/hooks";
import { terminalUrl } from "../api/client";

export interface TerminalProps {
  sessionRef: string;
}

type State = "connecting" | "connected" | "reconnecting" | "exited" | "failed";

const MAX_RETRIES = 8;

export function Terminal({ sessionRef }: TerminalProps) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>("connecting");
  const [note, setNote] = useState("");
  const [generation, setGeneration] = useState(0); // bump: start over with a new shell

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const term = new XTerm({
      convertEol: false,
      cursorBlink: true,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      fontSize: 14,
      screenReaderMode: false,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element);
    try {
      fit.fit();
    } catch {
      /* not laid out yet */
    }
    const encoder = new TextEncoder();
    let socket: WebSocket | null = null;
    let ptyId = "";
    let retries = 0;
    let done = false; // unmounted or the shell exited
    let retryTimer: number | undefined;

    const sendResize = () => {
      if (socket?.readyState === WebSocket.OPEN)
        socket.send(JSON.stringify({ type: "resize", rows: term.rows, cols: term.cols }));
    };

    const connect = () => {
      const ws = new WebSocket(terminalUrl(sessionRef, term.rows, term.cols, ptyId || undefined));
      ws.binaryType = "arraybuffer";
      socket = ws;
      ws.onopen = () => {
        retries = 0;
        setState("connected");
        setNote("");
        sendResize();
      };
      ws.onmessage = (event) => {
        if (typeof event.data === "string") {
          let msg: { type?: string; pty?: string; code?: number; detail?: string };
          try {
            msg = JSON.parse(event.data);
          } catch {
            return;
          }
          if (msg.type === "attached" && msg.pty) ptyId = String(msg.pty);
          else if (msg.type === "exit") {
            done = true;
            setState("exited");
            setNote(`The shell exited (code ${msg.code ?? "?"}).`);
            term.write(`\r\n[shell exited with code ${msg.code ?? "?"}]\r\n`);
          } else if (msg.type === "error") {
            setNote(msg.detail ?? "terminal error");
          }
        } else {
          term.write(new Uint8Array(event.data as ArrayBuffer));
        }
      };
      ws.onclose = () => {
        if (socket !== ws) return;
        socket = null;
        if (done) return;
        if (retries >= MAX_RETRIES) {
          setState("failed");
          setNote("Lost the connection to the terminal.");
          return;
        }
        retries++;
        setState("reconnecting");
        retryTimer = window.setTimeout(connect, Math.min(500 * 2 ** (retries - 1), 8000));
      };
    };

    const input = term.onData((data) => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
    });
    const binary = term.onBinary((data) => {
      if (socket?.readyState === WebSocket.OPEN) socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0)));
    });
    const resized = term.onResize(sendResize);
    const observer = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        /* hidden */
      }
    }) : null;
    observer?.observe(element);
    connect();
    term.focus();

    return () => {
      done = true;
      window.clearTimeout(retryTimer);
      observer?.disconnect();
      input.dispose();
      binary.dispose();
      resized.dispose();
      const ws = socket;
      socket = null;
      ws?.close();
      term.dispose();
    };
  }, [sessionRef, generation]);

  return (
    <div class="terminal-wrap">
      <div class="terminal-bar">
        <span role="status" data-testid="terminal-state">
          {state}
          {note ? ` — ${note}` : ""}
        </span>
        {(state === "exited" || state === "failed") && (
          <button
            type="button"
            class="small"
            onClick={() => {
              setState("connecting");
              setNote("");
              setGeneration(generation + 1);
            }}
          >
            New shell
          </button>
        )}
      </div>
      <div class="terminal" ref={host} aria-label="Terminal" data-testid="terminal" />
    </div>
  );
}
