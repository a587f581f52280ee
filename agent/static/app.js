// The pir agent's live page. It loads the groups and their members from
// the JSON API, then follows the agent's event stream (Server-Sent Events
// at v1/events) and redraws only what an event changes.
//
// Everything here came off the network: member IDs, URIs and metadata are
// whatever a datagram on the LAN said. So it is only ever inserted as text
// (textContent, createTextNode) or as an attribute value through
// setAttribute/dataset; never as HTML.
'use strict';

(function () {
  const maxTimeline = 200; // timeline entries kept on the page
  const refreshEvery = 5000; // ms between refreshes of last-heard times
  const fetchTimeout = 10000; // ms a request of the JSON API may take
  const maxQueue = 10000; // events held while a snapshot loads
  const eventTypes = ['joined', 'left', 'health', 'updated'];

  const groupsEl = document.getElementById('groups');
  const noGroupsEl = document.getElementById('nogroups');
  const timelineEl = document.getElementById('timeline');
  const noTimelineEl = document.getElementById('notimeline');
  const statusEl = document.getElementById('status');

  // name -> {name, el, list, count, members: Map(id -> member)}
  // member: {id, el, parts, lastHeard (ms since the epoch or NaN)}
  const groups = new Map();
  let skew = 0; // the agent's clock minus ours, in ms
  let source = null;
  let retry = 1000; // ms before reopening a stream the browser gave up on
  let loading = false; // the JSON snapshot is loading: events wait in queue
  let again = false; // load once more when the current load ends
  let queue = [];

  function elem(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    return e;
  }

  function str(v) {
    return typeof v === 'string' ? v : '';
  }

  function setStatus(state, text) {
    statusEl.dataset.status = state;
    statusEl.textContent = text;
  }

  async function getJSON(path) {
    const r = await fetch(path, {
      cache: 'no-store',
      headers: { Accept: 'application/json' },
      signal: AbortSignal.timeout(fetchTimeout),
    });
    if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
    const date = Date.parse(r.headers.get('Date') || '');
    if (!Number.isNaN(date)) {
      // The Date header has whole seconds: correct only a real skew.
      const d = date - Date.now();
      skew = Math.abs(d) > 2000 ? d : 0;
    }
    return r.json();
  }

  function membersPath(name) {
    return 'v1/groups/' + encodeURIComponent(name) + '/members';
  }

  // ---- groups and members ----

  function ensureGroup(name) {
    let g = groups.get(name);
    if (g) return g;
    const el = elem('section', 'group');
    el.dataset.group = name;
    const h = elem('h2');
    h.append(elem('span', 'group-name', name));
    const count = elem('span', 'group-count');
    h.append(count);
    const list = elem('ul', 'members');
    el.append(h, list);
    g = { name, el, list, count, members: new Map() };
    // Keep the groups sorted by name, as the API does.
    let before = null;
    for (const other of groups.values()) {
      if (other.name > name && (before === null || other.name < before.name)) before = other;
    }
    groupsEl.insertBefore(el, before ? before.el : null);
    groups.set(name, g);
    noGroupsEl.hidden = true;
    updateCount(g);
    return g;
  }

  function updateCount(g) {
    let healthy = 0;
    for (const m of g.members.values()) {
      if (m.el.dataset.verdict === 'healthy') healthy++;
    }
    const n = g.members.size;
    g.count.textContent = n + (n === 1 ? ' member' : ' members') + ', ' + healthy + ' healthy';
    g.el.dataset.members = String(n);
  }

  function newMember(g, id) {
    const el = elem('li', 'member');
    el.dataset.member = id;
    el.dataset.group = g.name;
    const head = elem('div', 'member-head');
    head.append(elem('span', 'member-id', id));
    const verdict = elem('span', 'verdict');
    head.append(verdict);
    const health = elem('div', 'health');
    const meter = elem('meter');
    meter.min = 0;
    meter.max = 1;
    meter.low = 0.5;
    meter.high = 0.9;
    meter.optimum = 1;
    const healthValue = elem('span', 'health-value');
    health.append(meter, healthValue);
    const dl = elem('dl');
    const parts = { verdict, meter, healthValue, dl };
    el.append(head, health, dl);
    const m = { id, el, parts, lastHeard: NaN };
    // Keep the members sorted by ID, as the API does.
    let before = null;
    for (const other of g.members.values()) {
      if (other.id > id && (before === null || other.id < before.id)) before = other;
    }
    g.list.insertBefore(el, before ? before.el : null);
    g.members.set(id, m);
    return m;
  }

  function row(dl, name, value, cls) {
    const dd = elem('dd', cls, value);
    dl.append(elem('dt', null, name), dd);
    return dd;
  }

  // upsert adds or redraws member d (a member or event object of the API).
  function upsert(g, d) {
    const id = str(d.id);
    if (id === '') return;
    const m = g.members.get(id) || newMember(g, id);
    const p = m.parts;
    const verdict = str(d.verdict) || 'unknown';
    m.el.dataset.verdict = verdict;
    p.verdict.textContent = verdict;
    const health = typeof d.health === 'number' && Number.isFinite(d.health) ? d.health : 0;
    p.meter.value = health;
    p.healthValue.textContent = health.toFixed(2);
    m.el.dataset.health = String(health);
    const heard = Date.parse(str(d.last_heard) || str(d.time));
    if (!Number.isNaN(heard) && !(heard < m.lastHeard)) m.lastHeard = heard;

    const dl = p.dl;
    dl.replaceChildren();
    row(dl, 'health', str(d.health_uri)).dataset.field = 'health_uri';
    row(dl, 'comms', str(d.comms_uri)).dataset.field = 'comms_uri';
    if (str(d.addr) !== '') row(dl, 'from', str(d.addr)).dataset.field = 'addr';
    const meta = d.meta && typeof d.meta === 'object' ? d.meta : {};
    for (const k of Object.keys(meta).sort()) {
      const dd = row(dl, k, str(meta[k]), 'meta');
      dd.dataset.meta = k;
    }
    p.age = row(dl, 'last heard', '', 'age');
    p.age.dataset.field = 'last_heard';
    showAge(m, Date.now() + skew);
    updateCount(g);
  }

  function remove(g, id) {
    const m = g.members.get(id);
    if (!m) return;
    m.el.remove();
    g.members.delete(id);
    updateCount(g);
  }

  function showAge(m, now) {
    if (Number.isNaN(m.lastHeard)) {
      m.parts.age.textContent = '-';
      return;
    }
    const s = Math.max(0, (now - m.lastHeard) / 1000);
    let t;
    if (s < 10) t = s.toFixed(1) + ' s ago';
    else if (s < 120) t = Math.round(s) + ' s ago';
    else if (s < 7200) t = Math.round(s / 60) + ' min ago';
    else t = Math.round(s / 3600) + ' h ago';
    m.parts.age.textContent = t;
  }

  function tick() {
    const now = Date.now() + skew;
    for (const g of groups.values()) {
      for (const m of g.members.values()) showAge(m, now);
    }
  }

  // ---- the snapshot from the JSON API ----

  // load replaces what the page shows with the agent's groups and members.
  async function load() {
    const list = await getJSON('v1/groups');
    const names = Array.isArray(list) ? list.map((g) => str(g && g.name)).filter((n) => n !== '') : [];
    const members = await Promise.all(names.map((n) => getJSON(membersPath(n))));
    names.forEach((name, i) => {
      const g = ensureGroup(name);
      const ms = Array.isArray(members[i]) ? members[i] : [];
      const keep = new Set();
      for (const d of ms) {
        if (!d || typeof d !== 'object') continue;
        keep.add(str(d.id));
        upsert(g, d);
      }
      for (const id of Array.from(g.members.keys())) {
        if (!keep.has(id)) remove(g, id);
      }
    });
    for (const [name, g] of Array.from(groups)) {
      if (!names.includes(name)) {
        g.el.remove();
        groups.delete(name);
      }
    }
    noGroupsEl.hidden = groups.size > 0;
  }

  // refresh brings the last-heard times up to date: announcements make no
  // events. Membership itself follows the stream only.
  async function refresh() {
    if (loading) return;
    for (const g of Array.from(groups.values())) {
      let ms;
      try {
        ms = await getJSON(membersPath(g.name));
      } catch (e) {
        return;
      }
      if (!Array.isArray(ms)) continue;
      for (const d of ms) {
        const m = d && g.members.get(str(d.id));
        const heard = m ? Date.parse(str(d.last_heard)) : NaN;
        if (!Number.isNaN(heard) && !(heard < m.lastHeard)) m.lastHeard = heard;
      }
    }
    tick();
  }

  // ---- the event stream ----

  function apply(type, d) {
    if (!d || typeof d !== 'object') return;
    const name = str(d.group);
    const id = str(d.id);
    if (name === '' || id === '') return;
    const g = ensureGroup(name);
    if (d.snapshot === true) {
      // The stream's opening list of current members: the JSON snapshot
      // loaded since is at least as new.
      if (!g.members.has(id)) upsert(g, d);
      return;
    }
    if (type === 'left') remove(g, id);
    else upsert(g, d);
    addTimeline(type, d);
  }

  function addTimeline(type, d) {
    const li = elem('li');
    li.dataset.event = type;
    li.dataset.group = str(d.group);
    li.dataset.member = str(d.id);
    const t = new Date(Date.parse(str(d.time)));
    const time = elem('time');
    if (!Number.isNaN(t.getTime())) {
      const two = (n) => String(n).padStart(2, '0');
      time.textContent = two(t.getHours()) + ':' + two(t.getMinutes()) + ':' + two(t.getSeconds());
      time.dateTime = t.toISOString();
    }
    li.append(time, elem('span', 'ev ev-' + (eventTypes.includes(type) ? type : 'other'), type));
    li.append(elem('span', 'ev-group', str(d.group) + ' '));
    li.append(elem('span', 'ev-id', str(d.id)));
    let detail = '';
    if (type === 'left') detail = str(d.reason);
    else if (type === 'health') detail = str(d.verdict) + (typeof d.health === 'number' ? ' ' + d.health.toFixed(2) : '');
    else if (type === 'joined') detail = str(d.comms_uri);
    if (detail !== '') li.append(elem('span', 'ev-detail', detail));
    timelineEl.insertBefore(li, timelineEl.firstChild);
    while (timelineEl.children.length > maxTimeline) timelineEl.lastChild.remove();
    noTimelineEl.hidden = true;
  }

  function onEvent(e) {
    let d;
    try {
      d = JSON.parse(e.data);
    } catch (err) {
      return;
    }
    if (!loading) {
      apply(e.type, d);
    } else if (queue.length < maxQueue) {
      queue.push([e.type, d]);
    } else {
      // Too much happened during one load: take another snapshot after
      // it instead of keeping every event.
      queue = [];
      again = true;
    }
  }

  // reload takes a fresh snapshot while the stream's events wait, then
  // applies them in order: nothing that happens in between is lost.
  async function reload() {
    if (loading) {
      // The stream opened while an older snapshot loaded: take another,
      // or a member that left in between would stay on the page.
      again = true;
      return;
    }
    loading = true;
    try {
      do {
        again = false;
        await load();
      } while (again);
      if (source && source.readyState === EventSource.OPEN) setStatus('live', 'live');
    } catch (err) {
      setStatus('offline', 'cannot load the groups: ' + err.message);
    } finally {
      loading = false;
      const q = queue;
      queue = [];
      for (const [type, d] of q) apply(type, d);
    }
  }

  function connect() {
    // The browser reconnects by itself after a dropped connection, and
    // then sends Last-Event-ID, so the agent replays what was missed.
    source = new EventSource('v1/events');
    for (const t of eventTypes) source.addEventListener(t, onEvent);
    source.addEventListener('open', () => {
      retry = 1000;
      setStatus('live', 'live');
      reload();
    });
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        // The agent refused the stream: the browser will not retry.
        setStatus('offline', 'offline, retrying');
        source = null;
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 30000);
      } else {
        setStatus('connecting', 'reconnecting…');
      }
    });
  }

  reload();
  connect();
  setInterval(tick, 1000);
  setInterval(refresh, refreshEvery);
})();
