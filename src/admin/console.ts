import type { AdminServer } from './server.js'

/**
 * The approver console: one static page and one script, no build step, no third-party
 * code. The token stays in the tab's sessionStorage; everything the API returns is inserted
 * with textContent (payload previews are attacker-controlled).
 */
const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>edgewarden approvals</title>
<style>
body{font:15px system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 20px;display:flex;gap:16px;align-items:center}
header h1{font-size:17px;margin:0;font-weight:600}main{padding:20px;max-width:1000px}
input,button{font:inherit;padding:6px 10px;border-radius:6px;border:1px solid #b8bfcc}
button{background:#fff;cursor:pointer}button.approve{background:#1f7a3f;color:#fff;border-color:#1f7a3f}
button.reject{background:#a32020;color:#fff;border-color:#a32020}
table{width:100%;border-collapse:collapse;background:#fff;margin:12px 0 28px}
th,td{text-align:left;padding:8px;border-bottom:1px solid #e3e6ec;vertical-align:top}
code{font-size:13px;word-break:break-all}#status{margin-left:auto;font-size:13px;opacity:.85}
.empty{color:#6b7385;font-style:italic}
</style></head>
<body><header><h1>edgewarden · approvals</h1>
<form id="login"><input id="token" type="password" placeholder="approver token" autocomplete="off" size="40"> <button>Sign in</button></form>
<span id="status">signed out</span></header>
<main>
<h2>Pending approvals</h2>
<table><thead><tr><th>Topic</th><th>Requested by</th><th>Payload</th><th>Approvals</th><th>Expires</th><th></th></tr></thead>
<tbody id="pending"><tr><td colspan="6" class="empty">sign in to see pending requests</td></tr></tbody></table>
<h2>Live sessions</h2>
<table><thead><tr><th>Client</th><th>Identity</th><th>Listener</th><th>Since</th><th>Subscriptions</th><th></th></tr></thead>
<tbody id="sessions"><tr><td colspan="6" class="empty">admins see live sessions here</td></tr></tbody></table>
<h2>Audit tail</h2>
<table><thead><tr><th>Seq</th><th>Time</th><th>Type</th><th>Who</th><th>Topic</th><th>Rule / reason</th></tr></thead>
<tbody id="audit"><tr><td colspan="6" class="empty">admins see the journal here</td></tr></tbody></table>
<h2>Inventory</h2>
<table><thead><tr><th>Identity</th><th>Kind / groups</th><th>ClientIds</th><th>Last seen</th><th>Published</th><th>Subscribed</th><th>Decisions</th><th>Flags</th></tr></thead>
<tbody id="inventory"><tr><td colspan="8" class="empty">admins see every identity the gateway has seen here</td></tr></tbody></table>
<h2>Grants</h2>
<table><thead><tr><th>Identity</th><th>Actions</th><th>Topics</th><th>Expires</th><th>Granted by</th><th></th></tr></thead>
<tbody id="grants"></tbody></table>
</main><script src="/console/app.js"></script></body></html>`

const SCRIPT = `'use strict'
const $ = (id) => document.getElementById(id)
let token = sessionStorage.getItem('ew-token') || ''
function cell(tr, text, cls) { const td = document.createElement('td'); if (cls) td.className = cls; td.textContent = text; tr.appendChild(td); return td }
async function api(method, path, body) {
  const res = await fetch(path, { method, headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined })
  const json = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error(json.error || ('HTTP ' + res.status))
  return json
}
async function refresh() {
  if (!token) return
  try {
    const { approvals } = await api('GET', '/api/approvals')
    const tb = $('pending'); tb.replaceChildren()
    if (!approvals.length) { const tr = tb.insertRow(); cell(tr, 'nothing waiting', 'empty').colSpan = 6 }
    for (const a of approvals) {
      const tr = tb.insertRow(); tr.dataset.id = a.id
      cell(tr, a.topic); cell(tr, a.requester.sub + ' (' + a.requester.kind + ')')
      const code = document.createElement('code'); code.textContent = a.preview; cell(tr, '').appendChild(code)
      cell(tr, a.approvals.length + ' / ' + a.quorum); cell(tr, new Date(a.expiresAt).toLocaleTimeString())
      const td = cell(tr, '')
      for (const verb of ['approve', 'reject']) {
        const b = document.createElement('button'); b.className = verb; b.textContent = verb === 'approve' ? 'Approve' : 'Reject'
        b.onclick = async () => { try { await api('POST', '/api/approvals/' + encodeURIComponent(a.id) + '/' + verb, {}); $('status').textContent = verb + 'd ' + a.topic } catch (e) { $('status').textContent = verb + ' failed: ' + e.message } refresh() }
        td.appendChild(b); td.append(' ')
      }
    }
    const { grants } = await api('GET', '/api/grants')
    const gb = $('grants'); gb.replaceChildren()
    for (const g of grants) {
      const tr = gb.insertRow(); cell(tr, g.sub); cell(tr, g.actions.join(', ')); cell(tr, g.topics.join(' '))
      cell(tr, new Date(g.expiresAt).toLocaleString()); cell(tr, g.grantedBy)
      const b = document.createElement('button'); b.textContent = 'Revoke'
      b.onclick = async () => { await api('DELETE', '/api/grants/' + encodeURIComponent(g.id)).catch(() => {}); refresh() }
      cell(tr, '').appendChild(b)
    }
    await refreshAdmin()
    $('status').dataset.ready = '1'
    if (!$('status').textContent.startsWith('approve') && !$('status').textContent.startsWith('reject')) $('status').textContent = 'signed in'
  } catch (e) { $('status').textContent = 'error: ' + e.message }
}
let auditLast
async function refreshAdmin() {
  try {
    const { sessions } = await api('GET', '/api/sessions')
    const sb = $('sessions'); sb.replaceChildren()
    for (const s of sessions) {
      const tr = sb.insertRow(); tr.dataset.clientId = s.clientId
      cell(tr, s.clientId); cell(tr, s.sub + ' (' + s.kind + ')'); cell(tr, s.listener + ' ' + s.remote)
      cell(tr, new Date(s.connectedAt).toLocaleTimeString()); cell(tr, s.subscriptions.join(' '))
      const b = document.createElement('button'); b.className = 'kick'; b.textContent = 'Kick'
      b.onclick = async () => { try { await api('DELETE', '/api/sessions/' + encodeURIComponent(s.clientId)); $('status').textContent = 'kicked ' + s.clientId } catch (e) { $('status').textContent = 'kick failed: ' + e.message } refresh() }
      cell(tr, '').appendChild(b)
    }
    const q = auditLast === undefined ? '/api/audit?limit=50' : '/api/audit?after=' + auditLast
    const { records, last } = await api('GET', q)
    const ab = $('audit')
    if (auditLast === undefined) { ab.replaceChildren(); records.reverse() }
    for (const r of records) {
      const tr = ab.insertRow(0); tr.dataset.type = r.type
      cell(tr, String(r.seq)); cell(tr, new Date(r.ts).toLocaleTimeString()); cell(tr, r.type)
      cell(tr, (r.sub || '') + (r.clientId ? ' / ' + r.clientId : '')); cell(tr, r.topic || ''); cell(tr, [r.rule, r.reason].filter(Boolean).join(' · '))
    }
    while (ab.rows.length > 200) ab.deleteRow(ab.rows.length - 1)
    auditLast = last
  } catch (e) { /* not an admin, or no journal: those sections stay as they are */ }
  await refreshInventory()
}
const topics = (list) => list.slice(0, 5).map((p) => p.filter + ' ×' + p.count).join('\\n') + (list.length > 5 ? '\\n… ' + (list.length - 5) + ' more' : '')
async function refreshInventory() {
  try {
    const { entries } = await api('GET', '/api/inventory?type=identity')
    const ib = $('inventory'); ib.replaceChildren()
    if (!entries.length) { const tr = ib.insertRow(); cell(tr, 'nobody seen yet', 'empty').colSpan = 8 }
    for (const e of entries) {
      const tr = ib.insertRow(); tr.dataset.id = e.id
      cell(tr, e.id); cell(tr, e.kind + (e.groups.length ? ' · ' + e.groups.join(', ') : '')); cell(tr, e.related.join(', '))
      cell(tr, new Date(e.lastSeen).toLocaleString())
      for (const list of [e.published, e.subscribed]) { const c = cell(tr, ''); const code = document.createElement('code'); code.style.whiteSpace = 'pre'; code.textContent = topics(list); c.appendChild(code) }
      cell(tr, Object.entries(e.decisions).filter((d) => d[1] > 0).map((d) => d[0] + ' ' + d[1]).join(', '))
      const fc = cell(tr, '')
      for (const f of e.flags) {
        const div = document.createElement('div'); div.className = 'flag'; div.dataset.flag = f.flag
        div.textContent = f.flag + (f.acked ? ' (ack ' + f.acked.by + ')' : '') + ': ' + f.detail
        if (!f.acked) {
          const b = document.createElement('button'); b.textContent = 'Ack'
          b.onclick = async () => { try { await api('POST', '/api/inventory/identity/' + encodeURIComponent(e.id) + '/flags/' + encodeURIComponent(f.flag) + '/ack', {}); $('status').textContent = 'acknowledged ' + f.flag } catch (err) { $('status').textContent = 'ack failed: ' + err.message } refresh() }
          div.append(' '); div.appendChild(b)
        }
        fc.appendChild(div)
      }
    }
  } catch (e) { /* not an admin, or inventory off */ }
}
$('login').onsubmit = (ev) => { ev.preventDefault(); token = $('token').value.trim(); sessionStorage.setItem('ew-token', token); $('token').value = ''; refresh() }
setInterval(refresh, 2000); refresh()
`

export function registerConsole(admin: AdminServer): void {
  const headers = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' }
  admin.route('GET', '/console', (_req, res) => {
    res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'" })
    res.end(PAGE)
  })
  admin.route('GET', '/console/app.js', (_req, res) => {
    res.writeHead(200, { ...headers, 'content-type': 'text/javascript; charset=utf-8' })
    res.end(SCRIPT)
  })
}
