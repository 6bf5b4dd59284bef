// Row windowing for long tables: only the rows in (and near) the scroll container's viewport are in the
// DOM; two spacer rows stand in for the others, so the scrollbar and scroll position stay true.
// Rows are assumed to be of one height, measured from the rendered rows (a default until then).
import type { ComponentChildren } from "preact";
import { useLayoutEffect, useRef, useState } from "preact/hooks";

export const DEFAULT_ROW_PX = 41;
const DEFAULT_VIEWPORT_PX = 600; // before the container is measured (and in jsdom, which lays nothing out)
const OVERSCAN = 10;

export interface RowWindow {
  start: number; // first rendered row
  end: number; // one past the last rendered row
  padTop: number; // px of the rows above the window
  padBottom: number; // px of the rows below it
}

/** Which rows to render for a scroll position (pure, so it is tested on its own). */
export function windowFor(
  count: number,
  rowPx: number,
  scrollTop: number,
  viewportPx: number,
  overscan = OVERSCAN,
): RowWindow {
  const first = Math.floor(Math.max(0, scrollTop) / rowPx);
  const start = Math.max(0, Math.min(count, first - overscan));
  const end = Math.min(count, first + Math.ceil(viewportPx / rowPx) + overscan);
  return { start, end: Math.max(start, end), padTop: start * rowPx, padBottom: Math.max(0, count - end) * rowPx };
}

/**
 * A scrollable table body window. `renderRow(i)` renders row `i` (a `<tr>`); `head` is the `<thead>`.
 * The container is a focusable region, so the keyboard scrolls it (arrows, Page Up/Down, Home/End).
 */
export function VirtualTable(props: {
  count: number;
  columns: number;
  head: ComponentChildren;
  renderRow: (index: number) => ComponentChildren;
  label: string;
  tableClass?: string;
  colgroup?: ComponentChildren;
}) {
  const { count, columns } = props;
  const scroller = useRef<HTMLDivElement>(null);
  const body = useRef<HTMLTableSectionElement>(null);
  const [rowPx, setRowPx] = useState(DEFAULT_ROW_PX);
  const [view, setView] = useState({ top: 0, height: DEFAULT_VIEWPORT_PX });
  const win = windowFor(count, rowPx, view.top, view.height);

  const measure = () => {
    const el = scroller.current;
    if (!el) return;
    const height = el.clientHeight || DEFAULT_VIEWPORT_PX;
    const top = el.scrollTop;
    // Re-render only when the window would change, not on every scroll event.
    setView((old) => {
      const a = windowFor(count, rowPx, old.top, old.height);
      const b = windowFor(count, rowPx, top, height);
      return a.start === b.start && a.end === b.end && old.height === height ? old : { top, height };
    });
  };

  // The height of a row: the mean distance between the rendered rows (margins included). Measured once,
  // and again when the window is resized (row heights change with the layout, e.g. at phone width).
  const measureRows = () => {
    const rows = body.current?.querySelectorAll<HTMLTableRowElement>("tr[data-row]");
    if (!rows || rows.length < 2) return;
    const px = (rows[rows.length - 1].offsetTop - rows[0].offsetTop) / (rows.length - 1);
    if (px > 0) setRowPx((old) => (Math.abs(px - old) > 1 ? px : old));
  };
  const measured = useRef(false);
  useLayoutEffect(() => {
    if (!measured.current) {
      measured.current = true;
      measureRows();
    }
    measure();
  });

  useLayoutEffect(() => {
    const onResize = () => {
      measureRows();
      measure();
    };
    window.addEventListener("resize", onResize);
    return () => window.removeEventListener("resize", onResize);
  });

  const rows: ComponentChildren[] = [];
  for (let i = win.start; i < win.end; i++) rows.push(props.renderRow(i));
  return (
    <div
      class="table-scroll"
      ref={scroller}
      onScroll={measure}
      tabIndex={0}
      role="region"
      aria-label={`${props.label} (${count} rows, scrollable)`}
    >
      <table class={`${props.tableClass ?? ""} virtual`} aria-label={props.label} aria-rowcount={count + 1}>
        {props.colgroup}
        {props.head}
        <tbody ref={body}>
          {win.padTop > 0 && (
            <tr class="spacer" aria-hidden="true" style={{ height: `${win.padTop}px` }}>
              <td colSpan={columns} />
            </tr>
          )}
          {rows}
          {win.padBottom > 0 && (
            <tr class="spacer" aria-hidden="true" style={{ height: `${win.padBottom}px` }}>
              <td colSpan={columns} />
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}
