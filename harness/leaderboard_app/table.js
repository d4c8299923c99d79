// The standings table (harness/leaderboard_app/table.py): rows arrive ranked and formatted by Python; this only
// draws them, sorts them when a header is clicked (by the raw values, all rows, missing values last) and shows
// them a page at a time. No framework and no chunk to fetch: the page stays light for a reader's first view.
const PAGE_ROWS = 100;

export default function (component) {
  const { parentElement } = component;
  const data = decode(component.data);
  let root = parentElement.querySelector(".standings");
  if (!root) {
    root = document.createElement("div");
    root.className = "standings";
    parentElement.appendChild(root);
  }
  // Sort and page survive a rerun with the same columns (e.g. a budget typed in); new columns reset them.
  const signature = data.columns.map((c) => c.name).join("|");
  if (root.dataset.signature !== signature) {
    root.dataset.signature = signature;
    root.dataset.sortColumn = "";
    root.dataset.sortDirection = "";
  }
  root.dataset.shown = String(PAGE_ROWS);
  draw(root, data);
}

// table.py sends UTF-8 JSON as bytes (Streamlit forwards bytes untouched); a plain object is taken as it is.
function decode(data) {
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return JSON.parse(new TextDecoder().decode(data));
  return typeof data === "string" ? JSON.parse(data) : data;
}

function order(data, column, direction) {
  const indices = data.values.map((_, i) => i);
  if (column < 0) return indices; // the ranking's own order
  const sign = direction === "descending" ? -1 : 1;
  return indices.sort((a, b) => {
    const x = data.values[a][column];
    const y = data.values[b][column];
    if (x === null || y === null) return x === y ? a - b : x === null ? 1 : -1;
    const cmp = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return cmp === 0 ? a - b : sign * cmp;
  });
}

function draw(root, data) {
  const column = data.columns.findIndex((c) => c.name === root.dataset.sortColumn);
  const direction = root.dataset.sortDirection || "ascending";
  const shown = Math.min(Number(root.dataset.shown), data.values.length);
  const rows = order(data, column, direction).slice(0, shown);

  const table = document.createElement("table");
  const header = table.createTHead().insertRow();
  data.columns.forEach((spec, i) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = spec.label;
    th.dataset.column = spec.name;
    if (spec.help) th.title = spec.help;
    if (spec.numeric) th.className = "number";
    th.setAttribute("aria-sort", i === column ? direction : "none");
    th.tabIndex = 0; // sortable from the keyboard too
    const sort = () => {
      const again = root.dataset.sortColumn === spec.name;
      root.dataset.sortColumn = spec.name;
      root.dataset.sortDirection = again && direction === "ascending" ? "descending" : "ascending";
      draw(root, data);
      root.querySelector(`th[data-column="${CSS.escape(spec.name)}"]`)?.focus();
    };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        sort();
      }
    });
    header.appendChild(th);
  });
  const body = table.createTBody();
  for (const index of rows) {
    const tr = body.insertRow();
    data.text[index].forEach((text, i) => {
      const td = tr.insertCell();
      td.textContent = text;
      if (data.columns[i].numeric) td.className = "number";
    });
  }

  const scroller = document.createElement("div");
  scroller.className = "scroller";
  scroller.appendChild(table);
  const footer = document.createElement("div");
  footer.className = "footer";
  footer.textContent = `${shown} of ${data.values.length} rows shown · click a column header to sort`;
  if (shown < data.values.length) {
    const more = document.createElement("button");
    more.type = "button";
    more.textContent = `Show ${Math.min(PAGE_ROWS, data.values.length - shown)} more`;
    more.addEventListener("click", () => {
      root.dataset.shown = String(shown + PAGE_ROWS);
      draw(root, data);
    });
    footer.appendChild(more);
  }
  root.replaceChildren(scroller, footer);
  root.dataset.rows = String(data.values.length);
}
