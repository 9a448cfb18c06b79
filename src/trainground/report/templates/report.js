/* trainground report: draw the figures, make tables sortable and filterable. No network. */
(function () {
  "use strict";

  function sortBy(table, th) {
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.dataset.kind === "num" || th.dataset.kind === "img";
    var dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
    table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keys = rows.map(function (row, i) {
      var raw = row.cells[index].dataset.sort;
      return { row: row, key: numeric ? parseFloat(raw) : raw, i: i };
    });
    keys.sort(function (a, b) {
      var c = numeric ? a.key - b.key : String(a.key).localeCompare(String(b.key), undefined, { numeric: true });
      return c !== 0 && !isNaN(c) ? sign * c : a.i - b.i;  // stable: ties keep their order
    });
    var fragment = document.createDocumentFragment();
    keys.forEach(function (k) { fragment.appendChild(k.row); });
    body.appendChild(fragment);
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("th").forEach(function (th) {
      th.addEventListener("click", function () { sortBy(table, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th); }
      });
    });
  });

  document.querySelectorAll("select[data-filter-for]").forEach(function (select) {
    var table = document.getElementById(select.dataset.filterFor);
    var counter = document.getElementById(select.dataset.filterFor + "-count");
    function apply() {
      var wanted = select.value, shown = 0;
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var match = !wanted || (" " + row.dataset.issues + " ").indexOf(" " + wanted + " ") >= 0;
        row.hidden = !match;
        if (match) { shown += 1; }
      });
      if (counter) { counter.textContent = wanted ? shown + " rows shown" : ""; }
    }
    select.addEventListener("change", apply);
  });

  var specs = JSON.parse(document.getElementById("tg-figures").textContent);
  var config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["select2d", "lasso2d"] };
  var divs = Array.prototype.slice.call(document.querySelectorAll("div.plot[data-fig]"));
  Promise.all(divs.map(function (div) {
    var spec = specs[div.dataset.fig];
    return Plotly.newPlot(div, spec.data, spec.layout, config);
  })).then(function () {
    // Read by the browser test and the load-time benchmark: ms from navigation start.
    window.tgRenderedAt = performance.now();
    document.documentElement.setAttribute("data-rendered", String(divs.length));
  }).catch(function (err) {
    console.error("trainground report: a figure failed to render", err);
  });
})();
