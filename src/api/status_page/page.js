// The status page: reads /db/status and /api/calls/history, records calls, and runs the two
// admin switches. Every piece of data is put into the page with textContent, never as HTML.
// Every request carries the access token field's value as `Authorization: Bearer`, read from the
// field when the request is made: the token is never kept anywhere else (no storage, no cookie,
// no address), so closing the tab forgets it.
'use strict';
(function () {
  // How the API is authorized (set by the server): `public` and `closed` show no call data.
  const ACCESS = document.body.dataset.access || 'local';
  const SHOWS_CALLS = ACCESS !== 'public' && ACCESS !== 'closed';
  const REFRESH_MS = 30000;
  const REQUEST_TIMEOUT_MS = 15000;
  const HISTORY_LIMIT = 20;
  const SOURCES = {
    redshift: { emoji: '☁️', name: 'Redshift (Cloud Primary)', badge: 'badge-primary' },
    sqlite: { emoji: '💾', name: 'SQLite (Local Backup)', badge: 'badge-backup' },
    unavailable: { emoji: '❌', name: 'No database available', badge: 'badge-down' },
  };

  const byId = (id) => document.getElementById(id);
  const show = (id, visible) => { byId(id).hidden = !visible; };
  const setText = (id, text) => { byId(id).textContent = text; };

  function sourceLabel(source) {
    const known = SOURCES[source] || SOURCES.unavailable;
    return known.emoji + ' ' + known.name;
  }

  function formatDuration(seconds) {
    if (typeof seconds !== 'number' || !isFinite(seconds) || seconds < 0) return '—';
    const total = Math.floor(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = total % 60;
    if (h > 0) return h + ' h ' + m + ' min';
    if (m > 0) return m + ' min ' + s + ' s';
    return s + ' s';
  }

  function formatTime(iso, timeStyle) {
    if (!iso) return '—';
    const date = new Date(iso);
    if (isNaN(date.getTime())) return String(iso);
    return date.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: timeStyle || 'medium' });
  }

  function authorization() {
    const token = byId('access-token').value.trim();
    return token ? { Authorization: 'Bearer ' + token } : {};
  }

  // fetch with a timeout and the access token; the body is parsed as JSON when it is JSON, and
  // kept as null otherwise.
  async function requestJson(path, options) {
    const init = Object.assign({ cache: 'no-store', credentials: 'omit' }, options || {});
    init.headers = Object.assign({ Accept: 'application/json' }, init.headers || {}, authorization());
    init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const response = await fetch(path, init);
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    return { status: response.status, ok: response.ok, body: body };
  }

  function errorText(result) {
    const reason = result.body && typeof result.body.error === 'string'
      ? result.body.error
      : 'The service gave no reason.';
    return '(' + result.status + '): ' + reason;
  }

  // ---- status -------------------------------------------------------------------------------

  // What the last /db/status said about a running fallback, so the duration can tick between
  // refreshes without trusting this device's clock against the server's.
  let fallbackClock = null;

  function renderBadge(status) {
    const badge = byId('db-indicator');
    const known = SOURCES[status.currentSource] || SOURCES.unavailable;
    badge.textContent = (status.sourceEmoji || known.emoji) + ' ' + (status.sourceName || known.name);
    badge.className = 'badge ' + known.badge;
    badge.dataset.source = status.currentSource || 'unavailable';
  }

  function renderFallback(fallback, forced) {
    fallback = fallback || {};
    if (fallback.active) {
      fallbackClock = {
        seconds: typeof fallback.durationSeconds === 'number' ? fallback.durationSeconds : 0,
        at: performance.now(),
        startedAt: fallback.startedAt,
        forced: forced,
      };
    } else {
      fallbackClock = null;
      setText('fallback-duration', typeof fallback.lastDurationSeconds === 'number'
        ? 'Not on the backup; the last fallback lasted ' + formatDuration(fallback.lastDurationSeconds)
        : 'Not on the backup');
    }
    tickFallback();
    const count = (n, one, many) => {
      const value = typeof n === 'number' ? n : 0;
      return value + ' ' + (value === 1 ? one : many);
    };
    setText('fallback-counts', count(fallback.fallbacks, 'fallback', 'fallbacks') + ', ' +
      count(fallback.forcedSwitches, 'forced switch', 'forced switches') + ', ' +
      count(fallback.recoveries, 'recovery', 'recoveries'));
  }

  function tickFallback() {
    if (!fallbackClock) return;
    const seconds = fallbackClock.seconds + (performance.now() - fallbackClock.at) / 1000;
    setText('fallback-duration', 'On the backup for ' + formatDuration(seconds) +
      (fallbackClock.forced ? ' (forced)' : '') + ', since ' + formatTime(fallbackClock.startedAt));
  }

  function renderSync(sync) {
    sync = sync || {};
    setText('pending-writes', typeof sync.pendingWrites === 'number' ? String(sync.pendingWrites) : '—');
    // Older versions of the service do not report set-aside writes: the row stays hidden then.
    const rejected = sync.rejectedWrites;
    show('rejected-row', typeof rejected === 'number');
    if (typeof rejected === 'number') {
      setText('rejected-writes', rejected > 0 ? rejected + ' — see the service log' : '0');
      byId('rejected-writes').classList.toggle('warn', rejected > 0);
    }
    setText('last-replay', formatTime(sync.lastReplayAt));
  }

  function renderDatabaseState(id, available, configured, message) {
    const element = byId(id);
    element.classList.remove('up', 'down');
    if (configured === false) {
      element.textContent = 'Not configured';
      return;
    }
    if (message === 'Not checked yet') {
      element.textContent = '… Not checked yet';
      return;
    }
    element.textContent = available ? '✅ Available' : '❌ Unavailable';
    element.classList.add(available ? 'up' : 'down');
  }

  function renderDatabases(databases) {
    const redshift = (databases && databases.redshift) || {};
    const sqlite = (databases && databases.sqlite) || {};
    renderDatabaseState('redshift-state', !!redshift.available, redshift.configured, redshift.message);
    setText('redshift-message', redshift.message || '—');
    setText('redshift-last-probe', formatTime(redshift.lastProbeAt));
    setText('redshift-next-probe', typeof redshift.nextProbeInSeconds === 'number'
      ? 'in ' + formatDuration(redshift.nextProbeInSeconds) + ' (on the next request after that)'
      : (redshift.forced ? 'none while forced to SQLite' : '—'));
    setText('redshift-failures', typeof redshift.consecutiveFailures === 'number'
      ? String(redshift.consecutiveFailures) : '—');
    renderDatabaseState('sqlite-state', !!sqlite.available, true);
    setText('sqlite-message', sqlite.message || '—');
  }

  function renderStatus(status) {
    renderBadge(status);
    setText('status-message', status.message || '');
    const redshift = (status.databases && status.databases.redshift) || {};
    renderFallback(status.fallback, !!redshift.forced);
    renderSync(status.sync);
    renderDatabases(status.databases);
  }

  function renderStatusFailure(reason) {
    const badge = byId('db-indicator');
    badge.textContent = '❌ Status unavailable';
    badge.className = 'badge badge-down';
    badge.dataset.source = 'unknown';
    setText('status-message', reason);
  }

  // ---- history ------------------------------------------------------------------------------

  // `label` names the column for the card layout of narrow screens (see page.css).
  function cell(row, text, className, label) {
    const td = document.createElement('td');
    td.textContent = text;
    if (className) td.className = className;
    if (label) td.dataset.label = label;
    row.appendChild(td);
    return td;
  }

  function callRow(call) {
    const row = document.createElement('tr');
    row.dataset.id = String(call.id);
    const contact = document.createElement('th');
    contact.scope = 'row';
    contact.textContent = call.contactName || '—';
    row.appendChild(contact);
    cell(row, call.accountName || '—', '', 'Account');
    const started = cell(row, '', 'time', 'Started');
    const time = document.createElement('time');
    time.dateTime = String(call.startedAt || '');
    time.textContent = formatTime(call.startedAt, 'short');
    started.appendChild(time);
    cell(row, formatDuration(call.durationSeconds), 'number', 'Duration');
    cell(row, call.outcome || '—', '', 'Outcome');
    cell(row, call.notes || '', 'notes', 'Notes');
    return row;
  }

  function renderHistory(history) {
    const body = byId('calls-body');
    const calls = Array.isArray(history.calls) ? history.calls : [];
    body.replaceChildren(...calls.map(callRow));
    if (calls.length === 0) {
      const row = document.createElement('tr');
      const td = cell(row, 'No calls to show.');
      td.colSpan = 6;
      body.appendChild(row);
    }
    const caption = byId('calls-caption');
    caption.dataset.source = history.source || 'unavailable';
    caption.textContent = 'Served by ' + sourceLabel(history.source) + ' · ' +
      calls.length + (calls.length === 1 ? ' call' : ' calls') +
      (history.message ? ' · ' + history.message : '') +
      (history.asOf ? ' · data as of ' + formatTime(history.asOf) : '');
  }

  // Calls shown before a token was taken away or refused do not stay on screen.
  function hideCalls(reason) {
    byId('calls-body').replaceChildren();
    const caption = byId('calls-caption');
    caption.dataset.source = 'unavailable';
    caption.textContent = reason;
  }

  // ---- refresh ------------------------------------------------------------------------------

  let lastStatusSource = null;
  let lastHistorySource = null;

  function renderBanner() {
    // The guide's warning: whatever was read last came from, or will come from, the backup.
    show('backup-banner', lastStatusSource === 'sqlite' || lastHistorySource === 'sqlite');
  }

  const NOT_ASKED = { status: 'fulfilled', value: { status: 0, ok: true, body: null } };

  async function loadOnce() {
    const problems = [];
    // History first: the status then shows what reading it found (a first contact with
    // Redshift, a fallback).
    const [history] = await Promise.allSettled([
      SHOWS_CALLS ? requestJson('api/calls/history?limit=' + HISTORY_LIMIT) : NOT_ASKED,
    ]);
    const [status] = await Promise.allSettled([requestJson('db/status')]);
    const refused = [status, history].some(
      (r) => r.status === 'fulfilled' && r.value.status === 401);
    show('auth-needed', refused && byId('access-token').value.trim() === '');
    if (status.status === 'fulfilled' && status.value.ok && status.value.body) {
      renderStatus(status.value.body);
      lastStatusSource = status.value.body.currentSource;
    } else {
      const reason = status.status === 'fulfilled' ? errorText(status.value) : String(status.reason);
      renderStatusFailure('Could not read /db/status: ' + reason);
      problems.push('status ' + reason);
      lastStatusSource = null;
    }
    if (!SHOWS_CALLS) {
      lastHistorySource = null;
    } else if (history.status === 'fulfilled' && history.value.ok && history.value.body) {
      renderHistory(history.value.body);
      lastHistorySource = history.value.body.source;
    } else {
      const reason = history.status === 'fulfilled' ? errorText(history.value) : String(history.reason);
      problems.push('history ' + reason);
      lastHistorySource = null;
      if (history.status === 'fulfilled' && [401, 403].includes(history.value.status)) {
        hideCalls('Calls not shown: the API did not accept this page\'s token.');
      }
    }
    renderBanner();
    setText('load-error', problems.length ? 'Could not refresh: ' + problems.join('; ') : '');
    show('load-error', problems.length > 0);
    setText('last-refresh', 'Updated ' + new Date().toLocaleTimeString());
  }

  // One refresh at a time; a refresh asked for while one runs starts again when it ends, so that
  // what an action changed is always shown.
  let running = null;
  let again = false;
  function refresh() {
    if (running) {
      again = true;
      return running;
    }
    running = (async function () {
      do {
        again = false;
        await loadOnce();
      } while (again);
    })().finally(function () { running = null; });
    return running;
  }

  // ---- record a call ------------------------------------------------------------------------

  function newCallFromForm(form) {
    const value = (name) => form.elements[name].value.trim();
    const call = { contactName: value('contactName') };
    for (const name of ['accountName', 'outcome']) {
      if (value(name) !== '') call[name] = value(name);
    }
    const notes = form.elements.notes.value;
    if (notes.trim() !== '') call.notes = notes;
    if (value('durationSeconds') !== '') call.durationSeconds = Number(value('durationSeconds'));
    return call;
  }

  async function recordCall(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const result = byId('record-result');
    if (!form.reportValidity()) return;
    const button = byId('record-button');
    button.disabled = true;
    result.className = 'result';
    result.textContent = 'Recording…';
    try {
      const call = newCallFromForm(form);
      const reply = await requestJson('api/calls', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(call),
      });
      if (reply.ok && reply.body) {
        result.className = 'result done';
        result.textContent = 'Recorded the call with ' + call.contactName + ' (stored in ' +
          sourceLabel(reply.body.source) + ').';
        form.reset();
      } else {
        result.className = 'result failed';
        result.textContent = 'Not recorded ' + errorText(reply);
      }
    } catch (error) {
      result.className = 'result failed';
      result.textContent = 'Not recorded: ' + String(error);
    } finally {
      button.disabled = false;
    }
    await refresh();
  }

  // ---- admin switches -----------------------------------------------------------------------

  async function runAdminAction(event) {
    const button = event.currentTarget;
    const action = button.dataset.action;
    const result = byId('admin-result');
    const buttons = document.querySelectorAll('button[data-action]');
    buttons.forEach((b) => { b.disabled = true; });
    result.className = 'result';
    result.textContent = 'Working…';
    try {
      const reply = await requestJson('db/' + action, { method: 'POST' });
      if (reply.ok && reply.body) {
        const now = reply.body.currentSource || reply.body.source;
        result.className = 'result done';
        result.textContent = (reply.body.message || 'Done') + '. Now serving from ' + sourceLabel(now) + '.';
      } else {
        result.className = 'result failed';
        result.textContent = 'Refused ' + errorText(reply);
      }
    } catch (error) {
      result.className = 'result failed';
      result.textContent = 'No answer: ' + String(error);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
    await refresh();
  }

  // ---- start --------------------------------------------------------------------------------

  show('calls-section', SHOWS_CALLS);
  show('record-section', SHOWS_CALLS);
  show('calls-hidden', !SHOWS_CALLS);
  byId('record-form').addEventListener('submit', recordCall);
  // Enter in the token field reads again with it; it never switches anything (only the two
  // buttons act) and never submits the token anywhere.
  byId('token-form').addEventListener('submit', function (event) {
    event.preventDefault();
    refresh();
  });
  document.querySelectorAll('button[data-action]').forEach(function (button) {
    button.addEventListener('click', runAdminAction);
  });
  byId('refresh-now').addEventListener('click', function () { refresh(); });
  document.addEventListener('visibilitychange', function () {
    if (document.visibilityState === 'visible') refresh();
  });
  setInterval(refresh, REFRESH_MS);
  setInterval(tickFallback, 1000);
  refresh();
})();
