// Live dashboard: reads GET reportes/dashboard/stream (Server-Sent Events)
// with fetch, so that it can send a bearer token, and keeps the page in
// step with it without reloading.
'use strict';
(function () {
  var STREAM = 'reportes/dashboard/stream';
  var TOKEN_KEY = 'reportes.token';
  var SILENCE_MS = 60000;   // no byte for this long (heartbeats included): reconnect
  var MAX_BACKOFF_MS = 30000;
  var MAX_ROWS = 200;       // rows drawn; filtering finds the others
  var MAX_BARS = 15;
  var MIN_DRAW_MS = 200;
  var HIGHLIGHT_MS = 1500;  // as long as the row's animation in style.css

  var $ = function (id) { return document.getElementById(id); };

  // What the stream said. sellers maps an employee code to its line.
  var data = {
    loaded: false, titulo: '', totals: null, sellers: new Map(), ultimo: null, secuencia: 0,
    changed: new Map() // code -> time of its last live change, to highlight it
  };
  var view = { key: 'pedidos_realizados', dir: -1, text: '', rol: '', estado: '' };
  var conn = { lastId: '', retry: 1000, backoff: 0, timer: 0, abort: null, skew: 0, stale: null };

  // ---- Server-Sent Events over fetch ------------------------------------

  // parser returns a function fed with decoded text; it calls onEvent with
  // {id, event, data} per event and onRetry for retry, per the HTML spec's
  // event stream interpretation (CR, LF or CRLF line ends; comment lines),
  // but for the id: it is the event's own, null when it has none, so that
  // the caller resumes from the last event it applied, not the last sent.
  function parser(onEvent, onRetry) {
    var buf = '', ev = '', dat = [], hasData = false, id = null;
    return function (chunk) {
      buf += chunk;
      var start = 0;
      for (;;) {
        var i = start, n = buf.length, c;
        while (i < n && (c = buf.charCodeAt(i)) !== 10 && c !== 13) i++;
        if (i >= n) break;
        // A CR at the end of the text may be the first half of a CRLF.
        if (c === 13 && i + 1 >= n) break;
        line(buf.slice(start, i));
        start = i + (c === 13 && buf.charCodeAt(i + 1) === 10 ? 2 : 1);
      }
      buf = buf.slice(start);
    };
    function line(l) {
      if (l === '') {
        if (hasData) onEvent({ id: id, event: ev || 'message', data: dat.join('\n') });
        ev = ''; dat = []; hasData = false; id = null;
        return;
      }
      if (l.charCodeAt(0) === 58) return; // ":" heartbeat
      var k = l.indexOf(':'), f = k < 0 ? l : l.slice(0, k), v = k < 0 ? '' : l.slice(k + 1);
      if (v.charCodeAt(0) === 32) v = v.slice(1);
      if (f === 'data') { dat.push(v); hasData = true; }
      else if (f === 'event') ev = v;
      else if (f === 'id') { if (v.indexOf('\0') < 0) id = v; }
      else if (f === 'retry' && /^\d+$/.test(v)) onRetry(parseInt(v, 10));
    }
  }

  function connect() {
    clearTimeout(conn.timer);
    if (conn.abort) conn.abort.abort();
    var ctl = new AbortController();
    conn.abort = ctl;
    var headers = { Accept: 'text/event-stream' };
    var token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    if (conn.lastId) headers['Last-Event-ID'] = conn.lastId;
    var silence = 0;
    var alive = function () {
      clearTimeout(silence);
      silence = setTimeout(function () { ctl.abort(new Error('el servidor no envía nada desde hace ' + SILENCE_MS / 1000 + ' s')); }, SILENCE_MS);
    };
    alive();
    var gotEvent = false;
    fetch(STREAM, { headers: headers, cache: 'no-store', signal: ctl.signal })
      .then(function (resp) {
        var date = Date.parse(resp.headers.get('Date') || '');
        if (!isNaN(date)) conn.skew = date - Date.now();
        if (resp.status === 401) {
          ctl.abort();
          unauthorized(!!token);
          return null;
        }
        if (!resp.ok) return resp.text().then(function (t) { throw new Error(httpError(resp, t)); });
        if (!/^text\/event-stream/.test(resp.headers.get('Content-Type') || '')) throw new Error('respuesta inesperada: ' + resp.headers.get('Content-Type'));
        // Open. A server that still cannot read its events says so again
        // on this connection.
        conn.stale = null;
        setConn('conectado', 'Conectado', '');
        var reader = resp.body.getReader(), dec = new TextDecoder();
        var feed = parser(function (e) {
          if (!gotEvent) { gotEvent = true; conn.backoff = 0; }
          if (handle(e) && e.id !== null) conn.lastId = e.id;
        }, function (ms) { conn.retry = ms; });
        var pump = function () {
          return reader.read().then(function (r) {
            if (r.done) throw new Error('el servidor cerró la conexión');
            alive();
            feed(dec.decode(r.value, { stream: true }));
            return pump();
          });
        };
        return pump();
      })
      .catch(function (err) {
        if (conn.abort !== ctl) return; // superseded by a newer connection
        reconnect(ctl.signal.aborted && ctl.signal.reason instanceof Error ? ctl.signal.reason : err);
      })
      .finally(function () { clearTimeout(silence); });
  }

  function httpError(resp, body) {
    try { var j = JSON.parse(body); if (j && j.error) return resp.status + ': ' + j.error; } catch (e) { /* not JSON */ }
    return 'HTTP ' + resp.status + (resp.statusText ? ' ' + resp.statusText : '');
  }

  function reconnect(err) {
    // Exponential backoff from the server's retry interval, with jitter so
    // that many pages do not come back at once.
    conn.backoff = conn.backoff ? Math.min(conn.backoff * 2, MAX_BACKOFF_MS) : conn.retry;
    var wait = Math.round(conn.backoff * (0.75 + Math.random() * 0.5));
    setConn('reconectando', 'Reconectando en ' + Math.ceil(wait / 1000) + ' s',
      'Sin conexión con el servidor: ' + ((err && err.message) || String(err)));
    conn.timer = setTimeout(connect, wait);
  }

  function unauthorized(hadToken) {
    if (hadToken) sessionStorage.removeItem(TOKEN_KEY);
    setConn('no-autorizado', 'No autorizado', '');
    $('token-error').textContent = hadToken ? 'El token no es válido.' : '';
    $('token-form').hidden = false;
    $('token').focus();
  }

  // ---- applying events ----------------------------------------------------

  // handle applies an event and reports whether it did.
  function handle(e) {
    var msg;
    try { msg = JSON.parse(e.data); } catch (err) { return false; }
    if (e.event === 'dashboard') {
      data.loaded = true;
      data.titulo = msg.titulo || '';
      data.totals = msg.metricas_globales || null;
      data.sellers = new Map();
      (msg.detalle_por_vendedor || []).forEach(function (s) { data.sellers.set(s.empleado, s); });
      var f = msg.frescura || {};
      data.ultimo = f.ultimo_cambio || null;
      data.secuencia = f.secuencia || 0;
      data.changed.clear();
      render();
    } else if (e.event === 'update') {
      if (!(msg.secuencia > data.secuencia)) return false;
      data.secuencia = msg.secuencia;
      if (msg.ultimo_cambio) data.ultimo = msg.ultimo_cambio;
      if (msg.metricas_globales) data.totals = msg.metricas_globales;
      var now = Date.now();
      (msg.vendedores || []).forEach(function (s) {
        if (s.es_empleado) {
          data.sellers.set(s.empleado, { empleado: s.empleado, rol: s.rol, pedidos_realizados: s.pedidos_realizados, estado: s.estado });
          data.changed.set(s.empleado, now);
        } else {
          data.sellers.delete(s.empleado);
          data.changed.delete(s.empleado);
        }
      });
      render();
    } else if (e.event === 'estado') {
      if (msg.conectado) {
        conn.stale = null;
        setConn('conectado', 'Conectado', '');
      } else {
        conn.stale = msg;
        var since = msg.sin_conexion_desde ? ' (sin conexión desde ' + fmtTime(msg.sin_conexion_desde) + ')' : '';
        setConn('desactualizado', 'Datos desactualizados', (msg.error || 'el servidor no puede leer sus eventos') + since);
      }
    }
    return true;
  }

  function setConn(state, label, detail) {
    var el = $('conexion');
    el.dataset.estado = state;
    $('conexion-texto').textContent = label;
    document.body.dataset.conexion = state;
    var aviso = $('aviso');
    aviso.textContent = detail;
    aviso.hidden = !detail;
    if (state !== 'no-autorizado') $('token-form').hidden = true;
  }

  // ---- rendering ------------------------------------------------------------

  // Drawing rebuilds the table and the chart: at most a few times a
  // second however fast the stream goes, and at once after a quiet spell.
  var pending = false, lastDraw = 0;
  function render() {
    if (pending) return;
    pending = true;
    setTimeout(draw, Math.max(0, lastDraw + MIN_DRAW_MS - Date.now()));
  }

  function draw() {
    pending = false;
    lastDraw = Date.now();
    if (data.titulo) { $('titulo').textContent = data.titulo; document.title = data.titulo; }
    var t = data.totals || {};
    $('total-empleados').textContent = num(t.total_empleados);
    $('total-pedidos').textContent = num(t.total_pedidos_procesados);
    $('sin-empleado').textContent = num(t.pedidos_sin_empleado);
    $('secuencia').textContent = data.secuencia ? String(data.secuencia) : '—';
    var uc = $('ultimo-cambio');
    uc.textContent = data.ultimo ? fmtTime(data.ultimo) : 'nunca';
    if (data.ultimo) uc.setAttribute('datetime', data.ultimo); else uc.removeAttribute('datetime');
    tick();
    roles();
    var all = Array.from(data.sellers.values());
    var rows = all.filter(visible).sort(compare);
    table(rows, all.length);
    chart(rows.slice().sort(byOrders));
  }

  function visible(s) {
    if (view.rol && (s.rol || '') !== view.rol) return false;
    if (view.estado && s.estado !== view.estado) return false;
    if (!view.text) return true;
    return (s.empleado + ' ' + (s.rol || '')).toLowerCase().indexOf(view.text) >= 0;
  }

  var collator = new Intl.Collator('es', { numeric: true, sensitivity: 'base' });
  function compare(a, b) {
    var k = view.key, d;
    if (k === 'pedidos_realizados') d = a[k] - b[k];
    else d = collator.compare(a[k] || '', b[k] || '');
    return d * view.dir || byOrders(a, b);
  }
  // The server's order: most orders first, then by code.
  function byOrders(a, b) {
    return b.pedidos_realizados - a.pedidos_realizados || (a.empleado < b.empleado ? -1 : a.empleado > b.empleado ? 1 : 0);
  }

  function table(rows, total) {
    var body = $('vendedores').tBodies[0];
    var frag = document.createDocumentFragment(), now = Date.now();
    data.changed.forEach(function (at, code) { if (now - at >= HIGHLIGHT_MS) data.changed.delete(code); });
    rows.slice(0, MAX_ROWS).forEach(function (s) {
      var tr = document.createElement('tr');
      tr.dataset.empleado = s.empleado;
      var at = data.changed.get(s.empleado);
      if (at) tr.className = 'cambio';
      cell(tr, 'th', s.empleado).scope = 'row';
      cell(tr, 'td', s.rol || '—');
      cell(tr, 'td', num(s.pedidos_realizados)).className = 'num';
      var st = cell(tr, 'td', '');
      var badge = document.createElement('span');
      badge.className = 'estado ' + (s.estado === 'Activo' ? 'activo' : 'inactivo');
      badge.textContent = s.estado;
      st.appendChild(badge);
      frag.appendChild(tr);
    });
    if (!rows.length) {
      var tr = document.createElement('tr');
      var td = cell(tr, 'td', total ? 'Ningún vendedor coincide con el filtro.' : data.loaded ? 'Todavía no hay empleados.' : 'Esperando datos…');
      td.colSpan = 4; td.className = 'vacio';
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
    var shown = Math.min(rows.length, MAX_ROWS);
    $('cuenta').textContent = rows.length === total ? total + (total === 1 ? ' vendedor' : ' vendedores')
      : 'Mostrando ' + shown + ' de ' + total + ' vendedores' + (shown < rows.length ? ' (filtre para ver el resto)' : '');
    $('vendedores').querySelectorAll('thead th').forEach(function (th) {
      th.setAttribute('aria-sort', th.dataset.clave === view.key ? (view.dir > 0 ? 'ascending' : 'descending') : 'none');
    });
  }

  function cell(tr, tag, text) {
    var c = document.createElement(tag);
    c.textContent = text;
    tr.appendChild(c);
    return c;
  }

  var knownRoles = '';
  function roles() {
    var set = new Set();
    data.sellers.forEach(function (s) { set.add(s.rol || ''); });
    var list = Array.from(set).sort(collator.compare);
    var key = list.join('\n');
    if (key === knownRoles) return;
    knownRoles = key;
    var sel = $('filtro-rol'), cur = sel.value;
    var opts = [new Option('Todos', '')];
    list.forEach(function (r) { opts.push(new Option(r || '(sin rol)', r)); });
    sel.replaceChildren.apply(sel, opts);
    sel.value = list.indexOf(cur) >= 0 ? cur : '';
    view.rol = sel.value;
  }

  var SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // chart draws the sellers with most orders as horizontal bars.
  function chart(rows) {
    var el = $('grafico'), bars = rows.slice(0, MAX_BARS);
    // Drawn at the element's own width, so that the text keeps its size.
    var W = Math.max(320, Math.round(el.getBoundingClientRect().width) || 640);
    var longest = bars.reduce(function (m, s) { return Math.max(m, Math.min(s.empleado.length, 16)); }, 4);
    var LABEL = 16 + longest * 8, ROW = 26, PAD = 4, VALUE = 64;
    var H = Math.max(bars.length, 1) * ROW + PAD * 2;
    var max = bars.reduce(function (m, s) { return Math.max(m, s.pedidos_realizados); }, 0) || 1;
    var span = W - LABEL - VALUE;
    el.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    el.setAttribute('height', H);
    var g = document.createDocumentFragment();
    bars.forEach(function (s, i) {
      var y = PAD + i * ROW, w = Math.max(s.pedidos_realizados > 0 ? 2 : 0, Math.round(span * s.pedidos_realizados / max));
      var bar = svg('g', { 'class': 'barra ' + (s.estado === 'Activo' ? 'activo' : 'inactivo') });
      bar.appendChild(svg('title', {}, s.empleado + ': ' + num(s.pedidos_realizados) + ' pedidos (' + s.estado + ')'));
      bar.appendChild(svg('text', { x: LABEL - 8, y: y + ROW / 2, 'text-anchor': 'end', 'dominant-baseline': 'central', 'class': 'nombre' }, clip(s.empleado, 16)));
      bar.appendChild(svg('rect', { x: LABEL, y: y + 4, width: w, height: ROW - 8, rx: 3 }));
      bar.appendChild(svg('text', { x: LABEL + w + 6, y: y + ROW / 2, 'dominant-baseline': 'central', 'class': 'cifra' }, num(s.pedidos_realizados)));
      g.appendChild(bar);
    });
    if (!bars.length) g.appendChild(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', 'dominant-baseline': 'central', 'class': 'nota' }, 'Sin datos'));
    el.replaceChildren(g);
    $('grafico-nota').textContent = rows.length > bars.length
      ? 'Los ' + bars.length + ' vendedores con más pedidos de ' + rows.length + '.'
      : rows.length ? 'Pedidos realizados de cada vendedor mostrado en la tabla.' : '';
  }

  function clip(s, n) { return s.length > n ? s.slice(0, n - 1) + '…' : s; }

  var numFmt = new Intl.NumberFormat('es');
  function num(n) { return typeof n === 'number' ? numFmt.format(n) : '—'; }

  var timeFmt = new Intl.DateTimeFormat('es', { dateStyle: 'medium', timeStyle: 'medium' });
  function fmtTime(iso) { var d = new Date(iso); return isNaN(d) ? iso : timeFmt.format(d); }

  // tick shows the age of the newest change, by the server's clock.
  function tick() {
    var el = $('antiguedad');
    if (!data.ultimo) { el.textContent = 'sin datos'; return; }
    var s = Math.max(0, Math.floor((Date.now() + conn.skew - Date.parse(data.ultimo)) / 1000));
    el.dataset.segundos = String(s);
    el.textContent = 'hace ' + (s < 60 ? s + ' s'
      : s < 3600 ? Math.floor(s / 60) + ' min ' + (s % 60) + ' s'
        : Math.floor(s / 3600) + ' h ' + Math.floor(s % 3600 / 60) + ' min');
  }

  // ---- controls -------------------------------------------------------------

  $('vendedores').querySelector('thead').addEventListener('click', function (ev) {
    var th = ev.target.closest('th');
    if (!th) return;
    var k = th.dataset.clave;
    if (view.key === k) view.dir = -view.dir;
    else { view.key = k; view.dir = k === 'pedidos_realizados' ? -1 : 1; }
    render();
  });
  $('filtro').addEventListener('input', function (ev) { view.text = ev.target.value.trim().toLowerCase(); render(); });
  $('filtro-rol').addEventListener('change', function (ev) { view.rol = ev.target.value; render(); });
  $('filtro-estado').addEventListener('change', function (ev) { view.estado = ev.target.value; render(); });
  $('token-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    var v = $('token').value.trim();
    if (!v) return;
    sessionStorage.setItem(TOKEN_KEY, v);
    $('token').value = '';
    $('token-form').hidden = true;
    setConn('conectando', 'Conectando…', '');
    conn.backoff = 0;
    connect();
  });

  setInterval(tick, 1000);
  var width = 0;
  window.addEventListener('resize', function () {
    var w = Math.round($('grafico').getBoundingClientRect().width);
    if (w !== width) { width = w; render(); }
  });
  draw();
  connect();
})();
