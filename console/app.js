// The Trellis console's page: sign-in, then views fed by the console's endpoints (/console/api/*) and by the
// Lattice API itself through /console/lattice/* (the server signs each call as the signed-in identity). The
// session lives in an HttpOnly cookie; the CSRF token only in this module's memory, never in storage.
import { buildModel, TopologyGraph } from './graph.js';
import { trafficCharts } from './charts.js';

const $ = (s, root = document) => root.querySelector(s);
const $$ = (s, root = document) => [...root.querySelectorAll(s)];

let session = null;
let topology = null;
let summary = {};
let graph = null;
let selected = null;
let logAfter = 0;
const logEntries = [];
const timers = [];

async function call(method, path, body) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && session) headers['x-csrf-token'] = session.csrfToken;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  const text = await r.text();
  let json = {};
  try { json = text ? JSON.parse(text) : {}; } catch { json = { message: text }; }
  if (r.status === 401 && session) signedOut('Your session ended: sign in again.');
  return { status: r.status, ok: r.ok, body: json, type: r.headers.get('x-amzn-errortype') ?? json.__type };
}
const lattice = (method, path, body) => call(method, `/console/lattice${path}`, body);
const enc = encodeURIComponent;

function text(tag, content, cls) {
  const e = document.createElement(tag);
  if (content !== undefined) e.textContent = content;
  if (cls) e.className = cls;
  return e;
}

function notice(message) {
  const n = $('#notice');
  n.textContent = message;
  n.hidden = !message;
}

// ---- sign-in ----

function showLogin(error = '') {
  $('#main').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = error;
}

function signedOut(message) {
  session = null;
  for (const t of timers.splice(0)) clearInterval(t);
  showLogin(message);
}

async function start() {
  const r = await call('GET', '/console/api/session');
  if (r.ok) return enter(r.body);
  showLogin();
}

$('#login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await call('POST', '/console/api/login', { accessKeyId: $('#access-key').value.trim(), secretAccessKey: $('#secret-key').value });
  $('#secret-key').value = '';
  if (!r.ok) return showLogin(r.body.message ?? `sign-in failed (${r.status})`);
  enter(r.body);
});

$('#sign-out').addEventListener('click', async () => {
  await call('POST', '/console/api/logout');
  signedOut('Signed out.');
});

function enter(info) {
  session = info;
  $('#login').hidden = true;
  $('#main').hidden = false;
  $('#identity').textContent = info.identity;
  document.body.classList.toggle('read-only', !Object.values(info.can).some(Boolean));
  $('#nav-create').hidden = !(info.can.CreateServiceNetwork || info.can.CreateService || info.can.CreateTargetGroup);
  for (const form of $$('form.create')) form.hidden = !info.can[form.dataset.op];
  if (!graph) graph = new TopologyGraph($('#graph'), select);
  refreshAll();
  timers.push(setInterval(refreshTopology, 5000), setInterval(refreshMetrics, 3000), setInterval(refreshLogs, 2000));
}

// ---- views ----

for (const b of $$('nav button')) {
  b.addEventListener('click', () => {
    for (const x of $$('nav button')) x.classList.toggle('active', x === b);
    for (const v of $$('.view')) v.hidden = v.id !== `view-${b.dataset.view}`;
    // Hidden views are not redrawn as data arrives; they catch up when shown.
    if (b.dataset.view === 'graph') { drawGraph(); graph.fit(); }
    if (b.dataset.view === 'logs') drawLogs();
    if (b.dataset.view === 'traffic') drawTraffic();
  });
}
$('#search').addEventListener('input', drawGraph);
$('#detail').addEventListener('change', () => setDetail($('#detail').value));
$('#zoom-in').addEventListener('click', () => graph.zoom(0.8));
$('#zoom-out').addEventListener('click', () => graph.zoom(1.25));
$('#zoom-fit').addEventListener('click', () => graph.fit());
$('#log-filter').addEventListener('input', drawLogs);

async function refreshAll() {
  await Promise.all([refreshTopology(), refreshMetrics(), refreshLogs()]);
}

async function refreshTopology() {
  const r = await call('GET', '/console/api/topology');
  if (!r.ok) return;
  topology = r.body;
  const denied = topology.denied.filter((d) => d.status === 403);
  notice(denied.length ? `Your identity may not read everything: ${denied.length} call(s) refused (${[...new Set(denied.map((d) => d.path.split('/')[1]))].join(', ')}).` : '');
  if (!$("#view-graph").hidden) drawGraph();
  drawTargets();
  if (selected) refreshDetails(false);
}

async function refreshMetrics() {
  const r = await call('GET', '/console/api/metrics');
  if (!r.ok) return;
  summary = r.body.summary;
  if (topology && !$('#view-graph').hidden) drawGraph();
  if (topology && !$('#view-traffic').hidden) drawTraffic();
  if (selected) drawCharts();
}

// Above this many services the graph starts as the overview (networks as boxes of service tiles).
const OVERVIEW_ABOVE = 60;
let detailLevel = null;

function drawGraph() {
  if (!topology) return;
  if (!detailLevel) {
    detailLevel = topology.services.length > OVERVIEW_ABOVE ? 'overview' : 'full';
    $('#detail').value = detailLevel;
  }
  const query = $('#search').value.trim();
  if (detailLevel === 'overview') {
    graph.renderOverview(buildModel(topology, summary, 'services'), query, (service) => {
      // A tile opens that service's chain: networks, rules, target groups and targets.
      $('#search').value = service.label;
      setDetail('full');
      const node = $(`#graph .node[data-kind="service"][data-id="${CSS.escape(service.id)}"]`);
      if (node) node.dispatchEvent(new Event('click'));
    });
    return;
  }
  graph.render(buildModel(topology, summary, detailLevel), query);
}

function setDetail(level) {
  detailLevel = level;
  $('#detail').value = level;
  graph.view = null;
  drawGraph();
}

function nameOf(kind, id) {
  if (!topology) return id;
  const list = kind === 'service' ? topology.services : topology.targetGroups;
  return list.find((x) => x.id === id)?.name ?? id;
}

const pct = (v) => (v == null ? '–' : `${(v * 100).toFixed(1)}%`);
const ms = (v) => (v == null ? '–' : v.toFixed(1));

function drawTraffic() {
  const body = $('#traffic-table tbody');
  body.replaceChildren();
  for (const [key, s] of Object.entries(summary).sort()) {
    const [kind, id] = key.split('/');
    const row = document.createElement('tr');
    row.dataset.key = key;
    row.append(text('td', kind === 'service' ? 'service' : 'target group'), text('td', nameOf(kind === 'service' ? 'service' : 'tg', id)),
      text('td', (s.rps ?? 0).toFixed(2)), text('td', pct(s.ratio2xx)), text('td', pct(s.ratio4xx)), text('td', pct(s.ratio5xx)),
      text('td', ms(s.p50)), text('td', ms(s.p95)), text('td', ms(s.p99)), text('td', s.health, `health ${s.health}`));
    row.addEventListener('click', async () => {
      const series = await call('GET', `/console/api/series?key=${enc(key)}`);
      const box = $('#traffic-charts');
      box.replaceChildren(text('h3', `${nameOf(kind === 'service' ? 'service' : 'tg', id)}: last 15 minutes`), trafficCharts(series.ok ? series.body : []));
    });
    body.append(row);
  }
}

function drawTargets() {
  const body = $('#targets-table tbody');
  body.replaceChildren();
  for (const g of topology.targetGroups) {
    for (const t of g.targets ?? []) {
      const row = document.createElement('tr');
      row.dataset.target = `${g.id}/${t.id}:${t.port}`;
      row.append(text('td', g.name), text('td', t.id), text('td', String(t.port ?? '')), text('td', t.status, `status ${t.status}`), text('td', t.reasonCode ?? ''));
      body.append(row);
    }
  }
}

// ---- access log tail ----

async function refreshLogs() {
  if ($('#log-pause').checked) return;
  const r = await call('GET', `/console/api/logs?after=${logAfter}`);
  if (!r.ok) return;
  logAfter = r.body.next;
  for (const e of r.body.entries) logEntries.unshift(e);
  logEntries.splice(1000);
  if (r.body.entries.length && !$('#view-logs').hidden) drawLogs();
}

function matchesFilter(entry, filter) {
  for (const token of filter.split(/\s+/).filter(Boolean)) {
    const eq = token.indexOf('=');
    if (eq > 0) {
      const value = entry[token.slice(0, eq)];
      if (value === undefined || !String(value).includes(token.slice(eq + 1))) return false;
    } else if (!JSON.stringify(entry).toLowerCase().includes(token.toLowerCase())) {
      return false;
    }
  }
  return true;
}

function drawLogs() {
  const filter = $('#log-filter').value.trim();
  const body = $('#log-table tbody');
  body.replaceChildren();
  const shown = logEntries.filter((e) => matchesFilter(e, filter)).slice(0, 300);
  for (const e of shown) {
    const row = document.createElement('tr');
    const service = topology?.services.find((s) => s.arn === e.serviceArn)?.name ?? e.serviceArn;
    row.append(text('td', e.startTime), text('td', e.requestMethod), text('td', e.requestPath), text('td', String(e.responseCode), `code c${String(e.responseCode)[0]}`),
      text('td', service), text('td', e.targetIpPort), text('td', String(e.duration)), text('td', e.failureReason));
    body.append(row);
  }
  $('#log-count').textContent = `${shown.length} of ${logEntries.length} entries`;
}

// ---- details panel ----

function select(node) {
  selected = node;
  refreshDetails(true);
}

function jsonBlock(value) {
  const pre = text('pre', JSON.stringify(value, null, 2), 'json');
  return pre;
}

function link(label, kind, id) {
  const a = text('button', label, 'link');
  a.addEventListener('click', () => {
    const g = $(`#graph .node[data-kind="${kind}"][data-id="${CSS.escape(id)}"]`);
    if (g) g.dispatchEvent(new Event('click'));
  });
  return a;
}

async function refreshDetails(full) {
  const n = selected;
  if (!full) { drawCharts(); return; }
  // Built aside and shown only if this node is still the selected one once the API calls are back.
  const box = document.createElement('div');
  box.append(text('h2', n.label), text('p', n.kind, 'kind'));
  const charts = document.createElement('div');
  charts.id = 'detail-charts';
  if (n.kind === 'service') {
    const svc = (await lattice('GET', `/services/${enc(n.id)}`)).body;
    box.append(text('h3', 'DNS name to call'), text('code', svc.dnsEntry?.domainName ?? '–', 'dns'));
    if (svc.customDomainName) box.append(text('code', svc.customDomainName, 'dns'));
    box.append(charts);
    const listeners = topology.listeners.filter((l) => l.serviceId === n.id);
    if (listeners.length) {
      box.append(text('h3', 'Listeners and rules'));
      for (const l of listeners) {
        const row = text('div', '', 'links');
        row.append(link(`${l.name} (${l.protocol}:${l.port}) default`, 'route', l.id));
        for (const r of l.rules ?? []) row.append(link(`rule ${r.priority} ${r.name}`, 'route', r.id));
        box.append(row);
      }
    }
    const networks = topology.serviceAssociations.filter((a) => a.serviceId === n.id);
    if (networks.length) {
      box.append(text('h3', 'Service networks'));
      const row = text('div', '', 'links');
      for (const a of networks) row.append(link(a.serviceNetworkName ?? a.serviceNetworkId, 'network', a.serviceNetworkId));
      box.append(row);
    }
    await appendTagsAndPolicy(box, svc.arn, svc.authType === 'AWS_IAM' ? n.id : null);
    box.append(text('h3', 'GetService'), jsonBlock(svc));
  } else if (n.kind === 'network') {
    const sn = (await lattice('GET', `/servicenetworks/${enc(n.id)}`)).body;
    const row = text('div', '', 'links');
    for (const a of topology.serviceAssociations.filter((x) => x.serviceNetworkId === n.id)) row.append(link(a.serviceName ?? a.serviceId, 'service', a.serviceId));
    box.append(text('h3', 'Services'), row);
    await appendTagsAndPolicy(box, sn.arn, sn.authType === 'AWS_IAM' ? n.id : null);
    box.append(text('h3', 'GetServiceNetwork'), jsonBlock(sn));
  } else if (n.kind === 'route') {
    box.append(routeEditor(n), charts);
    const l = n.listener;
    const path = `/services/${enc(l.serviceId)}/listeners/${enc(l.id)}${n.rule ? `/rules/${enc(n.rule.id)}` : ''}`;
    const doc = (await lattice('GET', path)).body;
    box.append(text('h3', 'Service'), link(nameOf('service', l.serviceId), 'service', l.serviceId));
    box.append(text('h3', n.rule ? 'GetRule' : 'GetListener'), jsonBlock(doc));
  } else if (n.kind === 'targetgroup') {
    const tg = (await lattice('GET', `/targetgroups/${enc(n.id)}`)).body;
    box.append(charts, targetEditor(n.id));
    await appendTagsAndPolicy(box, tg.arn, null);
    box.append(text('h3', 'GetTargetGroup'), jsonBlock(tg));
  } else if (n.kind === 'target') {
    const tg = topology.targetGroups.find((g) => g.id === n.group);
    const t = tg?.targets.find((x) => x.id === n.id && x.port === n.port);
    box.append(text('h3', 'Target group'), link(tg?.name ?? n.group, 'targetgroup', n.group), text('h3', 'Health'), jsonBlock(t ?? {}));
  } else {
    box.append(jsonBlock(topology.vpcAssociations.filter((a) => a.vpcId === n.id)));
  }
  if (selected !== n) return;
  $('#details').replaceChildren(box);
  drawCharts();
}

async function appendTagsAndPolicy(box, arn, policyId) {
  if (!arn) return;
  const tags = await lattice('GET', `/tags/${enc(arn)}`);
  if (tags.ok && Object.keys(tags.body.tags ?? {}).length) box.append(text('h3', 'Tags'), jsonBlock(tags.body.tags));
  if (policyId) {
    const policy = await lattice('GET', `/authpolicy/${enc(policyId)}`);
    if (policy.ok && policy.body.policy) box.append(text('h3', 'Auth policy'), jsonBlock(JSON.parse(policy.body.policy)));
  }
}

async function drawCharts() {
  const box = $('#detail-charts');
  if (!box || !selected) return;
  let keys = [];
  if (selected.kind === 'service') keys = [`service/${selected.id}`];
  if (selected.kind === 'targetgroup') keys = [`targetgroup/${selected.id}`];
  if (selected.kind === 'route') keys = (selected.action?.forward?.targetGroups ?? []).map((f) => `targetgroup/${f.targetGroupIdentifier}`);
  const parts = [];
  for (const key of keys) {
    const r = await call('GET', `/console/api/series?key=${enc(key)}`);
    const s = summary[key];
    const head = text('h3', `${key.startsWith('service') ? 'Traffic' : `Target group ${nameOf('tg', key.split('/')[1])}`}${s ? `: ${s.rps.toFixed(1)} req/s now` : ''}`);
    head.dataset.key = key;
    if (s) head.dataset.rps = s.rps.toFixed(3);
    if (!r.ok) continue;  // a target group the identity may not read
    parts.push(head, trafficCharts(r.body));
  }
  box.replaceChildren(...parts);
}

// The weights of a forward action: a slider for two target groups (the canary), numbers for more.
function routeEditor(n) {
  const wrap = text('div', '', 'editor');
  const forward = n.action?.forward?.targetGroups;
  if (!forward) {
    wrap.append(text('p', n.action?.fixedResponse ? `Answers ${n.action.fixedResponse.statusCode} itself.` : 'No forward action.'));
    return wrap;
  }
  const op = n.rule ? 'UpdateRule' : 'UpdateListener';
  const weights = forward.map((f) => f.weight ?? 1);
  const total = weights.reduce((a, b) => a + b, 0) || 1;
  wrap.append(text('h3', 'Weights'));
  const list = text('div', '', 'weights');
  const inputs = [];
  forward.forEach((f, i) => {
    const row = text('div', '', 'weight-row');
    row.append(link(nameOf('tg', f.targetGroupIdentifier), 'targetgroup', f.targetGroupIdentifier));
    const value = text('span', `${Math.round((weights[i] / total) * 100)}% (weight ${weights[i]})`, 'weight-value');
    value.dataset.targetGroup = f.targetGroupIdentifier;
    row.append(value);
    list.append(row);
    inputs.push(value);
  });
  wrap.append(list);
  if (!session.can[op]) return wrap;  // read-only: the weights, no controls
  let next = [...weights];
  const show = () => {
    const sum = next.reduce((a, b) => a + b, 0) || 1;
    inputs.forEach((v, i) => { v.textContent = `${Math.round((next[i] / sum) * 100)}% (weight ${next[i]})`; });
  };
  if (forward.length === 2) {
    const slider = document.createElement('input');
    slider.type = 'range';
    slider.min = 0;
    slider.max = 100;
    slider.id = 'weight-slider';
    slider.value = Math.round((weights[0] / total) * 100);
    slider.addEventListener('input', () => { next = [Number(slider.value), 100 - Number(slider.value)]; show(); });
    wrap.append(slider);
  } else {
    forward.forEach((f, i) => {
      const input = document.createElement('input');
      input.type = 'number';
      input.min = 0;
      input.max = 999;
      input.value = weights[i];
      input.addEventListener('input', () => { next[i] = Number(input.value); show(); });
      wrap.append(input);
    });
  }
  const apply = text('button', 'Apply weights', 'action');
  apply.id = 'apply-weights';
  const result = text('p', '', 'form-result');
  apply.addEventListener('click', async () => {
    const action = { forward: { targetGroups: forward.map((f, i) => ({ targetGroupIdentifier: f.targetGroupIdentifier, weight: next[i] })) } };
    const l = n.listener;
    const r = n.rule
      ? await lattice('PATCH', `/services/${enc(l.serviceId)}/listeners/${enc(l.id)}/rules/${enc(n.rule.id)}`, { action })
      : await lattice('PATCH', `/services/${enc(l.serviceId)}/listeners/${enc(l.id)}`, { defaultAction: action });
    result.textContent = r.ok ? `Weights set: ${next.join(' / ')}` : `${r.type ?? r.status}: ${r.body.message ?? ''}`;
    result.className = `form-result ${r.ok ? 'ok' : 'error'}`;
    if (r.ok) {
      n.action = action;
      if (n.rule) n.rule.action = action; else n.listener.defaultAction = action;
      refreshTopology();
    }
  });
  wrap.append(apply, result);
  return wrap;
}

function targetEditor(groupId) {
  const wrap = text('div', '', 'editor');
  const g = topology.targetGroups.find((x) => x.id === groupId);
  wrap.append(text('h3', 'Targets'));
  const table = document.createElement('table');
  table.className = 'targets';
  for (const t of g?.targets ?? []) {
    const row = document.createElement('tr');
    row.append(text('td', `${t.id}:${t.port}`), text('td', t.status, `status ${t.status}`), text('td', t.reasonCode ?? ''));
    const cell = document.createElement('td');
    if (session.can.DeregisterTargets) {
      const b = text('button', 'Deregister', 'action deregister');
      b.addEventListener('click', async () => {
        const r = await lattice('POST', `/targetgroups/${enc(groupId)}/deregistertargets`, { targets: [{ id: t.id, port: t.port }] });
        b.textContent = r.ok ? 'Deregistered' : `${r.type ?? r.status}`;
        refreshTopology();
      });
      cell.append(b);
    }
    row.append(cell);
    table.append(row);
  }
  wrap.append(table);
  if (session.can.RegisterTargets) {
    const form = document.createElement('form');
    form.className = 'register';
    form.innerHTML = '<input name="targetId" placeholder="10.0.0.1 or i-…" data-field="targets"> <input name="port" placeholder="port" inputmode="numeric"> <button type="submit" class="action">Register target</button> <span class="form-result"></span>';
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const id = $('[name=targetId]', form).value.trim();
      const port = $('[name=port]', form).value.trim();
      const target = { id };
      if (port) target.port = Number(port);
      const r = await lattice('POST', `/targetgroups/${enc(groupId)}/registertargets`, { targets: [target] });
      const failed = r.body.unsuccessful ?? [];
      $('.form-result', form).textContent = !r.ok ? `${r.type ?? r.status}: ${r.body.message ?? ''}` : failed.length ? `${failed[0].failureCode}: ${failed[0].failureMessage}` : 'Registered';
      await refreshTopology();
    });
    wrap.append(form);
  }
  return wrap;
}

// ---- create forms: the API's ValidationException fieldList shown by field ----

function formBody(form) {
  const body = {};
  for (const input of $$('input, select', form)) {
    const value = input.value.trim();
    if (!value) continue;
    const path = input.name.split('.');
    let at = body;
    for (const p of path.slice(0, -1)) at = at[p] ??= {};
    at[path[path.length - 1]] = /port$/i.test(input.name) && /^\d+$/.test(value) ? Number(value) : value;
  }
  return body;
}

for (const form of $$('form.create')) {
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const s of $$('.field-error', form)) s.textContent = '';
    for (const i of $$('.invalid', form)) i.classList.remove('invalid');
    const result = $('.form-result', form);
    const r = await lattice('POST', form.dataset.path, formBody(form));
    if (r.ok) {
      result.textContent = `Created ${r.body.name} (${r.body.id})`;
      result.className = 'form-result ok';
      refreshTopology();
      return;
    }
    result.textContent = `${r.type ?? r.status}: ${r.body.message ?? ''}`;
    result.className = 'form-result error';
    for (const f of r.body.fieldList ?? []) {
      const slot = $(`.field-error[data-for="${CSS.escape(f.name)}"]`, form);
      const input = $(`[data-field="${CSS.escape(f.name)}"]`, form);
      if (input) input.classList.add('invalid');
      if (slot) slot.textContent = f.message;
      else result.textContent += ` ${f.name}: ${f.message}`;
    }
  });
}

start();
