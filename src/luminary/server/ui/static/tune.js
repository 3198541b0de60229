// Draws a study page's plots from the JSON in #study-data: the objective per trial with the
// best so far (#objective-plot, uPlot), the Pareto front of a two-objective study
// (#pareto-plot, uPlot) and parallel coordinates over the params (#parallel-plot, a canvas).
(function () {
  "use strict";

  function width(el) {
    return Math.max(400, Math.min(1000, el.parentElement.clientWidth - 20));
  }

  function points(color) {
    return { show: true, size: 6, stroke: color, fill: color };
  }

  function objective(data) {
    var el = document.getElementById("objective-plot");
    if (!el) return;
    var o = data.objective;
    new uPlot({
      title: "objective per trial (" + data.direction + ")",
      width: width(el),
      height: 280,
      scales: { x: { time: false } },
      axes: [{ label: "trial" }, { label: "value" }],
      series: [
        { label: "trial" },
        { label: "value", stroke: "#1f77b4", width: 0, points: points("#1f77b4") },
        { label: "best so far", stroke: "#d62728", width: 2, paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } },
      ],
    }, [o.x, o.y, o.best], el);
    el.dataset.points = String(o.x.length);
  }

  function pareto(data) {
    var el = document.getElementById("pareto-plot");
    if (!el || !data.pareto) return;
    var p = data.pareto;
    new uPlot({
      title: "Pareto front",
      width: width(el),
      height: 300,
      mode: 1,
      scales: { x: { time: false } },
      axes: [{ label: p.names[0] }, { label: p.names[1] }],
      series: [
        { label: p.names[0] },
        { label: "Pareto front", stroke: "#d62728", width: 1.5, spanGaps: true, points: points("#d62728") },
        { label: "other trials", stroke: "#1f77b4", width: 0, points: points("#1f77b4") },
      ],
    }, [p.x, p.front, p.rest], el);
    el.dataset.front = String(p.front.filter(function (v) { return v !== null; }).length);
  }

  function colour(t) {
    // blue (t = 0, better) to red (t = 1, worse)
    var r = Math.round(31 + t * (214 - 31)), g = Math.round(119 + t * (39 - 119)), b = Math.round(180 + t * (40 - 180));
    return "rgba(" + r + "," + g + "," + b + ",0.75)";
  }

  function parallel(data) {
    var el = document.getElementById("parallel-plot");
    if (!el) return;
    var par = data.parallel, axes = par.axes, rows = par.rows;
    var w = width(el), h = 320, top = 30, bottom = 40, left = 60, right = 60;
    var ratio = window.devicePixelRatio || 1;
    el.width = w * ratio; el.height = h * ratio;
    el.style.width = w + "px"; el.style.height = h + "px";
    var ctx = el.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
    var n = axes.length;
    var xs = axes.map(function (a, i) { return n === 1 ? w / 2 : left + i * (w - left - right) / (n - 1); });
    var scale = axes.map(function (a, i) {
      if (a.kind === "cat") return { lo: 0, hi: Math.max(1, a.labels.length - 1), log: false };
      var vals = rows.map(function (r) { return r.p[i]; }).filter(function (v) { return v !== null && (!a.log || v > 0); });
      if (a.log) vals = vals.map(Math.log);
      var lo = Math.min.apply(null, vals), hi = Math.max.apply(null, vals);
      if (!isFinite(lo)) { lo = 0; hi = 1; }
      if (hi === lo) { lo -= 0.5; hi += 0.5; }
      return { lo: lo, hi: hi, log: a.log };
    });
    function y(i, v) {
      var s = scale[i], u = s.log ? Math.log(v) : v;
      return top + (1 - (u - s.lo) / (s.hi - s.lo)) * (h - top - bottom);
    }
    var values = rows.map(function (r) { return r.value; }).filter(function (v) { return v !== null; });
    var vlo = Math.min.apply(null, values), vhi = Math.max.apply(null, values);
    var drawn = 0;
    // worse trials first, so the best lie on top
    var order = rows.slice().sort(function (a, b) {
      var s = par.direction === "minimize" ? -1 : 1;
      return s * ((a.value === null ? -Infinity : a.value) - (b.value === null ? -Infinity : b.value));
    });
    ctx.lineWidth = 1.5;
    order.forEach(function (r) {
      if (r.value === null) return;
      var t = vhi === vlo ? 0 : (r.value - vlo) / (vhi - vlo);
      if (par.direction === "maximize") t = 1 - t;
      ctx.strokeStyle = colour(t);
      ctx.beginPath();
      var started = false;
      r.p.forEach(function (v, i) {
        if (v === null || (scale[i].log && v <= 0)) { started = false; return; }
        if (started) ctx.lineTo(xs[i], y(i, v)); else ctx.moveTo(xs[i], y(i, v));
        started = true;
      });
      if (n === 1 && r.p[0] !== null) ctx.lineTo(xs[0] + 4, y(0, r.p[0]));
      ctx.stroke();
      drawn++;
    });
    ctx.strokeStyle = "#222"; ctx.fillStyle = "#222"; ctx.lineWidth = 1;
    ctx.font = "12px system-ui, sans-serif"; ctx.textAlign = "center";
    axes.forEach(function (a, i) {
      ctx.beginPath(); ctx.moveTo(xs[i], top); ctx.lineTo(xs[i], h - bottom); ctx.stroke();
      ctx.fillText(a.name + (a.log ? " (log)" : ""), xs[i], h - bottom + 18);
      if (a.kind === "cat") {
        a.labels.forEach(function (label, j) { ctx.fillText(label, xs[i] + 20, y(i, j) + 4); });
      } else {
        var s = scale[i], lo = s.log ? Math.exp(s.lo) : s.lo, hi = s.log ? Math.exp(s.hi) : s.hi;
        ctx.fillText(Number(hi.toPrecision(3)).toString(), xs[i], top - 8);
        ctx.fillText(Number(lo.toPrecision(3)).toString(), xs[i], h - bottom + 32);
      }
    });
    el.dataset.lines = String(drawn);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var source = document.getElementById("study-data");
    if (!source) return;
    var data = JSON.parse(source.textContent);
    objective(data);
    pareto(data);
    parallel(data);
  });
})();
