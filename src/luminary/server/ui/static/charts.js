// Draws each <div class="chart" data-metric=KEY data-runs=ID,ID> with uPlot from the server's
// downsampled series (/runs/ID/series/KEY), overlaying runs; a #smoothing slider applies an EMA.
(function () {
  "use strict";
  var charts = [];
  var colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

  function ema(values, alpha) {
    if (!alpha) return values;
    var out = new Array(values.length), last = null;
    for (var i = 0; i < values.length; i++) {
      var v = values[i];
      if (v === null) { out[i] = null; continue; }
      last = last === null ? v : alpha * last + (1 - alpha) * v;
      out[i] = last;
    }
    return out;
  }

  function merge(series) {
    // One x axis (the union of steps); each run's values placed at its steps, null elsewhere.
    var steps = {};
    series.forEach(function (s) { s.steps.forEach(function (x) { steps[x] = true; }); });
    var xs = Object.keys(steps).map(Number).sort(function (a, b) { return a - b; });
    var index = {};
    xs.forEach(function (x, i) { index[x] = i; });
    var data = [xs];
    series.forEach(function (s) {
      var ys = new Array(xs.length).fill(null);
      s.steps.forEach(function (x, i) { ys[index[x]] = s.values[i]; });
      data.push(ys);
    });
    return data;
  }

  function draw(el) {
    var key = el.dataset.metric;
    var ids = el.dataset.runs.split(",");
    var width = Math.max(400, Math.min(1000, el.parentElement.clientWidth - 20));
    Promise.all(ids.map(function (id) {
      return fetch("/runs/" + encodeURIComponent(id) + "/series/" + key.split("/").map(encodeURIComponent).join("/") + "?points=" + (2 * width))
        .then(function (r) { return r.json(); });
    })).then(function (series) {
      var raw = merge(series);
      var note = series.some(function (s) { return s.downsampled; })
        ? " (downsampled from " + series.map(function (s) { return s.total_points; }).join(", ") + " points: min/max per bucket)"
        : "";
      var opts = {
        title: key + note,
        width: width,
        height: 260,
        scales: { x: { time: false } },
        series: [{ label: "step" }].concat(series.map(function (s, i) {
          return { label: s.run_name, stroke: colors[i % colors.length], spanGaps: true, width: 1.5 };
        })),
      };
      // Smooth before the first paint: setData() before uPlot has drawn once leaves its
      // scales unset, and nothing but the grid is drawn.
      var plot = new uPlot(opts, smoothed(raw, alpha()), el);
      el.dataset.points = String(raw[0].length);
      charts.push({ plot: plot, raw: raw });
    });
  }

  function alpha() {
    var slider = document.getElementById("smoothing");
    return slider ? Number(slider.value) : 0;
  }

  function smoothed(raw, a) {
    return [raw[0]].concat(raw.slice(1).map(function (ys) { return ema(ys, a); }));
  }

  function smooth() {
    var a = alpha();
    var shown = document.getElementById("smoothing-value");
    if (shown) shown.textContent = String(a);
    charts.forEach(function (c) {
      c.plot.setData(smoothed(c.raw, a), false);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var slider = document.getElementById("smoothing");
    if (slider) slider.addEventListener("input", smooth);
    document.querySelectorAll("div.chart").forEach(draw);
  });
})();
