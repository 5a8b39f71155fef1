// The run page's charts: the timeline (clicks open a step, the selected step is outlined,
// a running node's bar grows with the clock, zooming into an aggregated timeline asks
// Python for that window), the breakdown and the graph. Python builds every figure
// (timeline.json); this module only draws them with Plotly and refetches them, at most
// twice a second, as the run grows.
import { coalesce } from "./live.js";
import { getJSON } from "./http.js";
import { number } from "./format.js";
import { onThemeChange, themed } from "./theme.js";

const $ = (id) => document.getElementById(id);
const TIMELINE_MAX_HEIGHT = 170;

// plotly: a promise of window.Plotly (loaded after the step list); selected(): the selected
// step's index; offsetSpan(index): [start, end] of a step the timeline has no bar for;
// onPick(index): a bar was clicked; onNode(name): a breakdown bar or a graph node was;
// onEdge(from, to): a graph edge was.
export function runCharts({ plotly, timelineUrl, selected, offsetSpan, onPick, onNode, onEdge }) {
  const plotConfig = { displayModeBar: false, responsive: true };
  const timeline = $("timeline");
  let figures = null;
  let spans = new Map(); // step index -> [start, end] on the timeline's x axis
  let growing = null;

  // Where each step sits on the timeline: its own bar when bars are per execution, else the
  // offset the page data gave it.
  function readSpans(figure) {
    spans = new Map();
    if (figure.window?.aggregated) return;
    for (const trace of figure.data) {
      trace.customdata.forEach((index, i) => spans.set(index, [trace.base[i], trace.base[i] + trace.x[i]]));
    }
  }

  function spanOf(index) {
    const span = spans.get(index);
    if (span) return span;
    return offsetSpan(index);
  }

  // The selected step is outlined on the timeline.
  function mark() {
    if (!window.Plotly || !timeline.layout) return;
    const span = spanOf(selected());
    const shapes = span ? [{
      type: "rect", xref: "x", yref: "paper", x0: span[0], x1: span[1], y0: 0, y1: 1,
      line: { color: "var(--chart-mark)", width: 1 }, fillcolor: "var(--chart-mark-fill)", layer: "below",
    }] : [];
    Plotly.relayout(timeline, { shapes: themed([], { shapes })[1].shapes });
  }

  // A node that is running has a bar in the "running" trace; it widens with the clock until
  // the node finishes (and the next refetch drops it).
  function growRunning(figure) {
    clearInterval(growing);
    growing = null;
    const at = figure.data.findIndex((t) => t.name === "running");
    if (at < 0) return;
    const widths = figure.data[at].x.slice();
    const since = performance.now();
    growing = setInterval(() => {
      const elapsed = performance.now() - since;
      Plotly.restyle(timeline, { x: [widths.map((w) => w + elapsed)] }, [at]);
    }, 250);
  }

  // The whole run's timeline, and the window zoomed into when it is aggregated: zooming
  // asks Python for that window, down to single executions.
  let overview = null;
  let zoomed = null;

  let drawn = null;  // what drawTimeline drew last, drawn again in the other theme
  async function drawTimeline(next, { window: inWindow = false } = {}) {
    const Plotly = await plotly;
    drawn = [next, { window: inWindow }];
    if (!inWindow) { overview = next.timeline; zoomed = null; }
    const figure = next.timeline;
    // A copy: Plotly writes a zoom into the layout it is given, and the overview is
    // drawn again after a window (with the zoom in it, it stayed zoomed).
    const layout = { ...structuredClone(figure.layout), shapes: [] };
    // Compact on the run page: the step panel below it needs the height more.
    layout.height = Math.min(layout.height ?? TIMELINE_MAX_HEIGHT, TIMELINE_MAX_HEIGHT);
    // Double-click is ours (below): Plotly's own would "reset" to the window last drawn.
    await Plotly.react(timeline, ...themed(figure.data, layout), { ...plotConfig, doubleClick: false });
    readSpans(figure);
    mark();
    growRunning(figure);
    const w = figure.window;
    $("timeline-window").textContent = w.aggregated
      ? `${number(w.executions)} executions, grouped per node and time slice: drag over a span to zoom in`
      : zoomed ? `${number(w.executions)} executions in this window · double-click to see the whole run` : "";
  }

  let zoomTicket = 0;
  async function zoom(event) {
    if (event["xaxis.autorange"]) {
      if (zoomed) drawTimeline({ timeline: overview });
      return;
    }
    const range = event["xaxis.range"] ?? [event["xaxis.range[0]"], event["xaxis.range[1]"]];
    if (range[0] == null || range[1] == null) return;
    // Everything is drawn already when the whole run fits: Plotly zooms by itself.
    if (!overview?.window.aggregated) return;
    const ticket = ++zoomTicket;
    const windowed = await getJSON(`${timelineUrl}?from=${range[0]}&to=${range[1]}`).catch(() => null);
    if (!windowed || ticket !== zoomTicket) return;
    zoomed = range;
    await drawTimeline(windowed, { window: true });
  }

  let chartsBound = false;
  async function drawCharts() {
    const Plotly = await plotly;
    await Plotly.react($("breakdown"), ...themed(figures.breakdown.data, figures.breakdown.layout), plotConfig);
    await Plotly.react($("graph"), ...themed(figures.graph.data, figures.graph.layout), plotConfig);
    if (chartsBound) return;
    chartsBound = true;
    // A bar's customdata is its node; a graph node's too, an edge's [from, to, count].
    $("breakdown").on("plotly_click", (event) => {
      const node = event.points?.[0]?.customdata;
      if (typeof node === "string") onNode(node);
    });
    $("graph").on("plotly_click", (event) => {
      const picked = event.points?.[0]?.customdata;
      if (typeof picked === "string") onNode(picked);
      else if (Array.isArray(picked)) onEdge(picked[0], picked[1]);
    });
  }

  const refresh = coalesce(500, async () => {
    const next = await getJSON(timelineUrl).catch(() => null);
    if (!next) return; // the run's next event asks again
    figures = next;
    await drawTimeline(figures);
    await drawCharts();
  });

  // The timeline first (the page is interactive once it and the first step are shown),
  // then clicks on it open steps and zooming asks for a window.
  async function start(initial) {
    figures = initial;
    await drawTimeline(figures);
    timeline.on("plotly_click", (event) => {
      const index = event.points?.[0]?.customdata;
      if (index != null) onPick(index);
    });
    timeline.on("plotly_relayout", zoom);
    onThemeChange(async () => {
      if (drawn) await drawTimeline(...drawn);
      await drawCharts();
    });
    // One double-click shows the whole run again: the overview when a window of an
    // aggregated run is drawn, else Plotly's autorange.
    timeline.on("plotly_doubleclick", async () => {
      const Plotly = await plotly;
      zoomTicket++;  // a window still loading is not drawn over the overview
      if (zoomed) await drawTimeline({ timeline: overview });
      else await Plotly.relayout(timeline, { "xaxis.autorange": true, "yaxis.autorange": true });
    });
  }

  return { start, drawCharts, mark, refresh };
}
