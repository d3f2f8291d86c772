/* kubehub console: progressive enhancement over server-rendered pages.
 *
 * Every page works without this file (forms post, links navigate); with it, times show in the
 * viewer's own time zone, confirmations use a dialog, tables sort in place, charts and metric
 * tiles are drawn from the JSON API with the session cookie, and the policy editor validates
 * as you type. Nothing here decides access: the server answers every request on its own.
 */
(function () {
  "use strict";
  const lang = document.body.dataset.lang || "en";
  const locale = lang === "zh" ? "zh-CN" : "en";
  const T = JSON.parse((document.getElementById("i18n") || {}).textContent || "{}");
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  // ---- formatting ----------------------------------------------------------------------------
  function human(value, unit) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    const n = Number(value);
    if (unit === "ratio") return (n * 100).toFixed(1) + " %";
    if (unit === "bytes" || unit === "bytes/s") {
      const names = ["B", "KiB", "MiB", "GiB", "TiB"];
      let i = 0, v = n;
      while (Math.abs(v) >= 1024 && i < names.length - 1) { v /= 1024; i++; }
      return v.toFixed(1) + " " + names[i] + (unit === "bytes/s" ? "/s" : "");
    }
    if (unit === "cores") return (n < 10 ? n.toFixed(3) : n.toFixed(1)) + " cores";
    if (unit === "seconds") return n < 1 ? (n * 1000).toFixed(1) + " ms" : n.toFixed(2) + " s";
    if (unit === "count") return Number.isInteger(n) ? n.toLocaleString(locale) : n.toFixed(1);
    return (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2)) + (unit ? " " + unit : "");
  }

  function parseTime(text, isEpoch) {
    if (isEpoch) return new Date(Number(text) * 1000);
    const d = new Date(text);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  const dateFmt = new Intl.DateTimeFormat(locale, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  const preciseFmt = new Intl.DateTimeFormat(locale, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 3 });
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;

  function relative(date) {
    const rtf = new Intl.RelativeTimeFormat(locale, { numeric: "auto" });
    const secs = Math.round((date.getTime() - Date.now()) / 1000);
    const abs = Math.abs(secs);
    if (abs < 60) return rtf.format(secs, "second");
    if (abs < 3600) return rtf.format(Math.round(secs / 60), "minute");
    if (abs < 86400) return rtf.format(Math.round(secs / 3600), "hour");
    return rtf.format(Math.round(secs / 86400), "day");
  }

  function localiseTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      if (el.dataset.done) return;
      const d = parseTime(el.getAttribute("datetime"), el.hasAttribute("data-epoch"));
      if (!d) return;
      el.dataset.done = "1";
      el.title = d.toISOString() + " (" + tz + ")";
      if (el.hasAttribute("data-relative")) el.textContent = relative(d);
      else if (el.hasAttribute("data-precise")) el.textContent = preciseFmt.format(d);
      else el.textContent = dateFmt.format(d);
    });
  }

  // ---- banners ---------------------------------------------------------------------------------
  const shownBanners = new Set();
  function jsBanner(text, kind, backend) {
    if (shownBanners.has(text)) return;
    shownBanners.add(text);
    const box = document.getElementById("js-banners");
    if (!box) return;
    const div = document.createElement("div");
    div.className = "banner " + (kind || "error");
    div.setAttribute("role", "alert");
    if (backend) div.dataset.backend = backend;
    div.textContent = text;
    box.appendChild(div);
  }

  async function getJSON(url) {
    const resp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = new Error((body && body.error) || resp.status + " " + resp.statusText);
      err.status = resp.status;
      err.backend = body && body.backend;
      if (resp.status === 503 && err.backend) {
        jsBanner((T.backend_down || "{backend} is unavailable: {detail}").replace("{backend}", err.backend).replace("{detail}", err.message), "error", err.backend);
      }
      throw err;
    }
    return body;
  }

  // ---- confirmations ---------------------------------------------------------------------------
  function setupConfirm() {
    const dialog = document.getElementById("confirm-dialog");
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (ev) {
        if (form.dataset.confirmed === "1" || !dialog || !dialog.showModal) return;
        ev.preventDefault();
        dialog.querySelector(".msg").textContent = form.dataset.confirm;
        dialog.returnValue = "";
        dialog.onclose = function () {
          if (dialog.returnValue === "ok") {
            form.dataset.confirmed = "1";
            if (form.requestSubmit) form.requestSubmit(); else form.submit();
          }
        };
        dialog.showModal();
      });
    });
  }

  // ---- small behaviours ------------------------------------------------------------------------
  function setupAutosubmit() {
    document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
    });
  }

  function setupSortable() {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      table.querySelectorAll("th[data-sort]").forEach(function (th, _i) {
        th.addEventListener("click", function () {
          const index = Array.prototype.indexOf.call(th.parentNode.children, th);
          const numeric = th.dataset.sort === "num";
          const dir = th.dataset.dir === "asc" ? "desc" : "asc";
          table.querySelectorAll("th[data-sort]").forEach(function (o) { delete o.dataset.dir; });
          th.dataset.dir = dir;
          const body = table.tBodies[0];
          const rows = Array.from(body.rows);
          rows.sort(function (a, b) {
            const ca = a.cells[index], cb = b.cells[index];
            let va = ca ? (ca.dataset.value !== undefined ? ca.dataset.value : ca.textContent.trim()) : "";
            let vb = cb ? (cb.dataset.value !== undefined ? cb.dataset.value : cb.textContent.trim()) : "";
            let r;
            if (numeric) { r = (parseFloat(va) || 0) - (parseFloat(vb) || 0); }
            else { r = va.localeCompare(vb, locale, { numeric: true }); }
            return dir === "asc" ? r : -r;
          });
          rows.forEach(function (row) { body.appendChild(row); });
        });
      });
    });
  }

  // ---- metrics: tiles, rankings, table fills, charts --------------------------------------------
  function monitoringURL(level, params) {
    const q = new URLSearchParams();
    Object.keys(params).forEach(function (k) { if (params[k] !== "" && params[k] !== undefined && params[k] !== null) q.set(k, params[k]); });
    return "/api/v1/monitoring/" + level + "?" + q.toString();
  }

  function lastValue(series) {
    const values = series && series.values;
    if (!values || !values.length) return null;
    return values[values.length - 1][1];
  }

  function setupTiles() {
    const byLevel = {};
    document.querySelectorAll("[data-instant]").forEach(function (el) {
      (byLevel[el.dataset.level] = byLevel[el.dataset.level] || []).push(el);
    });
    Object.keys(byLevel).forEach(function (level) {
      const els = byLevel[level];
      const metrics = Array.from(new Set(els.map(function (e) { return e.dataset.metric; })));
      getJSON(monitoringURL(level, { metrics: metrics.join(",") })).then(function (body) {
        const found = {};
        body.results.forEach(function (r) { found[r.metric] = r; });
        els.forEach(function (el) {
          const r = found[el.dataset.metric];
          const v = r && r.series.length ? lastValue(r.series[0]) : null;
          const out = el.querySelector(".value");
          out.textContent = human(v, r ? r.unit : "");
          if (el.dataset.badAbove !== undefined && v !== null) el.classList.add(v > Number(el.dataset.badAbove) ? "bad" : "good");
          if (el.dataset.goodAbove !== undefined) el.classList.add(v !== null && v > Number(el.dataset.goodAbove) ? "good" : "bad");
          if (el.dataset.metric.endsWith("utilisation") && v !== null) el.classList.add(v >= 0.9 ? "bad" : v >= 0.7 ? "warn" : "good");
        });
      }).catch(function () {
        els.forEach(function (el) { el.querySelector(".value").textContent = "–"; el.classList.add("warn"); });
      });
    });
  }

  function fillLink(template, labels) {
    return template.replace(/\{(\w+)\}/g, function (_m, k) { return encodeURIComponent(labels[k] || ""); });
  }

  function setupRankings() {
    document.querySelectorAll("table[data-ranking]").forEach(function (table) {
      const level = table.dataset.level, metric = table.dataset.metric;
      const url = monitoringURL(level, { metrics: metric, sort_metric: metric, sort_type: "desc", limit: table.dataset.limit || 5, page: 1 });
      const tbody = table.tBodies[0];
      getJSON(url).then(function (body) {
        const r = body.results[0];
        tbody.innerHTML = "";
        if (!r || !r.series.length) {
          tbody.innerHTML = '<tr><td class="muted">' + (T.no_data || "No data") + "</td></tr>";
          return;
        }
        r.series.forEach(function (s, i) {
          const labels = s.labels || {};
          const name = labels.workload || labels.pod || labels.node || labels.namespace || labels.workspace || "?";
          const tr = document.createElement("tr");
          const a = document.createElement("a");
          a.href = fillLink(table.dataset.link || "#", labels);
          a.textContent = name;
          const td1 = document.createElement("td"); td1.textContent = (i + 1) + ". ";
          td1.appendChild(a);
          if (labels.namespace && name !== labels.namespace) {
            const small = document.createElement("small"); small.className = "muted"; small.textContent = " " + labels.namespace;
            td1.appendChild(small);
          }
          const td2 = document.createElement("td"); td2.className = "num"; td2.textContent = human(lastValue(s), r.unit);
          tr.appendChild(td1); tr.appendChild(td2);
          tbody.appendChild(tr);
        });
      }).catch(function (err) {
        tbody.innerHTML = "";
        const tr = document.createElement("tr"), td = document.createElement("td");
        td.className = "muted"; td.textContent = (T.error || "Error") + ": " + err.message;
        tr.appendChild(td); tbody.appendChild(tr);
      });
    });
  }

  function setupFills() {
    document.querySelectorAll("[data-fill-source]").forEach(function (src) {
      const target = document.querySelector(src.dataset.target);
      if (!target) return;
      getJSON(monitoringURL(src.dataset.level, { metrics: src.dataset.metrics })).then(function (body) {
        body.results.forEach(function (r) {
          const byEntity = {};
          r.series.forEach(function (s) { byEntity[s.labels[src.dataset.key]] = lastValue(s); });
          target.querySelectorAll('[data-fill="' + r.metric + '"]').forEach(function (td) {
            const v = byEntity[td.dataset.entity];
            td.classList.remove("muted");
            td.dataset.value = v === undefined || v === null ? "" : v;
            td.textContent = human(v === undefined ? null : v, r.unit);
          });
        });
      }).catch(function () {
        target.querySelectorAll("[data-fill]").forEach(function (td) { td.textContent = "–"; });
      });
    });
  }

  // A pod's log tail is read after the page (web/views/cluster.py pod): the same API read,
  // its lines as text, the container it read marked in the picker; a refusal or an outage is
  // the API's own message in place of the lines.
  function setupLogTail() {
    document.querySelectorAll("pre[data-log-src]").forEach(function (pre) {
      const section = pre.closest("section") || pre;
      getJSON(pre.dataset.logSrc).then(function (body) {
        const lines = body.lines || [];
        const picker = document.getElementById("log-container");
        if (picker && body.container) picker.value = body.container;
        if (lines.length) {
          pre.textContent = lines.join("\n") + "\n";
          pre.scrollTop = pre.scrollHeight; // a tail: the newest lines in view
        } else {
          const empty = document.createElement("p");
          empty.className = "empty";
          empty.textContent = pre.dataset.empty || T.no_data || "";
          pre.replaceWith(empty);
        }
        section.dataset.log = "filled";
      }).catch(function (err) {
        const problem = document.createElement("span");
        problem.className = "err";
        problem.textContent = (T.error || "Error") + ": " + err.message;
        pre.replaceChildren(problem);
        section.dataset.log = "failed";
      });
    });
  }

  const RANGE_SECONDS = { "15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800 };
  const PALETTE = ["#2f6fde", "#e48a1b", "#1d8a4e", "#c62f2f", "#7b4fc9", "#0f9aa8", "#b0577e", "#6b7785"];

  function entityOf(s) {
    return Object.keys(s.labels || {}).filter(function (k) { return k !== "__name__"; }).map(function (k) { return s.labels[k]; }).join(" / ");
  }

  function axisValue(v, unit) {
    // Axis ticks are short: two decimals at most, the unit once.
    if (unit === "cores") return (Math.abs(v) < 10 ? Number(v.toFixed(2)) : Math.round(v)) + " c";
    return human(v, unit);
  }

  function drawChart(fig) {
    const plot = fig.querySelector(".plot");
    if (typeof uPlot === "undefined") {
      plot.innerHTML = '<p class="err">charting library missing: run scripts/build-assets.sh</p>';
      return;
    }
    let end = Math.floor(Date.now() / 1000);
    let start = end - (RANGE_SECONDS[fig.dataset.range] || 3600);
    if (fig.dataset.range === "custom" && fig.dataset.from) {
      // datetime-local values are wall-clock times in the viewer's own zone
      const from = new Date(fig.dataset.from), to = fig.dataset.to ? new Date(fig.dataset.to) : new Date();
      if (!Number.isNaN(from.getTime()) && !Number.isNaN(to.getTime()) && to > from) {
        start = Math.floor(from.getTime() / 1000);
        end = Math.floor(to.getTime() / 1000);
      }
    }
    const seconds = end - start;
    const step = Math.max(15, Math.round(seconds / 240));
    const params = Object.assign({ metrics: fig.dataset.metrics, start: start, end: end, step: step }, JSON.parse(fig.dataset.filters || "{}"));
    getJSON(monitoringURL(fig.dataset.level, params)).then(function (body) {
      const results = body.results || [];
      const many = results.length > 1;
      const times = new Set();
      const lines = [];
      const entities = new Set();
      results.forEach(function (r) { r.series.forEach(function (s) { entities.add(entityOf(s)); }); });
      const oneEntity = entities.size <= 1;
      const words = JSON.parse(fig.dataset.metricWords || "{}");
      results.forEach(function (r) {
        r.series.slice(0, 12).forEach(function (s) {
          const map = new Map();
          s.values.forEach(function (p) { times.add(p[0]); map.set(p[0], p[1]); });
          // Name what differs between the lines: the metric (as words), the entity, or both.
          const name = words[r.metric] || r.metric;
          const label = oneEntity ? (many ? name : entityOf(s) || name) : (many ? name + " · " : "") + entityOf(s);
          lines.push({ label: label, unit: r.unit, map: map });
        });
      });
      plot.innerHTML = "";
      if (!lines.length) {
        plot.innerHTML = '<p class="muted">' + (T.no_data || "No data") + "</p>";
        return;
      }
      const xs = Array.from(times).sort(function (a, b) { return a - b; });
      const data = [xs].concat(lines.map(function (l) { return xs.map(function (t) { const v = l.map.get(t); return v === undefined ? null : v; }); }));
      const unit = lines[0].unit;
      const width = Math.max(280, plot.clientWidth || fig.clientWidth - 20);
      const opts = {
        width: width,
        height: Number(fig.dataset.height || 220),
        series: [{}].concat(lines.map(function (l, i) {
          return { label: l.label, stroke: PALETTE[i % PALETTE.length], width: 1.5, value: function (_u, v) { return human(v, l.unit); } };
        })),
        axes: [{}, { size: 84, values: function (_u, ticks) { return ticks.map(function (v) { return axisValue(v, unit); }); } }],
        scales: { x: { time: true } },
        legend: { live: true },
      };
      // eslint-disable-next-line no-new
      new uPlot(opts, data, plot);
    }).catch(function (err) {
      plot.innerHTML = "";
      const p = document.createElement("p");
      p.className = "err";
      p.textContent = (T.error || "Error") + ": " + err.message;
      plot.appendChild(p);
    });
  }

  function setupCharts() {
    document.querySelectorAll("figure.chart").forEach(drawChart);
  }

  // ---- the policy editor ------------------------------------------------------------------------
  function setupPolicyEditor() {
    const editor = document.querySelector(".editor[data-check-url]");
    if (!editor) return;
    const form = document.getElementById("policy-form");
    const yaml = document.getElementById("policy-yaml");
    const status = document.getElementById("live-status");
    let yamlTouched = false;
    yaml.addEventListener("input", function () { yamlTouched = true; });
    let timer = null;
    let seq = 0;

    function showProblems(problems) {
      form.querySelectorAll(".invalid").forEach(function (el) { el.classList.remove("invalid"); });
      form.querySelectorAll("[data-error-for]").forEach(function (el) { el.hidden = true; el.textContent = ""; });
      Object.keys(problems).forEach(function (path) {
        let slot = form.querySelector('[data-error-for="' + CSS.escape(path) + '"]');
        let input = form.querySelector('[data-field="' + CSS.escape(path) + '"]');
        if (!slot) {
          // a deeper path (rules[0].threshold.x) or a parent: show it on the nearest field we have
          const parent = path.replace(/(\.[^.\[]+|\[\d+\])$/, "");
          slot = form.querySelector('[data-error-for="' + CSS.escape(parent) + '"]') || form.querySelector('[data-error-for="(document)"]');
        }
        if (slot) { slot.hidden = false; slot.textContent = (slot.textContent ? slot.textContent + "; " : "") + problems[path]; }
        if (input) input.classList.add("invalid");
      });
    }

    function check() {
      const mine = ++seq;
      const data = new FormData(form);
      fetch(editor.dataset.checkUrl, { method: "POST", body: data, credentials: "same-origin", headers: { "X-CSRF-Token": csrf, Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (body) {
          if (mine !== seq) return;
          showProblems(body.problems || {});
          const n = Object.keys(body.problems || {}).length;
          status.className = "live-status " + (body.valid ? "ok" : "bad");
          status.textContent = body.valid ? (T.valid || "valid") : (T.invalid || "{n} problem(s)").replace("{n}", n);
          if (body.yaml && !yamlTouched) yaml.value = body.yaml;
        })
        .catch(function () { /* offline: the server checks again on save */ });
    }

    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(check, 350); });
    form.addEventListener("change", function () { clearTimeout(timer); timer = setTimeout(check, 150); });

    const add = document.getElementById("add-rule");
    const tpl = document.getElementById("rule-template");
    if (add && tpl) {
      add.addEventListener("click", function () {
        const used = Array.from(form.querySelectorAll(".rule")).map(function (r) { return Number(r.dataset.rule); });
        const i = used.length ? Math.max.apply(null, used) + 1 : 0;
        const html = tpl.innerHTML.replace(/__i__/g, String(i)).replace(/__n__/g, String(used.length + 1));
        add.insertAdjacentHTML("beforebegin", html);
        check();
      });
    }
    form.querySelectorAll("code.pick[data-append-to]").forEach(function (code) {
      code.addEventListener("click", function () {
        const ta = document.querySelector(code.dataset.appendTo);
        ta.value = (ta.value.trim() ? ta.value.trim() + "\n" : "") + code.textContent;
        check();
      });
    });
    const tzInput = form.querySelector("[data-default-tz]");
    if (tzInput && !tzInput.value) tzInput.placeholder = tz;
  }

  function localiseFlashTimes() {
    // Result messages name times in UTC (RFC 3339); show them in the viewer's zone.
    document.querySelectorAll(".flash").forEach(function (el) {
      el.textContent = el.textContent.replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, function (iso) {
        const d = new Date(iso);
        return Number.isNaN(d.getTime()) ? iso : dateFmt.format(d);
      });
    });
  }

  function init() {
    localiseTimes(document);
    localiseFlashTimes();
    setupConfirm();
    setupAutosubmit();
    setupSortable();
    setupTiles();
    setupRankings();
    setupFills();
    setupLogTail();
    setupCharts();
    setupPolicyEditor();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
