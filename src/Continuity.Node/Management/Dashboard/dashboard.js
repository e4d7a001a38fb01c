// Continuity's web dashboard. Vanilla JS, no build step. Everything the node reports (names, alarms, program output)
// is put on the page with textContent and DOM APIs only, never innerHTML: the page escapes everything it shows.
//
// Live updates: the page polls GET /v1/cluster and GET /v1/apps once a second. /v1/cluster/events streams membership
// events as NDJSON, but EventSource cannot send the Authorization header, it carries no application state (which needs
// polling anyway) and a stream that silently stalls is harder to notice than a poll that fails. One bounded 1 s loop
// (never two requests of a kind in flight, each with a timeout) shows membership, reachability and apps together and
// tells at once when the node stops answering.
(() => {
  'use strict';
  const TOKEN_KEY = 'continuity.token';
  const POLL_MS = 1000;
  const TIMEOUT_MS = 4000;
  const $ = id => document.getElementById(id);

  let token = sessionStorage.getItem(TOKEN_KEY);
  let timer = null;
  let lastOk = null;
  let failingSince = null;
  const panels = new Map();       // app name -> persistent panel elements (so a poll never wipes a pending confirmation)
  const switches = new Map();     // app|epoch|at -> switch seen during this page session

  // el('div', {className: 'x'}, 'text', child, ...): strings become text nodes, never markup.
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === 'dataset') Object.assign(e.dataset, v);
      else e[k] = v;
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  class Unauthorized extends Error {}
  class Unreachable extends Error {}

  async function api(method, path, body) {
    const ctl = new AbortController();
    const t = setTimeout(() => ctl.abort(), method === 'GET' ? TIMEOUT_MS : 65000);
    let resp;
    try {
      resp = await fetch(path, {
        method, signal: ctl.signal, cache: 'no-store',
        headers: Object.assign({ Authorization: 'Bearer ' + token }, body === undefined ? {} : { 'Content-Type': 'application/json' }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new Unreachable(e.name === 'AbortError' ? 'no answer within ' + (TIMEOUT_MS / 1000) + ' s' : String(e.message || e));
    } finally { clearTimeout(t); }
    let json = null;
    try { json = await resp.json(); } catch { /* a non-JSON answer: shown by status below */ }
    if (resp.status === 401) throw new Unauthorized((json && json.error) || 'the node refused the token (401)');
    return { status: resp.status, ok: resp.ok, json };
  }

  const fmtMs = ms => ms === null || ms === undefined ? '–' : ms < 1000 ? ms + ' ms' : ms < 120000 ? (ms / 1000).toFixed(1) + ' s' : Math.round(ms / 60000) + ' min';
  const fmtBytes = b => b === null || b === undefined ? '–' : b < 1024 ? b + ' B' : b < 1048576 ? (b / 1024).toFixed(1) + ' KiB' : (b / 1048576).toFixed(1) + ' MiB';
  const time = d => d.toLocaleTimeString([], { hour12: false });

  function showLogin(message) {
    stop();
    $('board').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('login-error').textContent = message || '';
    $('connection').textContent = '';
    $('connection').className = 'connection';
    $('token').focus();
  }

  function showBoard() {
    $('login').hidden = true;
    $('board').hidden = false;
    $('logout').hidden = false;
  }

  function stop() { if (timer) { clearTimeout(timer); timer = null; } }

  function schedule() { stop(); timer = setTimeout(poll, POLL_MS); }

  async function poll() {
    try {
      const cluster = await api('GET', '/v1/cluster');
      const apps = await api('GET', '/v1/apps');
      lastOk = new Date();
      failingSince = null;
      $('connection').textContent = 'live: updated every second';
      $('connection').className = 'connection up';
      $('board').classList.remove('stale');
      if (cluster.ok) renderCluster(cluster.json);
      renderApps(apps);
      $('updated').textContent = 'as of ' + time(lastOk);
    } catch (e) {
      if (e instanceof Unauthorized) {
        sessionStorage.removeItem(TOKEN_KEY);
        token = null;
        showLogin('The node refused the token: ' + e.message + '. Enter the token again.');
        return;
      }
      failingSince = failingSince || new Date();
      $('connection').textContent = 'Node ' + location.host + ' is unreachable since ' + time(failingSince) + ' (' + e.message + '); retrying every second'
        + (lastOk ? '. Shown: its last answer, at ' + time(lastOk) + '.' : '.');
      $('connection').className = 'connection down';
      $('board').classList.add('stale');
    }
    schedule();
  }

  function renderCluster(c) {
    const self = c.members.find(m => m.address === c.self);
    $('node-self').textContent = self ? '(' + self.node + ', ' + c.self + ')' : '(' + c.self + ')';
    const list = $('members');
    list.replaceChildren(...c.members.map(m => {
      const tags = el('div', { className: 'tags' },
        el('span', { className: 'tag status' }, m.status),
        el('span', { className: 'tag ' + (m.reachable ? 'reachable' : 'unreachable') }, m.reachable ? 'reachable' : 'unreachable'),
        m.address === c.leader ? el('span', { className: 'tag leader' }, 'leader') : null,
        m.address === c.oldest ? el('span', { className: 'tag oldest' }, 'oldest') : null,
        m.address === c.self ? el('span', { className: 'tag self' }, 'this node') : null);
      return el('li', { className: 'member ' + m.status.toLowerCase() + (m.reachable ? '' : ' unreachable'), dataset: { node: m.node } },
        el('div', { className: 'name' }, m.node),
        el('div', { className: 'address' }, m.address),
        el('div', { className: 'roles' }, 'roles: ' + (m.roles.length ? m.roles.join(', ') : '(none)')),
        tags);
    }));
  }

  function renderApps(r) {
    const note = $('apps-note');
    if (!r.ok) {
      note.textContent = (r.json && r.json.error) || ('the node answered ' + r.status);
      $('apps').replaceChildren();
      panels.clear();
      return;
    }
    const apps = r.json.apps || [];
    note.textContent = apps.length ? '' : 'No application is configured (continuity.apps).';
    const names = new Set(apps.map(a => a.name));
    for (const [name, p] of panels) if (!names.has(name)) { p.root.remove(); panels.delete(name); }
    for (const a of apps) {
      let p = panels.get(a.name);
      if (!p) { p = makePanel(a.name); panels.set(a.name, p); $('apps').append(p.root); }
      fillPanel(p, a);
      if (a.lastSwitch) switches.set(a.name + '|' + a.lastSwitch.epoch + '|' + a.lastSwitch.at, Object.assign({ app: a.name }, a.lastSwitch));
    }
    renderTimeline();
  }

  function makePanel(name) {
    const info = el('div', { className: 'info' });
    const select = el('select', { className: 'switch-target', title: 'standby to switch to' });
    const switchBtn = el('button', { type: 'button', className: 'switch' }, 'Switch to…');
    const checkpointBtn = el('button', { type: 'button', className: 'checkpoint' }, 'Checkpoint now');
    const confirm = el('div', { className: 'confirm', hidden: true });
    const result = el('p', { className: 'result', role: 'status' });
    const root = el('article', { className: 'app', dataset: { app: name } },
      el('h3', {}, name), info, el('div', { className: 'actions' }, select, switchBtn, checkpointBtn), confirm, result);
    const p = { root, info, select, switchBtn, checkpointBtn, confirm, result, app: null };

    const ask = (question, action) => {
      confirm.replaceChildren(el('span', { className: 'question' }, question),
        el('button', { type: 'button', className: 'confirm-yes', onclick: () => { confirm.hidden = true; action(); } }, 'Confirm'),
        el('button', { type: 'button', className: 'confirm-no', onclick: () => { confirm.hidden = true; } }, 'Cancel'));
      confirm.hidden = false;
    };
    const run = async (label, method, path, body) => {
      result.className = 'result';
      result.textContent = label + ': asking ' + location.host + '…';
      try {
        const r = await api(method, path, body);
        const text = r.json ? (r.json.error || JSON.stringify(r.json)) : 'no answer body';
        result.className = 'result ' + (r.ok ? 'ok' : 'failed');
        result.textContent = label + ' (' + time(new Date()) + '): ' + (r.ok ? 'done, ' : 'refused (' + r.status + '): ') + text;
      } catch (e) {
        result.className = 'result failed';
        result.textContent = label + ' failed: ' + e.message;
      }
    };
    checkpointBtn.onclick = () => ask('Take a checkpoint of ' + name + ' now? The program is frozen for the dump.',
      () => run('Checkpoint ' + name, 'POST', '/v1/apps/' + encodeURIComponent(name) + '/checkpoint'));
    switchBtn.onclick = () => {
      const to = select.value;
      if (!to) { result.className = 'result failed'; result.textContent = 'No standby to switch to.'; return; }
      ask('Switch ' + name + ' from ' + ((p.app && p.app.primary) || '(no primary)') + ' to ' + to + '? Clients see a short pause.',
        () => run('Switch ' + name + ' to ' + to, 'POST', '/v1/apps/' + encodeURIComponent(name) + '/switch', { to }));
    };
    return p;
  }

  function fillPanel(p, a) {
    p.app = a;
    const cp = a.lastCheckpoint;
    const dl = el('dl', {},
      el('dt', {}, 'State'), el('dd', { className: 'state ' + String(a.state).toLowerCase() }, a.state),
      el('dt', {}, 'Primary (VIP owner)'), el('dd', { className: 'primary' }, a.primary || '(none)'),
      el('dt', {}, 'Epoch'), el('dd', {}, a.epoch),
      el('dt', {}, 'Log depth'), el('dd', {}, a.logDepth + ' packets'),
      el('dt', {}, 'Last checkpoint'), el('dd', { className: 'last-checkpoint' },
        cp ? cp.id + ': ' + fmtMs(cp.ageMs) + ' ago, ' + fmtBytes(cp.bytes) + ', frozen ' + fmtMs(cp.freezeMs) : 'none yet'));
    const standbys = a.standbys.length
      ? el('table', { className: 'standbys' },
          el('thead', {}, el('tr', {}, ...['Standby', 'Address', 'Ready', 'Checkpoint', 'Age', 'Log depth'].map(h => el('th', {}, h)))),
          el('tbody', {}, ...a.standbys.map(s => el('tr', { dataset: { node: s.node } },
            el('td', {}, s.node), el('td', {}, s.address), el('td', {}, s.ready ? 'ready' : 'not ready'),
            el('td', {}, s.checkpointId || '–'), el('td', {}, fmtMs(s.checkpointAgeMs)), el('td', {}, s.logDepth)))))
      : el('p', { className: 'muted' }, 'No standby.');
    p.info.replaceChildren(...[dl, standbys, a.alarm ? el('p', { className: 'alarm' }, a.alarm) : null].filter(Boolean));

    // Keep the operator's choice across polls; only rebuild the options when the standbys change.
    const wanted = a.standbys.map(s => s.node);
    const have = Array.from(p.select.options).map(o => o.value);
    if (wanted.join('\n') !== have.join('\n')) {
      const keep = p.select.value;
      p.select.replaceChildren(...wanted.map(n => el('option', { value: n }, n)));
      if (wanted.includes(keep)) p.select.value = keep;
    }
    p.select.disabled = p.switchBtn.disabled = wanted.length === 0;
  }

  function renderTimeline() {
    const rows = Array.from(switches.values()).sort((x, y) => (y.at > x.at ? 1 : y.at < x.at ? -1 : 0));
    const ph = (s, k) => fmtMs(s.phases ? s.phases[k] : null);
    $('timeline').tBodies[0].replaceChildren(...(rows.length ? rows.map(s => el('tr', {},
      el('td', {}, new Date(s.at).toLocaleString([], { hour12: false })), el('td', {}, s.app),
      el('td', {}, (s.from || '(none)') + ' → ' + s.to), el('td', {}, s.reason), el('td', {}, s.epoch),
      el('td', {}, s.packetsReplayed), el('td', {}, ph(s, 'vipMs')), el('td', {}, ph(s, 'restoreMs')),
      el('td', {}, ph(s, 'replayMs')), el('td', {}, ph(s, 'openMs'))))
      : [el('tr', {}, el('td', { colSpan: 10, className: 'muted' }, 'No switch yet.'))]));
  }

  async function login(ev) {
    ev.preventDefault();
    token = $('token').value.trim();
    $('login-error').textContent = 'Checking the token with ' + location.host + '…';
    try {
      const r = await api('GET', '/v1/cluster');
      if (!r.ok) throw new Error('the node answered ' + r.status);
      sessionStorage.setItem(TOKEN_KEY, token);
      $('token').value = '';
      $('login-error').textContent = '';
      showBoard();
      poll();
    } catch (e) {
      token = null;
      $('login-error').textContent = e instanceof Unauthorized
        ? 'Wrong token: the node refused it (' + e.message + ').'
        : 'Could not check the token: ' + location.host + ' did not answer (' + e.message + '). Is the node running?';
    }
  }

  $('node-origin').textContent = location.host;
  $('login-form').addEventListener('submit', login);
  $('logout').addEventListener('click', () => { sessionStorage.removeItem(TOKEN_KEY); token = null; showLogin(''); });
  if (token) { showBoard(); poll(); } else showLogin('');
})();
