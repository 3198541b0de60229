// Draws the queue page's usage plot (#usage-plot) with uPlot from the JSON in #usage-data:
// per project a solid line of what it held and a dashed line, same colour, of its share.
(function () {
  "use strict";
  var colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

  function draw() {
    var el = document.getElementById("usage-plot");
    var source = document.getElementById("usage-data");
    if (!el || !source) return;
    var plot = JSON.parse(source.textContent);
    var data = [plot.x];
    var series = [{ label: "time (UTC)" }];
    var stepped = uPlot.paths.stepped({ align: 1 });
    plot.projects.forEach(function (p, i) {
      var color = colors[i % colors.length];
      data.push(p.used);
      series.push({ label: p.name + " " + plot.unit, stroke: color, width: 2, paths: stepped, spanGaps: false });
      data.push(p.share);
      series.push({ label: p.name + " share", stroke: color, width: 1.5, dash: [6, 4], paths: stepped, spanGaps: true });
    });
    var width = Math.max(400, Math.min(1100, el.parentElement.clientWidth - 20));
    new uPlot({
      title: plot.unit + " held (solid) against entitled share (dashed)",
      width: width,
      height: 300,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: { y: { range: function (u, lo, hi) { return [0, Math.max(hi, plot.capacity || 1)]; } } },
      axes: [{}, { label: plot.unit }],
      series: series,
    }, data, el);
    el.dataset.series = String(series.length - 1);
    el.dataset.points = String(plot.x.length);
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
