// Audit Trail page: a read-only view of the sidecar's audit API. No framework, no build step.
// Every value from the API is put in the page with textContent, never as HTML.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const CRED_KEY = 'flowker-audit.credential'; // sessionStorage only (this tab), never persistent storage or the URL
  const PAGE_SIZES = ['20', '50', '100'];
  const FILTER_PARAMS = ['eventType', 'result', 'resourceId', 'actorType', 'actorId', 'dateFrom', 'dateTo', 'sortOrder', 'limit'];
  const authMode = (document.querySelector('meta[name="audit-auth-mode"]') || {}).content || 'api_key';

  const state = {
    config: null,
    cursors: [''], // cursor of each page visited; '' is the first page
    page: 0,
    hasMore: false,
    items: [],
    seq: 0, // request generation: stale answers are dropped
    loadCount: 0,
    firstScreen: false,
    openRowId: null,
  };

  const el = {
    body: document.body,
    authPanel: $('auth-panel'), authForm: $('auth-form'), authKey: $('auth-key'), authKind: $('auth-kind'),
    authKindRow: $('auth-kind-row'), authMessage: $('auth-message'), authLabel: $('auth-key-label'), authHint: $('auth-hint'),
    trail: $('trail'), changeKey: $('change-key'), sessionInfo: $('session-info'),
    filters: $('filters'), eventType: $('f-event-type'), from: $('f-from'), to: $('f-to'), result: $('f-result'),
    resource: $('f-resource'), sort: $('f-sort'), clear: $('clear-filters'), filterError: $('filter-error'),
    status: $('status'), refresh: $('refresh'), table: $('events'), rows: $('rows'),
    pageSize: $('page-size'), pageInfo: $('page-info'), prev: $('prev'), next: $('next'),
    dialog: $('details'), dialogClose: $('details-close'), summary: $('details-summary'), fields: $('details-fields'),
    verifyBtn: $('verify-btn'), verifyResult: $('verify-result'),
    actorType: $('f-actor-type'), actor: $('f-actor'), actorList: $('actor-names'),
    exportFormat: $('export-format'), exportBtn: $('export'), exportStatus: $('export-status'),
  };

  // ---------- credentials ----------
  function getCred() {
    try {
      const c = JSON.parse(sessionStorage.getItem(CRED_KEY) || 'null');
      return c && typeof c.value === 'string' && c.value !== '' ? c : null;
    } catch (_) {
      return null;
    }
  }
  function setCred(kind, value) { sessionStorage.setItem(CRED_KEY, JSON.stringify({ kind: kind, value: value })); }
  function clearCred() { sessionStorage.removeItem(CRED_KEY); }
  function authHeaders() {
    const c = getCred();
    if (!c) return {};
    return c.kind === 'bearer' ? { Authorization: 'Bearer ' + c.value } : { 'X-API-Key': c.value };
  }

  // ---------- JSON that keeps numbers exactly as written ----------
  function RawNumber(text) { this.text = text; }
  RawNumber.prototype.toString = function () { return this.text; };
  RawNumber.prototype.valueOf = function () { return Number(this.text); };

  function parseJSON(text) {
    let i = 0;
    const ws = () => { while (i < text.length && ' \t\n\r'.indexOf(text[i]) >= 0) i++; };
    const fail = () => { throw new SyntaxError('bad JSON at ' + i); };
    function value() {
      ws();
      const c = text[i];
      if (c === '{') {
        i++; const o = {}; ws();
        if (text[i] === '}') { i++; return o; }
        for (;;) {
          ws(); if (text[i] !== '"') fail();
          const k = str(); ws(); if (text[i++] !== ':') fail();
          o[k] = value(); ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === '}') { i++; return o; }
          fail();
        }
      }
      if (c === '[') {
        i++; const a = []; ws();
        if (text[i] === ']') { i++; return a; }
        for (;;) {
          a.push(value()); ws();
          if (text[i] === ',') { i++; continue; }
          if (text[i] === ']') { i++; return a; }
          fail();
        }
      }
      if (c === '"') return str();
      if (text.startsWith('true', i)) { i += 4; return true; }
      if (text.startsWith('false', i)) { i += 5; return false; }
      if (text.startsWith('null', i)) { i += 4; return null; }
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
      if (!m) fail();
      i += m[0].length;
      return /^-?\d{1,15}$/.test(m[0]) ? Number(m[0]) : new RawNumber(m[0]);
    }
    function str() {
      const start = i; i++;
      while (i < text.length && text[i] !== '"') { if (text[i] === '\\') i++; i++; }
      if (i >= text.length) fail();
      i++;
      return JSON.parse(text.slice(start, i));
    }
    const v = value(); ws();
    if (i !== text.length) fail();
    return v;
  }

  function pretty(v, indent) {
    indent = indent || '';
    const next = indent + '  ';
    if (v instanceof RawNumber) return v.text;
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      return '[\n' + v.map((x) => next + pretty(x, next)).join(',\n') + '\n' + indent + ']';
    }
    if (v && typeof v === 'object') {
      const keys = Object.keys(v);
      if (keys.length === 0) return '{}';
      return '{\n' + keys.map((k) => next + JSON.stringify(k) + ': ' + pretty(v[k], next)).join(',\n') + '\n' + indent + '}';
    }
    return JSON.stringify(v);
  }

  // ---------- API ----------
  async function api(path) {
    let res;
    try {
      res = await fetch(path, {
        headers: Object.assign({ Accept: 'application/json' }, authHeaders()),
        cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      });
    } catch (_) {
      return { status: 0, body: null };
    }
    let body = null;
    try { body = parseJSON(await res.text()); } catch (_) { body = null; }
    return { status: res.status, body: body };
  }
  function messageOf(r, fallback) {
    return r.body && typeof r.body.message === 'string' && r.body.message ? r.body.message : fallback;
  }
  function codeOf(r) { return r.body && r.body.code != null ? String(r.body.code) : ''; }

  // ---------- dates ----------
  const pad = (n, w) => String(n).padStart(w || 2, '0');
  function localInputValue(iso) { // RFC 3339 -> datetime-local value (this browser's time zone)
    const d = new Date(iso);
    if (isNaN(d)) return '';
    return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + 'T' +
      pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds());
  }
  function fromInputToRFC3339(value, endOfSecond) { // datetime-local value -> RFC 3339 UTC
    if (!value) return '';
    const d = new Date(value); // no offset: local time
    if (isNaN(d)) return '';
    d.setMilliseconds(0);
    const iso = d.toISOString().replace('.000Z', 'Z');
    return endOfSecond ? iso.replace('Z', '.999999Z') : iso; // To Date includes its whole second
  }
  const localFmt = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  function utcText(iso) {
    const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z$/.exec(iso);
    return m ? m[1] + ' ' + m[2] + ' UTC' : iso;
  }

  // ---------- filters <-> URL ----------
  function currentFilters() {
    return {
      eventType: el.eventType.value,
      result: el.result.value,
      resourceId: el.resource.value.trim(),
      actorType: el.actorType.value,
      actorId: actorIdOf(el.actor.value.trim()),
      dateFrom: fromInputToRFC3339(el.from.value, false),
      dateTo: fromInputToRFC3339(el.to.value, true),
      sortOrder: el.sort.value === 'ASC' ? 'ASC' : '',
      limit: el.pageSize.value === '20' ? '' : el.pageSize.value,
    };
  }
  function hasFilters(f) { return !!(f.eventType || f.result || f.resourceId || f.actorType || f.actorId || f.dateFrom || f.dateTo); }

  function writeURL() {
    const f = currentFilters();
    const p = new URLSearchParams();
    FILTER_PARAMS.forEach((k) => { if (f[k]) p.set(k, f[k]); });
    const qs = p.toString();
    history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
  }

  function readURL() {
    const p = new URLSearchParams(location.search);
    el.result.value = ['SUCCESS', 'FAILED', 'UNKNOWN'].indexOf(p.get('result')) >= 0 ? p.get('result') : '';
    el.resource.value = p.get('resourceId') || '';
    readActorURL(p);
    el.from.value = p.get('dateFrom') ? localInputValue(p.get('dateFrom')) : '';
    el.to.value = p.get('dateTo') ? localInputValue(p.get('dateTo')) : '';
    el.sort.value = (p.get('sortOrder') || '').toUpperCase() === 'ASC' ? 'ASC' : 'DESC';
    el.pageSize.value = PAGE_SIZES.indexOf(p.get('limit')) >= 0 ? p.get('limit') : '20';
    const wanted = p.get('eventType') || '';
    if (wanted) { // until the configuration lists the types, keep the wanted one selectable
      const o = document.createElement('option');
      o.value = wanted;
      o.textContent = wanted;
      el.eventType.appendChild(o);
      el.eventType.value = wanted;
    }
    return wanted;
  }

  // ---------- actor filter ----------
  // The Actor field takes a configured key name (identity.api_key_names, offered as suggestions)
  // or an actor id as stored ("key:..." for API keys, a user id, ...); the API gets the id.
  function actorNamesConfig() { return (state.config && state.config.actorNames) || {}; }
  function actorIdOf(text) {
    if (!text) return '';
    const names = actorNamesConfig();
    for (const id of Object.keys(names)) if (names[id] === text) return id;
    return text;
  }
  function actorTextOf(id) {
    const names = actorNamesConfig();
    return id && Object.prototype.hasOwnProperty.call(names, id) ? names[id] : id;
  }
  function readActorURL(p) {
    const t = p.get('actorType') || '';
    el.actorType.value = ['api_key', 'user', 'system'].indexOf(t) >= 0 ? t : '';
    el.actor.value = actorTextOf(p.get('actorId') || '');
  }
  function applyActorConfig() { // suggestions, and the name in place of an id from the URL
    const names = actorNamesConfig();
    el.actorList.replaceChildren();
    Object.keys(names).sort((a, b) => String(names[a]).localeCompare(String(names[b]))).forEach((id) => {
      const o = document.createElement('option');
      o.value = names[id];
      o.label = id;
      el.actorList.appendChild(o);
    });
    el.actor.value = actorTextOf(el.actor.value.trim());
  }

  // ---------- export ----------
  // The download carries the filters of the table (not its paging) and goes through fetch, because
  // the credential is a header, never part of a URL.
  function exportPath(format) {
    const f = currentFilters();
    const p = new URLSearchParams();
    FILTER_PARAMS.forEach((k) => { if (f[k] && k !== 'limit') p.set(k, f[k]); });
    p.set('format', format);
    return '/v1/audit-events/export?' + p.toString();
  }
  async function exportDownload() {
    const format = el.exportFormat.value === 'ndjson' ? 'ndjson' : 'csv';
    el.exportBtn.disabled = true;
    el.exportStatus.hidden = false;
    el.exportStatus.textContent = 'Exporting…';
    el.body.dataset.export = 'running';
    try {
      const res = await fetch(exportPath(format), {
        headers: authHeaders(), cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      });
      if (!res.ok) {
        let msg = 'HTTP ' + res.status;
        try { const b = JSON.parse(await res.text()); if (b && b.message) msg += ': ' + b.message; } catch (_) { /* not JSON */ }
        el.exportStatus.textContent = 'Export failed (' + msg + ').';
        el.body.dataset.export = 'failed';
        return;
      }
      const blob = await res.blob();
      const cd = res.headers.get('Content-Disposition') || '';
      const m = /filename="([^"]+)"/.exec(cd);
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = m ? m[1] : 'audit-events.' + format;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      el.exportStatus.textContent = 'Exported ' + a.download + '.';
      el.body.dataset.export = 'done';
    } catch (_) {
      el.exportStatus.textContent = 'Export failed: cannot reach the audit API.';
      el.body.dataset.export = 'failed';
    } finally {
      el.exportBtn.disabled = false;
    }
  }

  function listPath(cursor) {
    const f = currentFilters();
    const p = new URLSearchParams();
    FILTER_PARAMS.forEach((k) => { if (f[k]) p.set(k, f[k]); });
    if (!f.limit) p.set('limit', '20');
    if (cursor) p.set('cursor', cursor);
    return '/v1/audit-events?' + p.toString();
  }

  function setFiltersEnabled(on) {
    [el.eventType, el.from, el.to, el.result, el.resource, el.sort, el.clear, el.refresh,
      el.actorType, el.actor, el.exportFormat, el.exportBtn].forEach((c) => { c.disabled = !on; });
  }

  // ---------- config ----------
  function applyConfig(cfg, wantedType) {
    state.config = cfg;
    const sel = el.eventType;
    while (sel.options.length > 1) sel.remove(1);
    sel.querySelectorAll('optgroup').forEach((g) => g.remove());
    (cfg.eventTypes || []).forEach((g) => {
      const og = document.createElement('optgroup');
      og.label = g.group;
      (g.types || []).forEach((t) => {
        const o = document.createElement('option');
        o.value = t.value;
        o.textContent = t.label;
        og.appendChild(o);
      });
      sel.appendChild(og);
    });
    sel.value = wantedType;
    if (sel.value !== wantedType) sel.value = '';
    applyActorConfig();
  }
  function typeInfo(eventType) {
    const groups = (state.config && state.config.eventTypes) || [];
    for (const g of groups) for (const t of g.types || []) if (t.value === eventType) return t;
    const label = String(eventType).toLowerCase().split('_').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ');
    const fam = /^WORKFLOW_/.test(eventType) ? 'workflow' : /^EXECUTION_/.test(eventType) ? 'execution' : /^PROVIDER_/.test(eventType) ? 'provider' : 'other';
    return { value: eventType, label: label, family: fam };
  }

  // ---------- rendering helpers ----------
  function h(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = String(text);
    return e;
  }
  const ACTOR_TYPES = { api_key: 'API key', user: 'User', system: 'System' };
  function actorName(actor) {
    const names = (state.config && state.config.actorNames) || {};
    return actor && Object.prototype.hasOwnProperty.call(names, actor.id) ? names[actor.id] : '';
  }
  // An actor the sidecar could not verify: a JWT subject claimed by the client whose signature was
  // not checked (no key configured, or it failed). Shown as claimed, never as an established user.
  function unverifiedActor(ev) {
    const a = ev.context && typeof ev.context === 'object' ? ev.context.auth : null;
    return !!(a && a.method === 'jwt' && a.verified === false);
  }
  function resourceName(ev) {
    const m = ev.metadata && typeof ev.metadata === 'object' ? ev.metadata : {};
    const n = m['workflow.name'] != null ? m['workflow.name'] : m['provider_config.name'];
    return n != null && String(n) !== '' ? String(n) : '';
  }
  // Events of the chain written by `flowker-audit import flowker` (Flowker's native history).
  const IMPORTED_CHAIN = 'flowker-native';
  function isImported(ev) { return ev && ev.chainId === IMPORTED_CHAIN; }
  function eventBadge(ev) {
    const frag = document.createDocumentFragment();
    const t = typeInfo(ev.eventType);
    frag.appendChild(h('span', 'badge fam-' + t.family, t.label));
    if (isImported(ev)) {
      const imp = h('span', 'badge imported', 'Imported');
      imp.title = 'Imported from Flowker\'s own audit table (flowker-audit import flowker): hashed by Flowker\'s rules';
      frag.appendChild(imp);
    }
    if (ev.result === 'FAILED') {
      const f = h('span', 'result-failed');
      f.appendChild(h('span', 'alert-icon', '!')).setAttribute('aria-hidden', 'true');
      f.appendChild(document.createTextNode('Failed'));
      frag.appendChild(f);
    }
    return frag;
  }

  function renderRows(items) {
    el.rows.replaceChildren();
    items.forEach((ev, idx) => {
      const tr = h('tr', 'event-row' + (ev.result === 'FAILED' ? ' failed' : ''));
      tr.tabIndex = 0;
      tr.dataset.id = ev.eventId;
      tr.dataset.index = String(idx);

      const tdTime = h('td', 'cell-time');
      const time = h('time', null, isNaN(new Date(ev.timestamp)) ? ev.timestamp : localFmt.format(new Date(ev.timestamp)));
      time.dateTime = ev.timestamp;
      time.title = utcText(ev.timestamp);
      tdTime.appendChild(time);

      const tdEvent = h('td', 'cell-event');
      tdEvent.appendChild(eventBadge(ev));

      const tdActor = h('td', 'cell-actor');
      const actor = ev.actor || {};
      const name = actorName(actor);
      tdActor.appendChild(h('span', 'tag', ACTOR_TYPES[actor.type] || actor.type || 'unknown'));
      if (unverifiedActor(ev)) {
        const u = tdActor.appendChild(h('span', 'tag unverified', 'Unverified'));
        u.title = 'Subject claimed in a JWT whose signature was not verified';
      }
      if (name) {
        tdActor.appendChild(h('span', 'actor-name', name));
        tdActor.appendChild(h('span', 'sub mono', actor.id));
      } else {
        tdActor.appendChild(h('span', 'actor-name mono', actor.id || '—'));
      }

      const tdRes = h('td', 'cell-resource');
      const rname = resourceName(ev);
      tdRes.appendChild(h('span', 'tag', String(ev.resourceType || '').replace(/_/g, ' ')));
      if (rname) {
        tdRes.appendChild(h('span', 'resource-name', rname));
        tdRes.appendChild(h('span', 'sub mono', ev.resourceId));
      } else {
        tdRes.appendChild(h('span', 'resource-name mono', ev.resourceId || '—'));
      }
      tr.append(tdTime, tdEvent, tdActor, tdRes);
      el.rows.appendChild(tr);
    });
  }

  function renderState(kind, title, text, action) {
    const tr = h('tr', 'state-row');
    const td = h('td');
    td.colSpan = 4;
    const box = h('div', 'state state-' + kind);
    if (kind === 'loading') {
      box.appendChild(h('span', 'spinner')).setAttribute('aria-hidden', 'true');
      box.appendChild(document.createTextNode(title));
    } else {
      box.appendChild(h('h2', null, title));
      if (text) box.appendChild(h('p', null, text));
      if (action) {
        const b = h('button', 'secondary', action.label);
        b.type = 'button';
        b.id = action.id;
        b.addEventListener('click', action.run);
        box.appendChild(b);
      }
    }
    td.appendChild(box);
    tr.appendChild(td);
    el.rows.replaceChildren(tr);
  }

  function setPageControls() {
    el.prev.disabled = state.page === 0;
    el.next.disabled = !state.hasMore;
    const size = Number(el.pageSize.value);
    if (state.items.length === 0) {
      el.pageInfo.textContent = state.page > 0 ? 'Page ' + (state.page + 1) : '';
    } else {
      const first = state.page * size + 1;
      el.pageInfo.textContent = 'Page ' + (state.page + 1) + ' · events ' + first + '–' + (first + state.items.length - 1);
    }
  }

  function setBodyState(s) { el.body.dataset.state = s; }

  // ---------- auth panel ----------
  function showAuth(message, isInfo, noForm) {
    setBodyState('auth');
    el.trail.hidden = true;
    el.authPanel.hidden = false;
    el.changeKey.hidden = true;
    el.sessionInfo.textContent = '';
    el.authMessage.textContent = message || '';
    el.authMessage.classList.toggle('info', !!isInfo);
    if (authMode === 'none' || noForm) {
      el.authForm.hidden = true;
      el.authMessage.classList.remove('info');
      el.authMessage.textContent = (message || 'Audit API authentication is not configured.') +
        ' Ask the operator of this sidecar to configure an audit API key or delegation to Flowker.';
      return;
    }
    el.authForm.hidden = false;
    el.authKey.value = '';
    el.authKey.focus();
  }
  function hideAuth() {
    el.authPanel.hidden = true;
    el.trail.hidden = false;
    const c = getCred();
    el.changeKey.hidden = !c;
    el.sessionInfo.textContent = c ? (c.kind === 'bearer' ? 'Signed in with an access token' : 'Signed in with an API key') : '';
  }
  function unauthorized(r) {
    const hadCred = getCredWasSet;
    clearCred();
    getCredWasSet = false;
    const m = messageOf(r, 'API Key missing or invalid');
    if (/not configured/i.test(m)) {
      showAuth(m.charAt(0).toUpperCase() + m.slice(1) + '.', false, true);
    } else if (hadCred) {
      showAuth('The key was refused (' + m + '). Enter it again.', false);
    } else {
      showAuth(authMode === 'delegate' ? 'Enter your Flowker credential to view audit events.' : 'Enter the audit API key to view audit events.', true);
    }
  }
  let getCredWasSet = false;

  // ---------- loading ----------
  // load fetches the current page; body[data-loads] counts finished loads (tests wait on it).
  async function load(opts) {
    const mySeq = ++state.seq;
    await loadPage(opts || {}, mySeq);
    if (mySeq === state.seq) el.body.dataset.loads = String(++state.loadCount);
  }

  async function loadPage(opts, mySeq) {
    getCredWasSet = !!getCred();
    el.table.setAttribute('aria-busy', 'true');
    setBodyState('loading');
    el.status.textContent = 'Loading events…';
    if (!state.items.length || opts.clear) renderState('loading', 'Loading events…');
    const wantedType = opts.wantedType;
    const needConfig = !state.config;
    const [cfgRes, listRes] = await Promise.all([
      needConfig ? api('/audit-trail/config.json') : Promise.resolve(null),
      api(listPath(state.cursors[state.page])),
    ]);
    if (mySeq !== state.seq) return; // a newer request superseded this one
    el.table.setAttribute('aria-busy', 'false');
    if ((cfgRes && cfgRes.status === 401) || listRes.status === 401) {
      state.config = null;
      unauthorized(cfgRes && cfgRes.status === 401 ? cfgRes : listRes);
      return;
    }
    hideAuth();
    if (cfgRes) {
      if (cfgRes.status === 200 && cfgRes.body) {
        applyConfig(cfgRes.body, wantedType || '');
        if (wantedType && el.eventType.value !== wantedType) { // unknown type in a shared URL
          writeURL();
          return load({ clear: true });
        }
      } else {
        return showError(cfgRes);
      }
    }
    setFiltersEnabled(true);
    if (listRes.status !== 200 || !listRes.body || !Array.isArray(listRes.body.items)) return showError(listRes);
    el.filterError.hidden = true;
    state.items = listRes.body.items;
    state.hasMore = !!listRes.body.hasMore && !!listRes.body.nextCursor;
    state.nextCursor = listRes.body.nextCursor || '';
    if (state.items.length === 0) {
      const f = currentFilters();
      if (state.page > 0) {
        renderState('empty', 'No more events', 'There are no events after the previous page.', { id: 'state-first', label: 'Back to the first page', run: firstPage });
      } else if (hasFilters(f)) {
        renderState('empty', 'No events match these filters', 'Try a wider date range or another event type.', { id: 'state-clear', label: 'Clear filters', run: clearFilters });
      } else {
        renderState('empty', 'No events recorded yet', 'Actions on workflows, executions and providers will appear here.');
      }
      el.status.textContent = 'No events.';
      setBodyState('empty');
    } else {
      renderRows(state.items);
      el.status.textContent = 'Showing ' + state.items.length + ' event' + (state.items.length === 1 ? '' : 's') +
        (el.sort.value === 'ASC' ? ', oldest first.' : ', newest first.');
      setBodyState('ready');
    }
    setPageControls();
    if (!state.firstScreen) {
      state.firstScreen = true;
      performance.mark('audit-first-screen');
    }
  }

  function showError(r) {
    setFiltersEnabled(!!state.config);
    state.items = [];
    state.hasMore = false;
    setPageControls();
    const code = codeOf(r);
    const retry = { id: 'state-retry', label: 'Try again', run: () => load({ clear: true }) };
    if (r.status === 400) {
      el.filterError.textContent = messageOf(r, 'The filters are not valid.');
      el.filterError.hidden = false;
      renderState('error', 'These filters cannot be applied', messageOf(r, ''), null);
      el.status.textContent = 'Invalid filters.';
      setBodyState('invalid');
      return;
    }
    el.filterError.hidden = true;
    if (r.status === 503 && code === 'FLK-0612') {
      renderState('error', 'Audit store unavailable', 'The audit API cannot reach its query store right now (audit store unavailable). Try again in a moment.', retry);
      el.status.textContent = 'Audit store unavailable.';
      setBodyState('unavailable');
    } else if (r.status === 503) {
      renderState('error', 'Service unavailable', messageOf(r, 'The audit API is unavailable.'), retry);
      el.status.textContent = 'Service unavailable.';
      setBodyState('unavailable');
    } else if (r.status === 0) {
      renderState('error', 'Cannot reach the audit API', 'Check the network connection to this sidecar.', retry);
      el.status.textContent = 'Network error.';
      setBodyState('error');
    } else {
      renderState('error', 'Something went wrong', 'HTTP ' + r.status + (code ? ' ' + code : '') + ': ' + messageOf(r, 'unexpected answer'), retry);
      el.status.textContent = 'Error.';
      setBodyState('error');
    }
  }

  function resetPaging() { state.cursors = ['']; state.page = 0; }
  function filtersChanged() { resetPaging(); writeURL(); load(); }
  function firstPage() { resetPaging(); load(); }
  function clearFilters() {
    el.eventType.value = ''; el.result.value = ''; el.resource.value = ''; el.from.value = ''; el.to.value = '';
    el.actorType.value = ''; el.actor.value = '';
    el.sort.value = 'DESC';
    filtersChanged();
  }

  // ---------- details dialog ----------
  function field(label, value, opts) {
    opts = opts || {};
    el.fields.appendChild(h('dt', null, label));
    const dd = h('dd');
    if (opts.pre) {
      dd.appendChild(h('pre', null, value));
    } else if (opts.node) {
      dd.appendChild(value);
    } else {
      dd.appendChild(h('span', opts.mono ? 'mono' : null, value == null || value === '' ? '—' : value));
    }
    if (opts.id) dd.id = opts.id;
    el.fields.appendChild(dd);
  }

  function openDetails(idx, row) {
    const ev = state.items[idx];
    if (!ev) return;
    state.openRowId = ev.eventId;
    el.summary.replaceChildren(eventBadge(ev));
    el.fields.replaceChildren();
    const ts = h('span');
    ts.appendChild(h('span', null, isNaN(new Date(ev.timestamp)) ? ev.timestamp : localFmt.format(new Date(ev.timestamp))));
    ts.appendChild(h('span', 'sub mono', utcText(ev.timestamp)));
    const actor = ev.actor || {};
    field('Event ID', ev.eventId, { mono: true, id: 'd-event-id' });
    field('Event type', ev.eventType, { mono: true });
    field('Action', ev.action, { mono: true });
    field('Result', ev.result, { mono: true });
    field('Timestamp', ts, { node: true });
    field('Actor type', ACTOR_TYPES[actor.type] ? ACTOR_TYPES[actor.type] + ' (' + actor.type + ')' : actor.type);
    field('Actor ID', actor.id, { mono: true });
    if (unverifiedActor(ev)) {
      const d = ev.context.auth.detail;
      field('Actor verified', 'No: subject claimed in a JWT whose signature was not verified' + (d ? ' (' + d + ')' : ''), { id: 'd-actor-verified' });
    }
    if (actorName(actor)) field('Actor name', actorName(actor));
    field('Actor IP', actor.ipAddress, { mono: true });
    field('Resource type', ev.resourceType, { mono: true });
    field('Resource ID', ev.resourceId, { mono: true });
    if (resourceName(ev)) field('Resource name', resourceName(ev));
    field('Chain ID', ev.chainId, { mono: true, id: 'd-chain-id' });
    field('Sequence', ev.sequence, { mono: true, id: 'd-sequence' });
    field('Hash', ev.hash, { mono: true, id: 'd-hash' });
    field('Previous hash', ev.previousHash || '(none: first event of the chain)', { mono: true, id: 'd-previous-hash' });
    field('Context', pretty(ev.context == null ? {} : ev.context), { pre: true, id: 'd-context' });
    field('Metadata', pretty(ev.metadata == null ? {} : ev.metadata), { pre: true, id: 'd-metadata' });
    el.verifyResult.hidden = true;
    el.verifyResult.className = 'verify-result';
    el.verifyResult.replaceChildren();
    el.verifyBtn.disabled = false;
    state.returnFocus = row;
    el.dialog.showModal();
    el.dialogClose.focus();
  }

  // closeDetails closes the dialog and returns the focus to the row it was opened from, at once:
  // the dialog's 'close' event comes later, possibly after the dialog was opened again.
  function closeDetails() {
    if (!el.dialog.open) return;
    el.dialog.close();
    afterClose();
  }
  function afterClose() {
    const id = state.openRowId;
    state.openRowId = null;
    let target = state.returnFocus && state.returnFocus.isConnected ? state.returnFocus : null;
    if (!target && id) target = el.rows.querySelector('tr[data-id="' + CSS.escape(id) + '"]');
    state.returnFocus = null;
    if (target) target.focus();
  }

  function verifyShow(kind, title, lines, alarm) {
    el.verifyResult.hidden = false;
    el.verifyResult.className = 'verify-result ' + kind;
    el.verifyResult.setAttribute('role', alarm ? 'alert' : 'status');
    el.verifyResult.replaceChildren(h('strong', null, title));
    (lines || []).forEach((l) => { if (l) el.verifyResult.appendChild(h('div', l.cls || null, l.text)); });
  }

  // What each verify reason means, for the event at sequence n.
  const REASONS = {
    'hash mismatch': (n) => 'The stored fields of the event at sequence ' + n + ' no longer produce its stored hash: it was changed after it was recorded.',
    'broken link': (n) => 'The previous hash of the event at sequence ' + n + ' is not the hash of the event before it: an event was changed, removed or inserted.',
    'gap': (n) => 'Sequence ' + n + ' is missing from the store: an event was removed.',
    'duplicate': (n) => 'Sequence ' + n + ' is stored more than once.',
    'bad genesis': () => 'The first event of the chain links to a previous event.',
    'timestamp order': (n) => 'The event at sequence ' + n + ' is timestamped before the event preceding it.',
    'checkpoint mismatch': (n) => 'The event at sequence ' + n + ' differs from what a signed checkpoint recorded: the chain was rewritten (re-linked) before it.',
    'truncated': (n) => 'The chain ends before sequence ' + n + ', but a signed checkpoint proves it went further: its newest events were removed.',
    'checkpoint log': () => 'A checkpoint of this chain in the signed checkpoint log does not verify: the log was edited, or a key is missing.',
  };

  // What the signed checkpoints covered, and what weakened the check.
  function coverageLines(b) {
    const out = [];
    if (b.coverage) out.push({ text: 'Checkpoints: ' + b.coverage + '.', cls: 'coverage' });
    (b.warnings || []).forEach((w) => out.push({ text: 'Warning: ' + w, cls: 'warning' }));
    return out;
  }

  async function verify() {
    const id = state.openRowId;
    if (!id) return;
    el.verifyBtn.disabled = true;
    verifyShow('neutral', 'Verifying the chain…', []);
    const r = await api('/v1/audit-events/' + encodeURIComponent(id) + '/verify');
    if (state.openRowId !== id || !el.dialog.open) return;
    el.verifyBtn.disabled = false;
    const b = r.body || {};
    if (r.status === 200 && b.isValid === true) {
      const from = String(b.fromSequence), to = String(b.toSequence);
      verifyShow('valid', 'Chain valid — ' + String(b.totalChecked) + ' events checked (sequence ' + from + '–' + to + ' of chain ' + b.chainId + ')', [
        from !== '1' ? { text: 'Events before sequence ' + from + ' were not recomputed (the sidecar limits one check); this range links to the stored hash of sequence ' + (Number(from) - 1) + '.' } : null,
        b.notYetCovered > 0 ? { text: String(b.notYetCovered) + ' of these events are not yet covered by a signed checkpoint (their links are checked; no signature proves them yet).' } : null,
      ].concat(coverageLines(b)));
    } else if (r.status === 200 && b.isValid === false) {
      verifyShow('invalid', 'Chain broken at sequence ' + String(b.firstInvalidId) + ': ' + (b.reason || 'invalid'), [
        { text: REASONS[b.reason] ? REASONS[b.reason](String(b.firstInvalidId)) : (b.message || '') },
        { text: String(b.totalChecked) + ' events verified before the break (checked sequence ' + String(b.fromSequence) + '–' + String(b.toSequence) + ' of chain ' + b.chainId + ').' },
        b.detail ? { text: b.detail, cls: 'detail' } : null,
      ].concat(coverageLines(b)), true);
    } else if (r.status === 401) {
      closeDetails();
      unauthorized(r);
    } else if (r.status === 503 && codeOf(r) === 'FLK-0612') {
      verifyShow('invalid', 'Audit store unavailable', [{ text: 'The chain could not be read. Try again in a moment.' }], true);
    } else {
      verifyShow('invalid', 'Verification could not run', [{ text: 'HTTP ' + r.status + (codeOf(r) ? ' ' + codeOf(r) : '') + ': ' + messageOf(r, 'unexpected answer') }], true);
    }
  }

  function focusables() {
    return Array.prototype.filter.call(
      el.dialog.querySelectorAll('button, [href], input, select, textarea, [tabindex]:not([tabindex="-1"])'),
      (n) => !n.disabled && !n.hidden && n.offsetParent !== null);
  }

  // ---------- events ----------
  function wire() {
    el.filters.addEventListener('submit', (e) => e.preventDefault());
    [el.eventType, el.result, el.sort, el.from, el.to, el.actorType].forEach((c) => c.addEventListener('change', filtersChanged));
    let debounce = null;
    [el.resource, el.actor].forEach((input) => {
      input.addEventListener('input', () => {
        clearTimeout(debounce);
        debounce = setTimeout(filtersChanged, 350);
      });
      input.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') { e.preventDefault(); clearTimeout(debounce); filtersChanged(); }
      });
    });
    el.exportBtn.addEventListener('click', exportDownload);
    el.clear.addEventListener('click', clearFilters);
    el.refresh.addEventListener('click', () => load());
    el.pageSize.addEventListener('change', filtersChanged);
    el.next.addEventListener('click', () => {
      if (!state.hasMore || !state.nextCursor) return;
      state.cursors.push(state.nextCursor);
      state.page++;
      load().then(() => { if (el.next.disabled && !el.prev.disabled) el.prev.focus(); });
    });
    el.prev.addEventListener('click', () => {
      if (state.page === 0) return;
      state.cursors.pop();
      state.page--;
      load();
    });

    el.rows.addEventListener('click', (e) => {
      const tr = e.target.closest('tr.event-row');
      if (tr) openDetails(Number(tr.dataset.index), tr);
    });
    el.rows.addEventListener('keydown', (e) => {
      const tr = e.target.closest('tr.event-row');
      if (!tr) return;
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        openDetails(Number(tr.dataset.index), tr);
      } else if (e.key === 'ArrowDown' && tr.nextElementSibling) {
        e.preventDefault(); tr.nextElementSibling.focus();
      } else if (e.key === 'ArrowUp' && tr.previousElementSibling) {
        e.preventDefault(); tr.previousElementSibling.focus();
      }
    });

    el.dialogClose.addEventListener('click', closeDetails);
    el.verifyBtn.addEventListener('click', verify);
    el.dialog.addEventListener('cancel', (e) => { e.preventDefault(); closeDetails(); }); // Escape
    el.dialog.addEventListener('click', (e) => { if (e.target === el.dialog) closeDetails(); }); // backdrop
    el.dialog.addEventListener('keydown', (e) => {
      if (e.key !== 'Tab') return;
      const f = focusables();
      if (!f.length) return;
      const first = f[0], last = f[f.length - 1];
      if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    });
    el.dialog.addEventListener('close', () => { // a close that did not go through closeDetails
      if (!el.dialog.open && state.openRowId) afterClose();
    });

    el.authForm.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = el.authKey.value.trim();
      if (!v) { el.authKey.focus(); return; }
      setCred(authMode === 'delegate' ? el.authKind.value : 'apikey', v);
      el.authKey.value = '';
      state.config = null;
      resetPaging();
      load({ clear: true, wantedType: el.eventType.value });
    });
    el.changeKey.addEventListener('click', () => {
      clearCred();
      getCredWasSet = false;
      showAuth('Enter the key to use.', true);
    });
  }

  function init() {
    if (authMode === 'delegate') {
      el.authLabel.textContent = 'Your Flowker credential';
      el.authKindRow.hidden = false;
      el.authHint.textContent = 'This sidecar asks Flowker whether your credential may read audit events. ' +
        'It stays in this browser tab only (session storage) and is never put in the address bar.';
    }
    wire();
    const wantedType = readURL();
    load({ clear: true, wantedType: wantedType });
  }

  init();
})();
