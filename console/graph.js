// The topology as a layered graph: VPCs → service networks → services → listeners' rules → target groups →
// targets, one column each, drawn in SVG. Readable at 200 services by search (only the matches and what they
// connect to stay), a coarser level of detail, and zoom and pan on the viewBox.
const SVG = 'http://www.w3.org/2000/svg';
const NODE_H = 26;
const GAP = 8;
const COL_W = 245;
const NODE_W = 185;

function el(name, attrs = {}, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function shorten(text, max = 30) {
  return text.length > max ? text.slice(0, max - 1) + '…' : text;
}

// nodes: [{key, kind, column, label, sub, health, search}], edges: [{from, to, label}]
export function buildModel(topology, summary, detail) {
  const nodes = new Map();
  const edges = [];
  const add = (key, node) => { if (!nodes.has(key)) nodes.set(key, { key, ...node }); return nodes.get(key); };
  const edge = (from, to, label = '') => { if (nodes.has(from) && nodes.has(to)) edges.push({ from, to, label }); };
  const traffic = (key) => summary[key] ?? null;

  for (const sn of topology.serviceNetworks) {
    add(`sn:${sn.id}`, { kind: 'network', column: 1, id: sn.id, label: sn.name, sub: sn.id, search: `${sn.name} ${sn.id} ${sn.arn}` });
  }
  for (const a of topology.vpcAssociations) {
    add(`vpc:${a.vpcId}`, { kind: 'vpc', column: 0, id: a.vpcId, label: a.vpcId, sub: 'VPC', search: a.vpcId });
    edges.push({ from: `vpc:${a.vpcId}`, to: `sn:${a.serviceNetworkId}`, label: a.status === 'ACTIVE' ? '' : a.status });
  }
  for (const s of topology.services) {
    const t = traffic(`service/${s.id}`);
    add(`svc:${s.id}`, {
      kind: 'service', column: 2, id: s.id, label: s.name, sub: s.dnsEntry?.domainName ?? s.id, traffic: t,
      health: t?.health ?? 'idle', search: `${s.name} ${s.id} ${s.arn} ${s.dnsEntry?.domainName ?? ''} ${s.customDomainName ?? ''}`,
    });
  }
  for (const a of topology.serviceAssociations) edge(`sn:${a.serviceNetworkId}`, `svc:${a.serviceId}`);

  const groups = new Map(topology.targetGroups.map((g) => [g.id, g]));
  for (const g of topology.targetGroups) {
    const t = traffic(`targetgroup/${g.id}`);
    const targets = g.targets ?? [];
    const unhealthy = targets.filter((x) => x.status === 'UNHEALTHY').length;
    // Traffic health, made worse by what the health checks say of the targets.
    let health = t?.health ?? 'idle';
    if (targets.length && unhealthy === targets.length) health = 'failing';
    else if (unhealthy && health !== 'failing') health = 'degraded';
    add(`tg:${g.id}`, { kind: 'targetgroup', column: detail === 'full' ? 4 : 3, id: g.id, label: g.name, sub: `${g.type ?? ''} ${g.protocol ?? ''}:${g.port ?? ''}`, traffic: t, health, search: `${g.name} ${g.id} ${g.arn}` });
    if (detail === 'full') {
      for (const target of targets) {
        const key = `target:${g.id}:${target.id}:${target.port}`;
        const health = target.status === 'HEALTHY' ? 'healthy' : target.status === 'UNHEALTHY' ? 'unhealthy' : 'unknown';
        add(key, { kind: 'target', column: 5, id: target.id, group: g.id, port: target.port, label: `${target.id}:${target.port}`, sub: `${target.status}${target.reasonCode ? ' ' + target.reasonCode : ''}`, status: target.status, health, search: `${target.id} ${target.status} ${target.reasonCode ?? ''}` });
        edge(`tg:${g.id}`, key);
      }
    }
  }

  for (const l of topology.listeners) {
    const actions = [{ kind: 'default', name: 'default', priority: '', action: l.defaultAction, rule: null }];
    for (const r of l.rules ?? []) actions.push({ kind: 'rule', name: r.name, priority: r.priority, action: r.action, rule: r });
    for (const a of actions) {
      const forward = a.action?.forward?.targetGroups ?? [];
      const key = `route:${l.id}:${a.rule?.id ?? 'default'}`;
      if (detail === 'full') {
        const fixed = a.action?.fixedResponse ? ` → ${a.action.fixedResponse.statusCode}` : '';
        add(key, {
          kind: 'route', column: 3, id: a.rule?.id ?? l.id, listener: l, rule: a.rule, action: a.action,
          label: `${l.protocol ?? ''}:${l.port ?? ''} ${a.kind === 'default' ? 'default' : 'rule ' + a.priority}${fixed}`,
          sub: a.kind === 'default' ? l.name : a.name, search: `${l.name} ${l.id} ${a.name} ${a.rule?.id ?? ''}`,
        });
        edge(`svc:${l.serviceId}`, key);
      }
      const total = forward.reduce((n, f) => n + (f.weight ?? 1), 0);
      for (const f of forward) {
        const id = groups.has(f.targetGroupIdentifier) ? f.targetGroupIdentifier
          : [...groups.values()].find((g) => g.arn === f.targetGroupIdentifier)?.id;
        const share = total ? `${Math.round(((f.weight ?? 1) / total) * 100)}%` : '';
        if (detail === 'full') edge(key, `tg:${id}`, share);
        else if (!edges.some((e) => e.from === `svc:${l.serviceId}` && e.to === `tg:${id}`)) edge(`svc:${l.serviceId}`, `tg:${id}`, share);
      }
    }
  }
  // A route's health is the worst of its target groups'; a network's the worst of its services'.
  const rank = { failing: 3, unhealthy: 3, degraded: 2, healthy: 1, idle: 0, unknown: 0 };
  const worst = (key, kind) => {
    let h = 'idle';
    for (const e of edges) if (e.from === key && nodes.get(e.to)?.kind === kind && rank[nodes.get(e.to).health] > rank[h]) h = nodes.get(e.to).health;
    return h === 'unhealthy' ? 'failing' : h;
  };
  for (const n of nodes.values()) if (n.kind === 'route') n.health = worst(n.key, 'targetgroup');
  for (const n of nodes.values()) if (n.kind === 'network') n.health = worst(n.key, 'service');
  for (const n of nodes.values()) if (n.kind === 'vpc') n.health = worst(n.key, 'network');
  return { nodes, edges };
}

// What stays visible for a search: the matching nodes and everything upstream and downstream of them.
function visibleFor(model, query) {
  if (!query) return null;
  const q = query.toLowerCase();
  const keep = new Set();
  const down = new Map(), up = new Map();
  for (const e of model.edges) {
    if (!down.has(e.from)) down.set(e.from, []);
    if (!up.has(e.to)) up.set(e.to, []);
    down.get(e.from).push(e.to);
    up.get(e.to).push(e.from);
  }
  const walk = (start, next) => {
    const stack = [start];
    while (stack.length) {
      const k = stack.pop();
      for (const n of next.get(k) ?? []) if (!keep.has(n)) { keep.add(n); stack.push(n); }
    }
  };
  for (const n of model.nodes.values()) {
    if ((n.search ?? n.label).toLowerCase().includes(q)) { keep.add(n.key); walk(n.key, down); walk(n.key, up); }
  }
  return keep;
}

export class TopologyGraph {
  constructor(svg, onSelect) {
    this.svg = svg;
    this.onSelect = onSelect;
    this.view = null;
    this.selected = null;
    this.bounds = { w: 800, h: 400 };
    svg.addEventListener('wheel', (e) => { e.preventDefault(); this.zoom(e.deltaY < 0 ? 0.8 : 1.25, e); }, { passive: false });
    let drag = null;
    svg.addEventListener('pointerdown', (e) => { if (e.target === svg || e.target.classList.contains('column-title')) drag = { x: e.clientX, y: e.clientY, view: { ...this.view } }; });
    window.addEventListener('pointerup', () => { drag = null; });
    svg.addEventListener('pointermove', (e) => {
      if (!drag || !this.view) return;
      const scale = this.view.w / svg.clientWidth;
      this.view.x = drag.view.x - (e.clientX - drag.x) * scale;
      this.view.y = drag.view.y - (e.clientY - drag.y) * scale;
      this.applyView();
    });
  }

  applyView() {
    const v = this.view;
    this.svg.setAttribute('viewBox', `${v.x} ${v.y} ${v.w} ${v.h}`);
  }

  fit() {
    const aspect = (this.svg.clientHeight || 500) / (this.svg.clientWidth || 900);
    const w = Math.max(this.bounds.w + 40, (this.bounds.h + 40) / aspect);
    this.view = { x: -20, y: -20, w, h: w * aspect };
    this.applyView();
  }

  zoom(factor, event) {
    if (!this.view) this.fit();
    const v = this.view;
    let cx = v.x + v.w / 2, cy = v.y + v.h / 2;
    if (event && this.svg.clientWidth) {
      const r = this.svg.getBoundingClientRect();
      cx = v.x + ((event.clientX - r.left) / r.width) * v.w;
      cy = v.y + ((event.clientY - r.top) / r.height) * v.h;
    }
    const w = Math.min(Math.max(v.w * factor, 100), 20000);
    const h = w * (v.h / v.w);
    this.view = { x: cx - (cx - v.x) * (w / v.w), y: cy - (cy - v.y) * (h / v.h), w, h };
    this.applyView();
  }

  // The overview for many services: each service network a box of service tiles coloured by health (services in
  // no network in a box of their own). A tile opens its chain in the full view.
  renderOverview(model, query, onOpen) {
    const q = (query ?? '').toLowerCase();
    const svg = this.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const members = new Map();
    const placed = new Set();
    for (const n of model.nodes.values()) if (n.kind === 'network') members.set(n.key, []);
    for (const e of model.edges) {
      if (members.has(e.from) && model.nodes.get(e.to)?.kind === 'service') { members.get(e.from).push(model.nodes.get(e.to)); placed.add(e.to); }
    }
    const loose = [...model.nodes.values()].filter((n) => n.kind === 'service' && !placed.has(n.key));
    const boxes = [...members.entries()].map(([key, list]) => ({ key, label: model.nodes.get(key).label, health: model.nodes.get(key).health, list }))
      .sort((a, b) => a.label.localeCompare(b.label));
    if (loose.length) boxes.push({ key: 'none', label: 'in no service network', health: 'idle', list: loose });
    const PER_ROW = 8, TILE_W = 150, TILE_H = 26, PAD = 10;
    let y = 0;
    let shown = 0;
    for (const box of boxes) {
      const list = box.list.filter((n) => !q || (n.search ?? n.label).toLowerCase().includes(q) || box.label.toLowerCase().includes(q))
        .sort((a, b) => a.label.localeCompare(b.label));
      if (q && !list.length) continue;
      const rows = Math.max(1, Math.ceil(list.length / PER_ROW));
      const g = el('g', { class: `overview-box ${box.health}`, transform: `translate(0,${y})`, 'data-key': box.key }, svg);
      el('rect', { width: PER_ROW * (TILE_W + PAD) + PAD, height: rows * (TILE_H + PAD) + 30, rx: 8, class: 'group' }, g);
      const title = el('text', { x: PAD, y: 18, class: 'box-title' }, g);
      title.textContent = `${box.label} (${list.length} service${list.length === 1 ? '' : 's'})`;
      list.forEach((n, i) => {
        const tile = el('g', { class: `node service ${n.health ?? 'idle'}`, transform: `translate(${PAD + (i % PER_ROW) * (TILE_W + PAD)},${26 + Math.floor(i / PER_ROW) * (TILE_H + PAD)})`, 'data-key': n.key, 'data-kind': 'service', 'data-id': n.id, 'data-health': n.health ?? 'idle', 'data-label': n.label }, g);
        el('rect', { width: TILE_W, height: TILE_H, rx: 13 }, tile);
        el('circle', { cx: 10, cy: TILE_H / 2, r: 5, class: 'dot' }, tile);
        const label = el('text', { x: 20, y: 11, class: 'label' }, tile);
        label.textContent = shorten(n.label, 22);
        const sub = el('text', { x: 20, y: 22, class: 'sub' }, tile);
        sub.textContent = n.traffic ? `${n.traffic.rps.toFixed(1)} req/s, 5xx ${(n.traffic.ratio5xx * 100).toFixed(1)}%` : 'no traffic';
        const tip = el('title', {}, tile);
        tip.textContent = `${n.label}\n${n.sub ?? ''}`;
        tile.addEventListener('click', () => onOpen(n));
        shown++;
      });
      y += rows * (TILE_H + PAD) + 30 + 16;
    }
    this.bounds = { w: PER_ROW * (TILE_W + PAD) + PAD, h: y };
    if (!this.view) this.fit();
    return shown;
  }

  render(model, query) {
    const visible = visibleFor(model, query);
    const shown = [...model.nodes.values()].filter((n) => !visible || visible.has(n.key));
    // Order each column by its first parent's position, so edges mostly run straight.
    const columns = new Map();
    const position = new Map();
    const parents = new Map();
    for (const e of model.edges) { if (!parents.has(e.to)) parents.set(e.to, []); parents.get(e.to).push(e.from); }
    const maxColumn = Math.max(0, ...shown.map((n) => n.column));
    for (let c = 0; c <= maxColumn; c++) {
      const list = shown.filter((n) => n.column === c);
      const order = (n) => {
        const ps = (parents.get(n.key) ?? []).map((p) => position.get(p)).filter((p) => p !== undefined);
        return ps.length ? Math.min(...ps) : Number.MAX_SAFE_INTEGER;
      };
      list.sort((a, b) => order(a) - order(b) || a.label.localeCompare(b.label));
      list.forEach((n, i) => position.set(n.key, i));
      columns.set(c, list);
    }
    const tallest = Math.max(1, ...[...columns.values()].map((l) => l.length));
    const height = tallest * (NODE_H + GAP) + 40;
    const at = new Map();
    for (const [c, list] of columns) {
      const offset = 30 + ((tallest - list.length) * (NODE_H + GAP)) / 2;
      list.forEach((n, i) => at.set(n.key, { x: c * COL_W, y: offset + i * (NODE_H + GAP) }));
    }
    this.bounds = { w: (maxColumn + 1) * COL_W, h: height };

    const svg = this.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const titles = ['VPCs', 'service networks', 'services', model.nodes.size && [...model.nodes.values()].some((n) => n.kind === 'route') ? 'listeners and rules' : 'target groups', 'target groups', 'targets'];
    for (let c = 0; c <= maxColumn; c++) {
      const t = el('text', { x: c * COL_W, y: 12, class: 'column-title' }, svg);
      t.textContent = titles[c];
    }
    // Group boxes: each network's services sit together (sorted by their first network), framed and named.
    const groupLayer = el('g', { class: 'groups' }, svg);
    const services = columns.get(2) ?? [];
    let run = null;
    const closeRun = () => {
      if (!run || run.count < 2) return;
      el('rect', { x: 2 * COL_W - 6, y: run.y0 - 4, width: NODE_W + 12, height: run.y1 - run.y0 + NODE_H + 8, rx: 6, class: 'group' }, groupLayer);
      const name = el('text', { x: 2 * COL_W - 4, y: run.y0 - 6, class: 'group-label' }, groupLayer);
      name.textContent = `${shorten(model.nodes.get(run.network)?.label ?? '', 24)} (${run.count})`;
    };
    for (const n of services) {
      const network = (parents.get(n.key) ?? []).find((p) => position.has(p) && model.nodes.get(p)?.kind === 'network');
      const y = at.get(n.key).y;
      if (run && run.network === network) { run.y1 = y; run.count++; continue; }
      closeRun();
      run = network ? { network, y0: y, y1: y, count: 1 } : null;
    }
    closeRun();
    const edgeLayer = el('g', { class: 'edges' }, svg);
    for (const e of model.edges) {
      const a = at.get(e.from), b = at.get(e.to);
      if (!a || !b) continue;
      const to = model.nodes.get(e.to);
      const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2, x2 = b.x, y2 = b.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      el('path', { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, class: `edge ${to.health ?? 'idle'}`, 'data-from': e.from, 'data-to': e.to }, edgeLayer);
      if (e.label) {
        const label = el('text', { x: mid, y: (y1 + y2) / 2 - 3, class: 'edge-label', 'text-anchor': 'middle', 'data-edge': `${e.from}>${e.to}` }, edgeLayer);
        label.textContent = e.label;
      }
    }
    for (const n of shown) {
      const p = at.get(n.key);
      const g = el('g', { class: `node ${n.kind} ${n.health ?? 'idle'}${this.selected === n.key ? ' selected' : ''}`, transform: `translate(${p.x},${p.y})`, 'data-key': n.key, 'data-kind': n.kind, 'data-id': n.id, 'data-health': n.health ?? 'idle', 'data-label': n.label }, svg);
      el('rect', { width: NODE_W, height: NODE_H, rx: n.kind === 'service' ? 13 : 4 }, g);
      el('circle', { cx: 10, cy: NODE_H / 2, r: 5, class: 'dot' }, g);
      const label = el('text', { x: 20, y: 11, class: 'label' }, g);
      label.textContent = shorten(n.label, 28);
      const sub = el('text', { x: 20, y: 22, class: 'sub' }, g);
      sub.textContent = shorten(n.sub ?? '', 36);
      const title = el('title', {}, g);
      title.textContent = `${n.label}\n${n.sub ?? ''}${n.traffic ? `\n${n.traffic.rps.toFixed(1)} req/s, 5xx ${(n.traffic.ratio5xx * 100).toFixed(1)}%` : ''}`;
      g.addEventListener('click', () => { this.selected = n.key; this.onSelect(n); svg.querySelectorAll('.node.selected').forEach((x) => x.classList.remove('selected')); g.classList.add('selected'); });
    }
    if (!this.view) this.fit();
    return shown.length;
  }
}
