// thinkforge console: the only script of the pages (the CSP allows no inline script).
// Everything from the server is set with textContent: data is never parsed as HTML.
"use strict";

function fmt(key, value) {
  if (value === null || value === undefined) return "–";
  if (key === "tokens_per_s") return value.toFixed(1);
  if (key === "verified_rate") return Math.round(100 * value) + "%";
  if (key === "eta_s") return Math.round(value) + " s";
  return String(value);
}

async function refreshRuns(table) {
  let response;
  try {
    response = await fetch(table.dataset.source, {credentials: "same-origin"});
  } catch (e) {
    return;  // the server is restarting: try again on the next tick
  }
  if (!response.ok) return;
  const body = await response.json();
  for (const run of body.runs) {
    const row = table.querySelector(`tr[data-run="${CSS.escape(run.run_id)}"]`);
    if (!row) continue;  // a new run: shown on the next page load
    for (const cell of row.querySelectorAll("td[data-k]")) {
      const key = cell.dataset.k;
      cell.textContent = key === "done" ? `${run.done} / ${run.requests}` : fmt(key, run[key]);
    }
  }
  table.dataset.refreshed = String(Date.now());
}

async function verify(button) {
  const out = document.getElementById("verify-result");
  out.textContent = "checking…";
  const response = await fetch(`/api/versions/${encodeURIComponent(button.dataset.ref)}/verify`,
                               {credentials: "same-origin"});
  const body = await response.json();
  out.textContent = body.ok ? "sha256 ok" : (body.error || "failed");
  out.className = body.ok ? "ok" : "bad";
}

document.addEventListener("DOMContentLoaded", () => {
  const runs = document.getElementById("runs");
  if (runs) setInterval(() => refreshRuns(runs), 2000);
  const button = document.getElementById("verify");
  if (button) button.addEventListener("click", () => verify(button));
});
